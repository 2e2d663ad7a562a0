"""What a worker process counts for the Prometheus exporter, and the snapshots it writes.

Plain Python, no ``prometheus_client``: a worker pays a lock and a few dict updates per task.
:class:`Counts` holds one process's figures (or, summed, a supervisor's); :class:`Flusher`
writes them as JSON into the supervisor's directory when they changed, every
``flush_interval`` seconds and once more when the worker stops; :func:`read_snapshots` reads
them back in the supervisor. :mod:`taskkit.contrib.prometheus` is the plugin that uses them.
"""

from __future__ import annotations

import bisect
import json
import logging
import os
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from .._task import Task

__all__ = ["DEFAULT_BUCKETS", "FORK_SAFE", "Counts", "Flusher", "read_snapshots"]

log = logging.getLogger("taskkit.metrics")

#: The upper bounds (seconds) of ``taskkit_task_duration_seconds``'s buckets: from a few
#: milliseconds to the default time limit of ten minutes.
DEFAULT_BUCKETS: tuple[float, ...] = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0,
)  # fmt: skip


class Counts:
    """What one worker process counted (or, merged, the whole supervisor); thread-safe.

    Its snapshot is plain JSON: a worker writes it to a file, the supervisor sums the files.
    """

    def __init__(self, buckets: Sequence[float]) -> None:
        self.buckets = tuple(buckets)
        self.lock = threading.Lock()
        self.version = 0  # moves on every change: the flusher writes only what changed
        self.finished: dict[tuple[str, str, str], int] = {}
        #: (group, name) -> [count per bucket (not cumulative), the +Inf one last], sum
        self.durations: dict[tuple[str, str], tuple[list[int], list[float]]] = {}
        self.running: dict[str, int] = {}
        self.reclaimed: dict[str, int] = {}
        self.rejected: dict[str, int] = {}
        self.dead: dict[str, int] = {}
        #: (scheduler, entry) -> (the point, its lag): the latest point wins a merge
        self.lag: dict[tuple[str, str], tuple[float, float]] = {}

    def began(self, group: str) -> None:
        with self.lock:
            self.running[group] = self.running.get(group, 0) + 1
            self.version += 1

    def ended(self, group: str, name: str, seconds: float | None) -> None:
        """A handler returned or raised (``seconds`` None: nothing ran, not timed)."""
        with self.lock:
            self.running[group] -= 1
            if seconds is not None:
                counts, total = self.durations.setdefault(
                    (group, name), ([0] * (len(self.buckets) + 1), [0.0])
                )
                counts[bisect.bisect_left(self.buckets, seconds)] += 1
                total[0] += seconds
            self.version += 1

    def finish(self, task: Task, outcome: str) -> None:
        key = (task.group, task.name, outcome)
        with self.lock:
            self.finished[key] = self.finished.get(key, 0) + 1
            if outcome == "dead":
                self.dead[task.group] = self.dead.get(task.group, 0) + 1
            self.version += 1

    def count(self, table: dict[str, int], group: str) -> None:
        with self.lock:
            table[group] = table.get(group, 0) + 1
            self.version += 1

    def fired(self, scheduler: str, entry: str, point: float, lag: float) -> None:
        with self.lock:
            self.lag[(scheduler, entry)] = (point, lag)
            self.version += 1

    def snapshot(self, **extra: Any) -> dict[str, Any]:
        with self.lock:
            return {
                **extra,
                "buckets": list(self.buckets),
                "finished": [[*key, n] for key, n in self.finished.items()],
                "durations": [
                    [*key, list(counts), total[0]]
                    for key, (counts, total) in self.durations.items()
                ],
                "running": list(self.running.items()),
                "reclaimed": list(self.reclaimed.items()),
                "rejected": list(self.rejected.items()),
                "dead": list(self.dead.items()),
                "lag": [[*key, *value] for key, value in self.lag.items()],
            }

    def add(self, snapshot: dict[str, Any], *, gauges: bool) -> None:
        """Sum ``snapshot`` into these counts (``gauges``: its running tasks too)."""
        for group, name, outcome, n in snapshot["finished"]:
            key = (group, name, outcome)
            self.finished[key] = self.finished.get(key, 0) + n
        same_buckets = snapshot["buckets"] == list(self.buckets)
        for group, name, counts, total in snapshot["durations"]:
            if not same_buckets:
                continue  # written by an exporter with other buckets: cannot be summed
            mine, my_total = self.durations.setdefault(
                (group, name), ([0] * (len(self.buckets) + 1), [0.0])
            )
            for i, n in enumerate(counts):
                mine[i] += n
            my_total[0] += total
        for table, rows in (
            (self.reclaimed, snapshot["reclaimed"]),
            (self.rejected, snapshot["rejected"]),
            (self.dead, snapshot["dead"]),
            *([(self.running, snapshot["running"])] if gauges else []),
        ):
            for group, n in rows:
                table[group] = table.get(group, 0) + n
        for scheduler, entry, point, lag in snapshot["lag"]:
            known = self.lag.get((scheduler, entry))
            if known is None or point > known[0]:
                self.lag[(scheduler, entry)] = (point, lag)


class ForkSafeLock:
    """A process-wide lock made anew in a forked child (a fork may copy it held)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        os.register_at_fork(after_in_child=self._renew)

    def _renew(self) -> None:
        self.lock = threading.Lock()


FORK_SAFE = ForkSafeLock()


class Flusher:
    """A worker process's thread that writes its snapshot when it changed."""

    def __init__(self, counts: Counts, path: Path, worker_id: str) -> None:
        self.counts = counts
        self.path = path
        self.worker_id = worker_id
        self._stop = threading.Event()
        self._written = -1
        self._thread: threading.Thread | None = None

    def start(self, interval: float) -> None:
        self.write()  # at once: the supervisor sees the worker's groups before its first task
        self._thread = threading.Thread(
            target=self._run, args=(interval,), name="taskkit-metrics-flush", daemon=True
        )
        self._thread.start()

    def _run(self, interval: float) -> None:
        while not self._stop.wait(interval):
            if self.counts.version != self._written:
                self.write()

    def write(self, stopped: bool = False) -> None:
        version = self.counts.version
        snapshot = self.counts.snapshot(worker_id=self.worker_id, stopped=stopped)
        temporary = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        try:
            temporary.write_text(json.dumps(snapshot))
            os.replace(temporary, self.path)  # atomic: a scrape never reads half a file
        except OSError as exc:  # the supervisor stopped and removed its directory
            log.debug("metrics: could not write %s: %s", self.path, exc)
            return
        self._written = version

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5.0)
        self.write(stopped=True)


def read_snapshots(directory: Path) -> Iterator[dict[str, Any]]:
    """The snapshots written into ``directory`` (unreadable ones skipped)."""
    for path in sorted(directory.glob("*.json")):
        try:
            yield json.loads(path.read_text())
        except (OSError, ValueError):
            continue  # gone with its supervisor's directory, or not ours
