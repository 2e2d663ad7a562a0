"""The in-memory backend: the reference implementation of the contract and a testing tool.

Use it in unit tests of your own handlers::

    backend = MemoryBackend()
    kit = Kit(backend, MyHandler())
    kit.initiate_task("mail", "send", {"to": "a@example.com"})
    assert backend.tasks(state=TaskState.QUEUED)[0].name == "send"

It is thread-safe and lives in one process (``supports_processes = False``): ``kit.start``
runs its workers as threads of the calling process. Pass ``clock=FakeClock()`` to move
time by hand.
"""

from __future__ import annotations

import itertools
import threading
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import ClassVar

from ._memory_stats import MemoryStatsMixin
from ._task import (
    CancelResult,
    Claim,
    ClaimBatch,
    ControlEvent,
    ControlKind,
    LeaseStatus,
    Outcome,
    OutcomeWrite,
    QueueStats,
    Task,
    TaskState,
)
from .backend import Backend, Notifier, earliest, outcome_changes
from .clock import Clock, SystemClock
from .errors import LeaseLost

__all__ = ["MemoryBackend"]

_CONTROL_KEPT = 100
_DEAD_LETTERS_KEPT = 10_000


@dataclass
class _Record:
    task: Task
    state: TaskState
    token: str | None = None
    worker_id: str | None = None
    lease_expires: float = 0.0
    cancel_requested: bool = False
    result: bytes | None = None
    error: str | None = None
    finished: float | None = None

    def outcome(self) -> Outcome:
        return Outcome(self.task, self.state, self.result, self.error, self.finished)


