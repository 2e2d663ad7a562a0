"""Deliberately broken backends: each breaks one guarantee, and the kit must notice.

All are MemoryBackend subclasses with one realistic bug each.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Sequence
from dataclasses import replace
from typing import Any, ClassVar

from taskkit import Claim, ClaimBatch, MemoryBackend, Outcome, OutcomeWrite, Task, TaskState
from taskkit.memory import _Record


class LosesTasks(MemoryBackend):
    """Acknowledges every task but silently drops every fifth one it stores."""

    _stored = 0

    def _insert(self, task: Task) -> bool:
        if task.id in self._records:
            return False
        self._stored += 1
        if self._stored % 5 == 0:
            return True  # reported as stored, never written
        return super()._insert(task)


class DoubleClaims(MemoryBackend):
    """Reads the claimable tasks, lets go of the lock, then takes them without re-checking:
    two racing claimers can both take the same task."""

    def claim(
        self, group: str, worker_id: str, limit: int, lease_seconds: float, max_deliveries: int
    ) -> ClaimBatch:
        with self._lock:
            now = self.now()
            ready = sorted(
                (
                    r
                    for r in self._records.values()
                    if r.task.group == group and r.state is TaskState.QUEUED and r.task.due <= now
                ),
                key=lambda r: (r.task.due, r.task.created, r.task.id),
            )[:limit]
        if not ready:
            return super().claim(group, worker_id, limit, lease_seconds, max_deliveries)
        time.sleep(0.002)  # the window between reading and writing
        with self._lock:
            claims = []
            for rec in ready:  # the bug: no check that rec is still QUEUED
                rec.state = TaskState.RUNNING
                rec.task = replace(rec.task, deliveries=rec.task.deliveries + 1)
                rec.token = uuid.uuid4().hex
                rec.worker_id = worker_id
                rec.lease_expires = now + lease_seconds
                claims.append(Claim(rec.task, rec.token, rec.lease_expires, worker_id))
            return ClaimBatch(claims, now, [])


class IgnoresLeaseExpiry(MemoryBackend):
    """Never looks at RUNNING tasks in a claim: a dead worker's tasks are stuck forever."""

    def claim(
        self, group: str, worker_id: str, limit: int, lease_seconds: float, max_deliveries: int
    ) -> ClaimBatch:
        with self._lock:
            running = {t: r for t, r in self._records.items() if r.state is TaskState.RUNNING}
            for task_id in running:
                del self._records[task_id]
            try:
                return super().claim(group, worker_id, limit, lease_seconds, max_deliveries)
            finally:
                self._records.update(running)


class AcceptsStaleToken(MemoryBackend):
    """Checks that the task is running, but not whose claim it is."""

    def _current(self, claim: Claim) -> _Record:
        rec = self._records.get(claim.task.id)
        if rec is None or rec.state is not TaskState.RUNNING:
            from taskkit import LeaseLost

            raise LeaseLost(claim.task.id)
        return rec


class NeverWakesWaiters(MemoryBackend):
    """Declares notifications but its waiters sleep out their whole timeout."""

    supports_notifications: ClassVar[bool] = True

    def wait_for_outcome(self, task_id: str, timeout: float) -> Outcome | None:
        outcome = self.get_outcome(task_id)
        if outcome is None or outcome.state.finished:
            return outcome
        time.sleep(timeout)
        return self.get_outcome(task_id)


class FiresSchedulePointTwice(MemoryBackend):
    """Compares schedule points with < instead of <=, and ignores that the id exists."""

    def put_scheduled(self, task: Task, scheduler: str, key: str, point: float) -> bool:
        with self._lock:
            mark = self._marks.get((scheduler, key))
            if mark is not None and point < mark:
                return False
            self._marks[(scheduler, key)] = point
            self._insert(task)
            return True


class NeverDeadLetters(MemoryBackend):
    """Ignores max_deliveries: a task that kills its worker is delivered forever."""

    def claim(
        self, group: str, worker_id: str, limit: int, lease_seconds: float, max_deliveries: int
    ) -> ClaimBatch:
        return super().claim(group, worker_id, limit, lease_seconds, 1_000_000)


