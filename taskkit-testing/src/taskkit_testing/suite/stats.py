"""Fleet and queue figures: per-group counts, finished counts over a window, live workers.

Every test here needs :attr:`taskkit.Backend.supports_fleet_stats`; a backend that does not
declare it is skipped, saying so.
"""

from __future__ import annotations

import math
import socket
import time
from pathlib import Path
from typing import Any

import pytest
from taskkit import Backend, CancelResult, Kit, OutcomeWrite, Task, WorkerInfo
from taskkit.backend import FINISHED_BUCKET, MAX_FINISHED_WINDOW

from .._base import BackendPool, KitSettings, KitTestBase, Timing
from ..helpers import TaskMaker, claim_one, raises, result_value, unique_name, violated, wait_until
from ._handlers import ConformanceHandler
from .runtime import _config, running

__all__ = ["FleetStatsTests"]

_REQUIRES = pytest.mark.taskkit_requires("supports_fleet_stats")


class HoldingHandler(ConformanceHandler):
    """The conformance handler plus ``hold`` ({path}): runs until the file ``path`` exists,
    so a test can look at a worker while it holds the task."""

    def handle(self, task: Task) -> Any:
        if task.name == "hold":
            path = Path(self.decode_data(task)["path"])
            deadline = time.monotonic() + 120.0
            while not path.exists() and time.monotonic() < deadline:
                time.sleep(0.01)  # the work: waiting for the test to let it finish
            return task.id
        return super().handle(task)


def _figures(stats: Any) -> dict[str, int]:
    return {
        "queued": stats.queued,
        "scheduled": stats.scheduled,
        "running": stats.running,
        "dead_letters": stats.dead_letters,
    }