class MemoryBackend(MemoryStatsMixin, Backend):
    """A thread-safe, single-process backend keeping everything in dictionaries."""

    name: ClassVar[str] = "memory"
    supports_processes: ClassVar[bool] = False
    supports_notifications: ClassVar[bool] = True
    supports_fake_clock: ClassVar[bool] = True
    clock_is_local: ClassVar[bool] = True

    def __init__(self, clock: Clock | None = None) -> None:
        self.clock: Clock = clock or SystemClock()
        self._lock = threading.RLock()
        self._records: dict[str, _Record] = {}
        self._marks: dict[tuple[str, str], float] = {}
        self._control: list[ControlEvent] = []
        self._control_seq = itertools.count(1)
        self._notifier = Notifier()
        self._seen_versions: dict[tuple[str, int], int] = {}

    # ------------------------------------------------------------------ clock

    def now(self) -> float:
        return self.clock.time()

    # ------------------------------------------------------------------ producers

    def put(self, tasks: Sequence[Task]) -> list[bool]:
        with self._lock:
            self._expire()
            stored = [self._insert(task) for task in tasks]
        for group in {t.group for t, ok in zip(tasks, stored) if ok}:
            self._notifier.notify(f"work:{group}")
        return stored

    def _insert(self, task: Task) -> bool:
        if task.id in self._records:
            return False
        self._records[task.id] = _Record(task=task, state=TaskState.QUEUED)
        return True

    def put_scheduled(self, task: Task, scheduler: str, key: str, point: float) -> bool:
        with self._lock:
            self._expire()
            mark = self._marks.get((scheduler, key))
            if (mark is not None and point <= mark) or task.id in self._records:
                return False
            self._marks[(scheduler, key)] = point
            self._insert(task)
        self._notifier.notify(f"work:{task.group}")
        return True

    def get_schedule_mark(self, scheduler: str, key: str) -> float | None:
        with self._lock:
            return self._marks.get((scheduler, key))

    # ------------------------------------------------------------------ workers

    def claim(
        self, group: str, worker_id: str, limit: int, lease_seconds: float, max_deliveries: int
    ) -> ClaimBatch:
        with self._lock:
            self._seen_versions[(group, threading.get_ident())] = self._notifier.version(
                f"work:{group}"
            )
            now = self.now()
            self._expire()
            claims: list[Claim] = []
            dead: list[Outcome] = []
            next_due: float | None = None
            candidates = [r for r in self._records.values() if r.task.group == group]
            candidates.sort(key=lambda r: (r.task.due, r.task.created, r.task.id))
            for rec in candidates:
                if rec.state is TaskState.QUEUED:
                    ready_at = rec.task.due
                elif rec.state is TaskState.RUNNING:
                    ready_at = rec.lease_expires
                else:
                    continue
                if ready_at > now:
                    next_due = earliest(next_due, ready_at)
                    continue
                if len(claims) >= limit:
                    next_due = now
                    continue
                if rec.state is TaskState.RUNNING and rec.task.deliveries >= max_deliveries:
                    self._finish(rec, TaskState.DEAD, error="worker lost", now=now)
                    dead.append(rec.outcome())
                    continue
                rec.state = TaskState.RUNNING
                rec.task = replace(rec.task, deliveries=rec.task.deliveries + 1)
                rec.token = uuid.uuid4().hex
                rec.worker_id = worker_id
                rec.lease_expires = now + lease_seconds
                claims.append(Claim(rec.task, rec.token, rec.lease_expires, worker_id))
            return ClaimBatch(claims, next_due, dead)

    def wait_for_work(self, group: str, timeout: float) -> None:
        key = f"work:{group}"
        seen = self._seen_versions.get((group, threading.get_ident()), -1)
        self._notifier.wait(key, seen, timeout)

    def interrupt_waits(self) -> None:
        self._notifier.wake_all()

    def _current(self, claim: Claim) -> _Record:
        rec = self._records.get(claim.task.id)
        if rec is None or rec.state is not TaskState.RUNNING or rec.token != claim.token:
            raise LeaseLost(f"task {claim.task.id!r}: the claim's token is stale")
        return rec

    def renew(self, claims: Sequence[Claim], lease_seconds: float) -> list[LeaseStatus]:
        with self._lock:
            now = self.now()
            statuses = []
            for claim in claims:
                try:
                    rec = self._current(claim)
                except LeaseLost:
                    statuses.append(LeaseStatus.LOST)
                    continue
                rec.lease_expires = now + lease_seconds
                statuses.append(
                    LeaseStatus.CANCEL_REQUESTED if rec.cancel_requested else LeaseStatus.OK
                )
            return statuses

    def record_outcomes(self, writes: Sequence[OutcomeWrite]) -> list[bool]:
        changes = outcome_changes(writes)
        applied = [False] * len(writes)
        requeued: set[str] = set()
        with self._lock:
            for change in changes:
                try:
                    rec = self._current(change.claim)
                except LeaseLost:
                    continue
                applied[change.index] = True
                if change.due is None:
                    self._finish(rec, change.state, result=change.result, error=change.error)
                    continue
                if change.retried:
                    retries, deliveries = rec.task.retry_count + 1, 0
                else:
                    retries, deliveries = rec.task.retry_count, max(0, rec.task.deliveries - 1)
                rec.task = replace(
                    rec.task, due=change.due, retry_count=retries, deliveries=deliveries
                )
                rec.state = TaskState.QUEUED
                rec.error = change.error
                rec.token = rec.worker_id = None
                requeued.add(rec.task.group)
        for group in requeued:
            self._notifier.notify(f"work:{group}")
        return applied

    def release_worker(self, worker_id: str) -> int:
        with self._lock:
            now = self.now()
            released = [
                r
                for r in self._records.values()
                if r.state is TaskState.RUNNING and r.worker_id == worker_id
            ]
            for rec in released:
                rec.lease_expires = min(rec.lease_expires, now)
        for group in {r.task.group for r in released}:
            self._notifier.notify(f"work:{group}")
        return len(released)

    # ------------------------------------------------------------------ results

    def _finish(
        self,
        rec: _Record,
        state: TaskState,
        *,
        result: bytes | None = None,
        error: str | None = None,
        now: float | None = None,
    ) -> None:
        rec.state = state
        rec.result = result
        rec.error = error
        rec.finished = self.now() if now is None else now
        rec.token = rec.worker_id = None
        rec.cancel_requested = False
        self._notifier.notify(f"outcome:{rec.task.id}")
        self._count_finished(rec)
        if state is TaskState.DEAD:
            self._trim_dead_letters()

    def get_outcome(self, task_id: str) -> Outcome | None:
        with self._lock:
            self._expire()
            rec = self._records.get(task_id)
            return None if rec is None else rec.outcome()

    def wait_for_outcome(self, task_id: str, timeout: float) -> Outcome | None:
        key = f"outcome:{task_id}"
        seen = self._notifier.version(key)
        outcome = self.get_outcome(task_id)
        if outcome is None or outcome.state.finished:
            return outcome
        self._notifier.wait(key, seen, timeout)
        return self.get_outcome(task_id)

    # ------------------------------------------------------------------ control

    def cancel(self, task_id: str, reason: str = "cancelled") -> CancelResult:
        with self._lock:
            rec = self._records.get(task_id)
            if rec is None:
                return CancelResult.NOT_FOUND
            if rec.state is TaskState.QUEUED:
                self._finish(rec, TaskState.CANCELLED, error=reason)
                return CancelResult.CANCELLED
            if rec.state is TaskState.RUNNING:
                rec.cancel_requested = True
                return CancelResult.REQUESTED
            return CancelResult.FINISHED

    def publish_control(self, kind: ControlKind, groups: Sequence[str] | None) -> ControlEvent:
        with self._lock:
            event = ControlEvent(
                next(self._control_seq), kind, None if groups is None else tuple(groups), self.now()
            )
            self._control.append(event)
            del self._control[:-_CONTROL_KEPT]
            return event

    def read_control(self, after_seq: int) -> list[ControlEvent]:
        with self._lock:
            return [e for e in self._control if e.seq > after_seq]

    # ------------------------------------------------------------------ dead letters

    def list_dead_letters(self, group: str | None = None, limit: int = 100) -> list[Outcome]:
        with self._lock:
            dead = [
                r
                for r in self._records.values()
                if r.state is TaskState.DEAD and (group is None or r.task.group == group)
            ]
            dead.sort(key=lambda r: r.finished or 0.0, reverse=True)
            return [r.outcome() for r in dead[:limit]]

    def requeue_dead_letter(self, task_id: str) -> bool:
        with self._lock:
            rec = self._records.get(task_id)
            if rec is None or rec.state is not TaskState.DEAD:
                return False
            rec.state = TaskState.QUEUED
            rec.task = replace(rec.task, due=self.now(), deliveries=0)
            rec.error = rec.finished = None
        self._notifier.notify(f"work:{rec.task.group}")
        return True

    def _trim_dead_letters(self) -> None:
        dead = [r for r in self._records.values() if r.state is TaskState.DEAD]
        if len(dead) > _DEAD_LETTERS_KEPT:
            dead.sort(key=lambda r: r.finished or 0.0)
            for rec in dead[: len(dead) - _DEAD_LETTERS_KEPT]:
                del self._records[rec.task.id]

    # ------------------------------------------------------------------ maintenance

    def stats(self, group: str) -> QueueStats:
        with self._lock:
            states = [r.state for r in self._records.values() if r.task.group == group]
            return QueueStats(
                queued=states.count(TaskState.QUEUED), running=states.count(TaskState.RUNNING)
            )

    def purge(self, finished_before: float) -> int:
        with self._lock:
            old = [
                tid
                for tid, r in self._records.items()
                if r.state.finished and r.finished is not None and r.finished < finished_before
            ]
            for tid in old:
                del self._records[tid]
            return len(old)

    def _expire(self) -> None:
        """Drop finished records whose TTL ran out (native TTLs elsewhere)."""
        now = self.now()
        expired = [
            tid
            for tid, r in self._records.items()
            if r.finished is not None and r.finished + r.task.ttl <= now
        ]
        for tid in expired:
            del self._records[tid]

    # ------------------------------------------------------------------ introspection

    def tasks(self, state: TaskState | None = None, group: str | None = None) -> list[Task]:
        """Stored tasks, optionally filtered, in claim order: a helper for tests."""
        with self._lock:
            return self._claim_order(
                r.task
                for r in self._records.values()
                if (state is None or r.state is state) and (group is None or r.task.group == group)
            )

    def outcomes(self) -> dict[str, Outcome]:
        """Every stored record's outcome by task id: a helper for tests."""
        with self._lock:
            return {tid: r.outcome() for tid, r in self._records.items()}

    def reset(self) -> None:
        """Forget everything."""
        with self._lock:
            self._records.clear()
            self._marks.clear()
            self._control.clear()
            self._forget_figures()

    def clone(self) -> MemoryBackend:
        # One process: the "clone" is the same store, so threads share it.
        return self