class ReleaseForgetsTheToken(MemoryBackend):
    """Hands released tasks back but leaves the old token valid."""

    def release(self, claims: Sequence[Claim]) -> None:
        with self._lock:
            for claim in claims:
                rec = self._records.get(claim.task.id)
                if rec is not None and rec.state is TaskState.RUNNING and rec.token == claim.token:
                    rec.state = TaskState.QUEUED
                    rec.task = replace(rec.task, deliveries=max(0, rec.task.deliveries - 1))

    def _current(self, claim: Claim) -> _Record:
        rec = self._records.get(claim.task.id)
        if rec is not None and rec.token == claim.token and not rec.state.finished:
            return rec
        return super()._current(claim)


class ForgetsHeadersOnRetry(MemoryBackend):
    """Queues a retried or deferred task again rebuilt from its core fields: its headers
    are lost."""

    def record_outcomes(self, writes: Sequence[OutcomeWrite]) -> list[bool]:
        applied = super().record_outcomes(writes)
        with self._lock:
            for write, ok in zip(writes, applied):
                rec = self._records.get(write.claim.task.id)
                if ok and rec is not None and rec.state is TaskState.QUEUED:
                    rec.task = replace(rec.task, headers={})
        return applied


#: Each broken backend: the topic class that must catch it, and the guarantee its failure
#: message must name.
#: An optional fourth item narrows the run (``-k``) where the bug makes every test wait.
class CountsScheduledAsDue(MemoryBackend):
    """Counts every queued task as due in ``group_stats``, as a plain count of the queue would."""

    def group_stats(self, group: str) -> Any:
        stats = super().group_stats(group)
        return replace(stats, queued=stats.waiting, scheduled=0)


class AsyncWaitsHoldAThread(MemoryBackend):
    """Waits for a result from a coroutine by blocking a thread for the whole wait."""

    async def await_outcome(self, task_id: str, timeout: float) -> Outcome | None:
        return await asyncio.to_thread(self.wait_for_outcome, task_id, timeout)


BROKEN: dict[str, tuple[Any, ...]] = {
    "async-waits-hold-a-thread": (
        AsyncWaitsHoldAThread,
        "AsyncProducerTests",
        "a wait must hold no thread",
        "-k",
        "waiters_hold",
    ),
    "loses-a-task": (LosesTasks, "EnqueueTests", "put() reported as stored were lost"),
    "double-claims": (
        DoubleClaims,
        "ConcurrencyTests",
        "claimed more than once with nothing failing (double claim)",
    ),
    "ignores-lease-expiry": (
        IgnoresLeaseExpiry,
        "LeaseTests",
        "a task whose lease expired was not claimable by another worker",
    ),
    "accepts-a-stale-token": (
        AcceptsStaleToken,
        "FencingTests",
        "a stale fencing token was accepted by complete()",
    ),
    "never-wakes-waiters": (
        NeverWakesWaiters,
        "WaitingTests",
        "wait_for_outcome did not wake when the task finished",
        "-k",
        "waiter_wakes and complete",
    ),
    "fires-a-schedule-point-twice": (
        FiresSchedulePointTwice,
        "SchedulingTests",
        "schedule point(s) fired more than once by 3 replicas",
    ),
    "never-dead-letters": (
        NeverDeadLetters,
        "DeadLetterTests",
        "a task was delivered again after max_deliveries deliveries",
    ),
    "release-keeps-the-token": (
        ReleaseForgetsTheToken,
        "FencingTests",
        "a stale fencing token was accepted by fail() after release()",
    ),
    "counts-scheduled-as-due": (
        CountsScheduledAsDue,
        "FleetStatsTests",
        "group_stats must count the due queued tasks, the ones due later",
        "-k",
        "group_stats or scheduled_task",
    ),
    "forgets-headers-on-retry": (
        ForgetsHeadersOnRetry,
        "HeadersTests",
        "a retried task must keep its headers",
    ),
}