class FleetStatsTests(KitTestBase):
    """``group_stats``, ``list_groups``, ``finished_counts`` and the worker registry answer
    exactly, on the backend's clock, and stop listing what is gone."""

    # ------------------------------------------------------------------ group figures

    @_REQUIRES
    def test_group_stats_count_each_state(
        self, backend: Backend, tasks: TaskMaker, timing: Timing
    ) -> None:
        poison = tasks.one()
        backend.put([poison])
        backend.bury(claim_one(backend, tasks.group, "w0", timing.long_lease, 3), "poison")
        now = timing.now()
        oldest, older, fresh = tasks.one(due=now - 60), tasks.one(due=now - 30), tasks.one()
        later = tasks.many(3, delay=timing.long_lease)
        backend.put([oldest, older, fresh, *later])
        claim = claim_one(
            backend,
            tasks.group,
            "w1",
            timing.long_lease,
            3,
            "a claim must take the task that is due the earliest",
        )
        assert claim.task.id == oldest.id, violated(
            "a claim must take the task that is due the earliest", got=claim.task.id
        )
        before = timing.now()
        stats = backend.group_stats(tasks.group)
        after = timing.now()
        assert _figures(stats) == {
            "queued": 2,
            "scheduled": 3,
            "running": 1,
            "dead_letters": 1,
        }, violated(
            "group_stats must count the due queued tasks, the ones due later, the running ones "
            "and the dead letters apart (2 due, 3 later, 1 running, 1 dead)",
            got=_figures(stats),
        )
        assert stats.group == tasks.group and stats.waiting == 5, violated(
            "group_stats must name its group, and waiting = queued + scheduled",
            got=(stats.group, stats.waiting),
        )
        assert before - 1e-3 <= stats.now <= after + 1e-3, violated(
            "group_stats must report the backend's clock at the reading",
            got=f"{stats.now - before:+.3f}s from before the call",
        )
        assert stats.oldest_due_age is not None, violated(
            "with tasks due, group_stats must report the oldest due task's age"
        )
        assert stats.oldest_due_age == pytest.approx(stats.now - older.due, abs=1e-3), violated(
            "oldest_due_age must be now - due of the oldest due task still queued (the "
            "running one no longer counts), on the backend's clock",
            got=f"{stats.oldest_due_age:.3f}s, expected {stats.now - older.due:.3f}s",
        )
        backend.complete(claim, b"")

    @_REQUIRES
    def test_group_stats_of_an_empty_group(self, backend: Backend, group: str) -> None:
        stats = backend.group_stats(group)
        assert (_figures(stats), stats.oldest_due_age) == (
            {"queued": 0, "scheduled": 0, "running": 0, "dead_letters": 0},
            None,
        ), violated(
            "a group without tasks has zero counts and no oldest due age",
            got=(_figures(stats), stats.oldest_due_age),
        )

    @_REQUIRES
    def test_a_scheduled_task_counts_as_queued_once_due(
        self, backend: Backend, tasks: TaskMaker, timing: Timing
    ) -> None:
        task = tasks.one(delay=timing.future)
        backend.put([task])
        stats = backend.group_stats(tasks.group)
        if stats.now < task.due:
            assert (stats.queued, stats.scheduled, stats.oldest_due_age) == (0, 1, None), violated(
                "a task due later must count as scheduled, not queued, and has no due age",
                got=(stats.queued, stats.scheduled, stats.oldest_due_age),
            )
        timing.advance_past(task.due)
        stats = backend.group_stats(tasks.group)
        assert (stats.queued, stats.scheduled) == (1, 0), violated(
            "once its due time passed, a scheduled task must count as queued",
            got=(stats.queued, stats.scheduled),
        )
        age = stats.oldest_due_age
        assert age is not None and age == pytest.approx(stats.now - task.due, abs=1e-3), violated(
            "a task that became due has waited now - due", got=age
        )

    @_REQUIRES
    def test_group_stats_follow_retries_and_requeues(
        self, backend: Backend, tasks: TaskMaker, timing: Timing
    ) -> None:
        retried, dead = tasks.one(), tasks.one()
        backend.put([retried])
        claim = claim_one(backend, tasks.group, "w1", timing.long_lease, 3)
        backend.retry(claim, timing.now() + timing.long_lease, "later")
        backend.put([dead])
        backend.bury(claim_one(backend, tasks.group, "w1", timing.long_lease, 3), "poison")
        stats = backend.group_stats(tasks.group)
        got = (stats.queued, stats.scheduled, stats.running, stats.dead_letters)
        assert got == (0, 1, 0, 1), violated(
            "a task retried for later must count as scheduled (no longer running), a buried "
            "one as a dead letter",
            got=got,
        )
        assert backend.requeue_dead_letter(dead.id), violated(
            "requeue_dead_letter must requeue a dead letter"
        )
        stats = backend.group_stats(tasks.group)
        after = (stats.queued, stats.scheduled, stats.dead_letters)
        assert after == (1, 1, 0), violated(
            "a requeued dead letter must count as queued and no longer as a dead letter",
            got=after,
        )

    @_REQUIRES
    def test_list_groups_names_every_group_with_tasks(
        self, backend: Backend, tasks: TaskMaker, timing: Timing
    ) -> None:
        queued, dead, done = unique_name("q"), unique_name("d"), unique_name("f")
        backend.put([tasks.one(group=queued), tasks.one(group=dead), tasks.one(group=done)])
        backend.bury(claim_one(backend, dead, "w1", timing.long_lease, 3), "poison")
        backend.complete(claim_one(backend, done, "w1", timing.long_lease, 3), b"")
        groups = backend.list_groups()
        assert {queued, dead, done} <= set(groups), violated(
            "list_groups must name every group with a queued task, a dead letter or a task "
            "finished recently",
            got=sorted({queued, dead, done} - set(groups)),
        )
        assert groups == sorted(set(groups)), violated(
            "list_groups must answer each group once, sorted", got=groups
        )

    # ------------------------------------------------------------------ finished counts

    @_REQUIRES
    def test_finished_counts_count_each_outcome_once(
        self, backends: BackendPool, tasks: TaskMaker, timing: Timing
    ) -> None:
        backend = backends.primary
        made = {name: tasks.one(name=name) for name in ("ok", "fail", "discard", "bury", "ack")}
        for task in made.values():
            backend.put([task])
            claim = claim_one(backend, tasks.group, "w1", timing.long_lease, 3)
            if task.name == "ok":
                backend.complete(claim, b"")
            elif task.name == "fail":
                backend.fail(claim, "Traceback: boom")
            elif task.name == "discard":
                backend.discard(claim, "not wanted")
            elif task.name == "bury":
                backend.bury(claim, "poison")
            else:
                backend.cancel(claim.task.id)
                backend.acknowledge_cancel(claim, "cancelled")
                stale = backend.record_outcomes([OutcomeWrite(claim, "complete", b"")])
                assert stale == [False], violated(
                    "a second outcome of one claim must be refused", got=stale
                )
        queued = tasks.one()
        backend.put([queued])
        answer = backend.cancel(queued.id)
        assert answer is CancelResult.CANCELLED, violated(
            "cancelling a queued task must cancel it", got=answer
        )
        lost = tasks.one()
        backend.put([lost])
        first = claim_one(backend, tasks.group, "dying", timing.short_lease, 1)
        timing.advance_past(first.lease_expires)
        buried = backends.new().claim(tasks.group, "rescuer", 1, timing.long_lease, 1)
        assert [o.task.id for o in buried.dead_lettered] == [lost.id], violated(
            "a reclaim past max_deliveries must bury the task 'worker lost'"
        )
        retried, deferred = tasks.one(), tasks.one()
        backend.put([retried, deferred])
        for claim in backend.claim(tasks.group, "w1", 2, timing.long_lease, 3).claims:
            if claim.task.id == retried.id:
                backend.retry(claim, timing.now() + timing.long_lease, "again")
            else:
                backend.defer(claim, timing.now() + timing.long_lease, "not yet")
        other = tasks.one(group=unique_name("other"))
        backend.put([other])
        backend.complete(claim_one(backend, other.group, "w1", timing.long_lease, 3), b"")

        counts = backend.finished_counts(tasks.group, 300.0)
        expected = {"succeeded": 1, "failed": 1, "discarded": 1, "dead": 2, "cancelled": 2}
        assert counts.as_dict() == expected, violated(
            "finished_counts must count each task once in the state it finished in: a worker's "
            "outcomes, a cancel of a queued task, a 'worker lost' burial; not retries, "
            "defers, other groups or stale writes",
            got=counts.as_dict(),
        )
        assert counts.group == tasks.group and counts.total == 7, violated(
            "finished_counts must name its group and total its counts",
            got=(counts.group, counts.total),
        )
        assert counts.until - 300.0 - FINISHED_BUCKET - 1e-3 <= counts.since, violated(
            f"the span counted starts at most {FINISHED_BUCKET:g}s (a bucket) before now - window",
            got=f"since is {counts.until - counts.since:.3f}s before until",
        )
        assert counts.since <= counts.until - 300.0 + 1e-3, violated(
            "the span counted covers the whole window",
            got=f"since is {counts.until - counts.since:.3f}s before until",
        )

    @_REQUIRES
    def test_finished_counts_leave_the_window(
        self, backend: Backend, tasks: TaskMaker, timing: Timing
    ) -> None:
        if not timing.fake:
            pytest.skip("moving the backend's clock past a window needs a fake clock")
        first = tasks.one()
        backend.put([first])
        backend.complete(claim_one(backend, tasks.group, "w1", timing.long_lease, 3), b"")
        timing.pass_seconds(120.0)
        second = tasks.one()
        backend.put([second])
        backend.fail(claim_one(backend, tasks.group, "w1", timing.long_lease, 3), "boom")
        recent = backend.finished_counts(tasks.group, 60.0)
        wide = backend.finished_counts(tasks.group, 300.0)
        assert (recent.succeeded, recent.failed) == (0, 1), violated(
            "a 60 s window must leave out a task finished 120 s ago",
            got=recent.as_dict(),
        )
        assert (wide.succeeded, wide.failed) == (1, 1), violated(
            "a 300 s window must count both tasks finished in the last 120 s", got=wide.as_dict()
        )
        timing.pass_seconds(MAX_FINISHED_WINDOW + 2 * FINISHED_BUCKET)
        gone = backend.finished_counts(tasks.group, MAX_FINISHED_WINDOW)
        assert gone.total == 0, violated(
            "counts older than the longest window must not be counted", got=gone.as_dict()
        )

    @_REQUIRES
    @pytest.mark.parametrize("window", [0.0, -1.0, math.nan, math.inf, MAX_FINISHED_WINDOW + 1])
    def test_a_bad_window_is_refused(self, backend: Backend, group: str, window: float) -> None:
        with raises(ValueError, f"finished_counts(window={window!r}) must raise ValueError"):
            backend.finished_counts(group, window)

    # ------------------------------------------------------------------ the worker registry

    def _worker(self, backend: Backend, worker_id: str) -> Any:
        return next((w for w in backend.list_workers() if w.id == worker_id), None)

    @_REQUIRES
    def test_a_registered_worker_is_listed_with_its_heartbeat(
        self, backends: BackendPool, group: str, timing: Timing
    ) -> None:
        backend, other = backends.primary, backends.new()
        worker_id = unique_name("worker")
        before = timing.now()
        backend.register_worker(worker_id, "host-1", 4242, {group: 3}, timing.long_lease)
        after = timing.now()
        info = self._worker(other, worker_id)
        assert info is not None, violated("a registered worker must be listed by list_workers")
        got = (info.host, info.pid, dict(info.threads), info.groups, info.tasks_held)
        assert got == ("host-1", 4242, {group: 3}, (group,), 0), violated(
            "list_workers must report the registered host, pid, threads per group and no tasks",
            got=got,
        )
        assert before - 1e-3 <= info.started <= after + 1e-3, violated(
            "a worker's start is the backend's clock at registration",
            got=f"{info.started - before:+.3f}s",
        )
        assert info.heartbeat == pytest.approx(info.started, abs=1e-3), violated(
            "registering counts as the first heartbeat", got=info.heartbeat - info.started
        )
        timing.pass_seconds(1.0)
        renewed = backend.heartbeat_worker(worker_id, 2, timing.long_lease)
        assert renewed is True, violated(
            "heartbeat_worker must answer True for a live worker", got=renewed
        )
        beat = self._worker(other, worker_id)
        assert beat is not None and beat.tasks_held == 2, violated(
            "a heartbeat must store the tasks the worker holds",
            got=None if beat is None else beat.tasks_held,
        )
        assert beat.heartbeat >= info.heartbeat + 1.0 - 1e-3, violated(
            "a heartbeat must move the worker's last heartbeat to the backend's clock now",
            got=f"{beat.heartbeat - info.heartbeat:+.3f}s",
        )
        assert beat.started == pytest.approx(info.started, abs=1e-3), violated(
            "a heartbeat must keep the worker's start time"
        )

    @_REQUIRES
    def test_workers_are_listed_oldest_first(self, backend: Backend, timing: Timing) -> None:
        first, second = unique_name("first"), unique_name("second")
        backend.register_worker(first, "h", 1, {}, timing.long_lease)
        timing.pass_seconds(0.05)
        backend.register_worker(second, "h", 2, {}, timing.long_lease)
        order = [w.id for w in backend.list_workers() if w.id in (first, second)]
        assert order == [first, second], violated(
            "list_workers must list the oldest registration first", got=order
        )

    @_REQUIRES
    def test_a_deregistered_worker_is_gone(self, backend: Backend, timing: Timing) -> None:
        worker_id = unique_name("worker")
        backend.register_worker(worker_id, "h", 1, {}, timing.long_lease)
        backend.deregister_worker(worker_id)
        backend.deregister_worker(worker_id)  # idempotent
        assert self._worker(backend, worker_id) is None, violated(
            "a deregistered worker must not be listed"
        )
        renewed = backend.heartbeat_worker(worker_id, 0, timing.long_lease)
        assert renewed is False, violated(
            "heartbeat_worker must answer False for a worker that is not registered "
            "(so it registers again)",
            got=renewed,
        )
        assert self._worker(backend, worker_id) is None, violated(
            "a heartbeat must not bring back a deregistered worker"
        )

    @_REQUIRES
    def test_a_silent_worker_ages_out(self, backend: Backend, timing: Timing) -> None:
        worker_id = unique_name("worker")
        backend.register_worker(worker_id, "h", 1, {}, timing.short_lease)
        listed = self._worker(backend, worker_id)
        if listed is not None:
            timing.advance_past(listed.started + timing.short_lease)
        assert self._worker(backend, worker_id) is None, violated(
            "a worker must no longer be listed expires_after seconds after its last heartbeat"
        )
        renewed = backend.heartbeat_worker(worker_id, 0, timing.short_lease)
        assert renewed is False, violated(
            "heartbeat_worker must answer False once the worker aged out", got=renewed
        )
        backend.register_worker(worker_id, "h", 1, {}, timing.long_lease)
        assert self._worker(backend, worker_id) is not None, violated(
            "a worker that aged out must be listed again once it registers again"
        )

    @_REQUIRES
    @pytest.mark.parametrize(
        ("worker_id", "host", "pid", "threads", "expires_after"),
        [
            ("", "h", 1, {}, 30.0),
            ("w", "", 1, {}, 30.0),
            ("w", "h", -1, {}, 30.0),
            ("w", "h", 1, {"g": 0}, 30.0),
            ("w", "h", 1, {"bad:group": 1}, 30.0),
            ("w", "h", 1, {}, 0.0),
            ("w", "h", 1, {}, math.nan),
        ],
        ids=["no-id", "no-host", "negative-pid", "no-threads", "bad-group", "no-expiry", "nan"],
    )
    def test_a_bad_registration_is_refused_and_stores_nothing(
        self,
        backend: Backend,
        worker_id: str,
        host: str,
        pid: int,
        threads: dict[str, int],
        expires_after: float,
    ) -> None:
        with raises(ValueError, "register_worker must refuse a bad argument with ValueError"):
            backend.register_worker(worker_id, host, pid, threads, expires_after)
        assert self._worker(backend, worker_id) is None, violated(
            "a refused registration must store nothing"
        )
        with raises(ValueError, "heartbeat_worker must refuse a negative task count"):
            backend.heartbeat_worker("w", -1, 30.0)

    @_REQUIRES
    @pytest.mark.taskkit_processes
    def test_a_running_worker_is_listed_until_it_stops(
        self, backend: Backend, group: str, kit_settings: KitSettings, tmp_path: Path
    ) -> None:
        kit = Kit(backend, HoldingHandler(), _config(kit_settings))
        release = tmp_path / "release"
        held = [kit.initiate_task(group, "hold", {"path": str(release)}) for _ in range(2)]
        timeout = kit_settings.deadline(30.0)
        with running(kit, 1, {group: 2}, timeout, "spawn") as handles:
            found: list[WorkerInfo] = []

            def holding() -> bool:
                found[:] = [
                    w for w in backend.list_workers() if group in w.threads and w.tasks_held == 2
                ]
                return bool(found)

            wait_until(
                holding,
                timeout=timeout,
                message="a running worker listed with the 2 tasks it holds (after a heartbeat)",
            )
            worker = found[0]
            pid = handles[0].pid
            got = (worker.host, worker.pid, dict(worker.threads))
            assert got == (socket.gethostname(), pid, {group: 2}), violated(
                "a worker must register its host, pid and threads per group", got=got
            )
            assert worker.started <= worker.heartbeat <= backend.now() + 1e-3, violated(
                "a worker's last heartbeat is on the backend's clock, after its start",
                got=(worker.started, worker.heartbeat),
            )
            release.touch()
            for result in held:
                result_value(result, timeout, "the held tasks must finish once released")
            for handle in handles:
                handle.terminate()
            for handle in handles:
                handle.join(timeout)
        listed = [w.id for w in backend.list_workers()]
        assert worker.id not in listed, violated(
            "a worker that stopped must deregister (no longer listed)", got=listed
        )
