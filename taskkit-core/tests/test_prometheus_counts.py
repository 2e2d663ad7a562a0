"""A worker process's counts for the Prometheus exporter, its snapshots and their sum."""

from __future__ import annotations

import json
import multiprocessing
import os
import threading
from pathlib import Path

from taskkit import Task
from taskkit.contrib._prometheus_counts import (
    DEFAULT_BUCKETS,
    FORK_SAFE,
    Counts,
    Flusher,
    read_snapshots,
)


def a_task(group: str = "g", name: str = "job") -> Task:
    return Task(id="t", group=group, name=name, data=b"1", due=0.0, created=0.0)


def test_a_duration_lands_in_the_first_bucket_whose_bound_it_does_not_exceed() -> None:
    counts = Counts((0.1, 1.0))
    for seconds in (0.05, 0.1, 0.5, 1.0, 7.0):
        counts.began("g")
        counts.ended("g", "job", seconds)
    counts.began("g")
    counts.ended("g", "job", None)  # nothing ran: counted out of running, not timed
    buckets, total = counts.durations[("g", "job")]
    assert buckets == [2, 2, 1]  # <= 0.1, <= 1.0, +Inf
    assert total == [0.05 + 0.1 + 0.5 + 1.0 + 7.0]
    assert counts.running == {"g": 0}


def test_snapshots_sum_counters_and_the_live_ones_gauges() -> None:
    one, two = Counts(DEFAULT_BUCKETS), Counts(DEFAULT_BUCKETS)
    for counts in (one, two):
        counts.finish(a_task(), "succeeded")
        counts.finish(a_task(), "dead")
        counts.count(counts.reclaimed, "g")
        counts.began("g")
        counts.ended("g", "job", 0.2)
        counts.began("g")
    two.count(two.rejected, "h")
    total = Counts(DEFAULT_BUCKETS)
    total.add(json.loads(json.dumps(one.snapshot())), gauges=True)  # through JSON, as on disk
    total.add(json.loads(json.dumps(two.snapshot())), gauges=False)  # a dead worker's
    assert total.finished == {("g", "job", "succeeded"): 2, ("g", "job", "dead"): 2}
    assert total.dead == {"g": 2} and total.reclaimed == {"g": 2} and total.rejected == {"h": 1}
    assert total.running == {"g": 1}, "only the live worker's running task counts"
    buckets, seconds = total.durations[("g", "job")]
    assert sum(buckets) == 2 and abs(seconds[0] - 0.4) < 1e-9


def test_the_latest_point_wins_the_lag_of_an_entry_whichever_replica_fired_it() -> None:
    early, late = Counts(DEFAULT_BUCKETS), Counts(DEFAULT_BUCKETS)
    late.fired("main", "tick", 20.0, 0.5)
    early.fired("main", "tick", 10.0, 3.0)
    total = Counts(DEFAULT_BUCKETS)
    for counts in (late, early):
        total.add(counts.snapshot(), gauges=True)
    assert total.lag == {("main", "tick"): (20.0, 0.5)}


def test_durations_counted_with_other_buckets_are_left_out_of_the_sum() -> None:
    other = Counts((1.0,))
    other.began("g")
    other.ended("g", "job", 0.5)
    other.finish(a_task(), "succeeded")
    total = Counts(DEFAULT_BUCKETS)
    total.add(other.snapshot(), gauges=True)
    assert total.durations == {}
    assert total.finished == {("g", "job", "succeeded"): 1}


def test_the_flusher_writes_at_start_when_counts_change_and_a_stopped_snapshot_last(
    tmp_path: Path,
) -> None:
    counts = Counts(DEFAULT_BUCKETS)
    path = tmp_path / "w1.json"
    flusher = Flusher(counts, path, "w1")
    flusher.start(interval=3600.0)  # the timer never fires here: writes are explicit
    first = json.loads(path.read_text())
    assert first["worker_id"] == "w1" and first["stopped"] is False and first["finished"] == []
    counts.finish(a_task(), "succeeded")
    flusher.stop()
    last = json.loads(path.read_text())
    assert last["stopped"] is True and last["finished"] == [["g", "job", "succeeded", 1]]
    assert [p.name for p in tmp_path.iterdir()] == ["w1.json"], "no temporary file is left"


class _OneTick(threading.Event):
    """A stop event whose first wait times out and whose second one is set: one tick."""

    def __init__(self) -> None:
        super().__init__()
        self.waits = 0

    def wait(self, timeout: float | None = None) -> bool:
        self.waits += 1
        return self.waits > 1


def test_a_tick_of_the_flusher_rewrites_the_snapshot_only_when_the_counts_changed(
    tmp_path: Path,
) -> None:
    counts = Counts(DEFAULT_BUCKETS)
    path = tmp_path / "w1.json"
    flusher = Flusher(counts, path, "w1")
    flusher.write()
    path.write_text("{}")  # so that a rewrite would show
    flusher._stop = _OneTick()
    flusher._run(0.0)
    assert path.read_text() == "{}", "nothing changed: nothing written"
    counts.finish(a_task(), "succeeded")
    flusher._stop = _OneTick()
    flusher._run(0.0)
    assert json.loads(path.read_text())["finished"] == [["g", "job", "succeeded", 1]]


def test_a_flush_into_a_removed_directory_is_no_error(tmp_path: Path) -> None:
    flusher = Flusher(Counts(DEFAULT_BUCKETS), tmp_path / "gone" / "w1.json", "w1")
    flusher.write()  # the supervisor stopped and removed its directory first
    assert not (tmp_path / "gone").exists()


def test_reading_snapshots_skips_what_is_not_one(tmp_path: Path) -> None:
    (tmp_path / "a.json").write_text(json.dumps({"worker_id": "a"}))
    (tmp_path / "b.json").write_text("{not json")
    (tmp_path / ".c.json.1.tmp").write_text(json.dumps({"worker_id": "c"}))
    assert list(read_snapshots(tmp_path)) == [{"worker_id": "a"}]


def _child_takes(queue: multiprocessing.SimpleQueue[bool]) -> None:
    queue.put(FORK_SAFE.lock.acquire(timeout=5))


def test_a_forked_child_gets_a_free_lock_even_if_the_parent_held_it() -> None:
    queue: multiprocessing.SimpleQueue[bool] = multiprocessing.get_context("fork").SimpleQueue()
    with FORK_SAFE.lock:
        process = multiprocessing.get_context("fork").Process(target=_child_takes, args=(queue,))
        process.start()
        took = queue.get()
    process.join(10)
    assert took is True and process.exitcode == 0
    assert os.getpid() != process.pid
