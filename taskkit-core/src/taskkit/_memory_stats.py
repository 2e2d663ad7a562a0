"""The fleet and queue figures of :class:`taskkit.MemoryBackend`: the reference answers.

The in-memory store is one dictionary in one process, so its figures are exact: group
counts come from a pass over the records (what its claims do too; a testing tool keeps no
index), finished counts from a per-group log of (time, state) kept for the longest window,
and the worker registry is a dictionary.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, ClassVar, Protocol

from ._stats import (
    MAX_FINISHED_WINDOW,
    FinishedCounts,
    GroupStats,
    WorkerInfo,
    checked_heartbeat,
    checked_registration,
    checked_window,
)
from ._task import Task, TaskState

__all__ = ["MemoryStatsMixin"]


class _Record(Protocol):
    """What the figures read of ``MemoryBackend``'s records (``taskkit.memory`` imports this
    module, so the record class is described here instead of imported)."""

    task: Task
    state: TaskState
    finished: float | None


class _Figures:
    """The mixin's own state, made on first use (MemoryBackend's ``__init__`` is its own)."""

    def __init__(self) -> None:
        #: Per group: (finish time, state value), oldest first, for the longest window.
        self.finished: dict[str, deque[tuple[float, str]]] = {}
        self.workers: dict[str, WorkerInfo] = {}


class MemoryStatsMixin:
    """Mixed into :class:`taskkit.MemoryBackend` before :class:`taskkit.Backend`."""

    supports_fleet_stats: ClassVar[bool] = True

    if TYPE_CHECKING:  # provided by MemoryBackend
        _lock: threading.RLock
        _records: Mapping[str, _Record]

        def now(self) -> float: ...

    @property
    def _figures(self) -> _Figures:
        with self._lock:
            figures: _Figures | None = self.__dict__.get("_fleet_figures")
            if figures is None:
                figures = self.__dict__["_fleet_figures"] = _Figures()
            return figures

    def _count_finished(self, rec: _Record) -> None:
        """Log a task that just finished (``MemoryBackend._finish`` calls it: every finish
        passes there, a worker's outcome, a claim's "worker lost" and a queued cancel)."""
        finished = rec.finished if rec.finished is not None else self.now()
        log = self._figures.finished.setdefault(rec.task.group, deque())
        log.append((finished, rec.state.value))
        while log and log[0][0] < finished - MAX_FINISHED_WINDOW:
            log.popleft()

    def list_groups(self) -> list[str]:
        with self._lock:
            since = self.now() - MAX_FINISHED_WINDOW
            groups = {r.task.group for r in self._records.values()}
            groups.update(
                g for g, log in self._figures.finished.items() if log and log[-1][0] >= since
            )
            return sorted(groups)

    def group_stats(self, group: str) -> GroupStats:
        with self._lock:
            now = self.now()
            queued = scheduled = running = dead = 0
            oldest: float | None = None
            for rec in self._records.values():
                if rec.task.group != group:
                    continue
                if rec.state is TaskState.QUEUED and rec.task.due <= now:
                    queued += 1
                    oldest = rec.task.due if oldest is None else min(oldest, rec.task.due)
                elif rec.state is TaskState.QUEUED:
                    scheduled += 1
                elif rec.state is TaskState.RUNNING:
                    running += 1
                elif rec.state is TaskState.DEAD and (rec.finished or now) + rec.task.ttl > now:
                    dead += 1
            age = None if oldest is None else now - oldest
            return GroupStats(group, queued, scheduled, running, dead, age, now)

    def finished_counts(self, group: str, window: float = 300.0) -> FinishedCounts:
        window = checked_window(window)
        with self._lock:
            now = self.now()
            since = now - window
            counts: dict[str, int] = {}
            for finished, state in self._figures.finished.get(group, ()):
                if finished >= since:
                    counts[state] = counts.get(state, 0) + 1
            return FinishedCounts.of(group, since, now, counts)

    def register_worker(
        self,
        worker_id: str,
        host: str,
        pid: int,
        threads: Mapping[str, int],
        expires_after: float,
    ) -> None:
        info = checked_registration(worker_id, host, pid, threads, expires_after)
        with self._lock:
            now = self.now()
            self._figures.workers[info.id] = replace(
                info, started=now, heartbeat=now, expires=now + float(expires_after)
            )

    def heartbeat_worker(self, worker_id: str, tasks_held: int, expires_after: float) -> bool:
        after = checked_heartbeat(worker_id, tasks_held, expires_after)
        with self._lock:
            now = self.now()
            workers = self._figures.workers
            info = workers.get(worker_id)
            if info is None or info.expires <= now:
                workers.pop(worker_id, None)
                return False
            workers[worker_id] = replace(
                info, heartbeat=now, expires=now + after, tasks_held=tasks_held
            )
            return True

    def deregister_worker(self, worker_id: str) -> None:
        with self._lock:
            self._figures.workers.pop(worker_id, None)

    def list_workers(self) -> list[WorkerInfo]:
        with self._lock:
            now = self.now()
            workers = self._figures.workers
            for worker_id in [w for w, info in workers.items() if info.expires <= now]:
                del workers[worker_id]
            return sorted(workers.values(), key=lambda w: (w.started, w.id))

    def _forget_figures(self) -> None:
        """Drop the counts and the registry (``MemoryBackend.reset`` calls it)."""
        with self._lock:
            self.__dict__.pop("_fleet_figures", None)
