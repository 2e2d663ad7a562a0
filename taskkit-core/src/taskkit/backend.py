"""The backend contract: the few atomic primitives a storage must provide.

The core owns everything else (claim loops, waiting, retries, timeouts, scheduling,
supervision). A backend stores tasks and answers these primitives, each atomically and each
on the backend's own clock (:meth:`Backend.now`), so hosts with skewed clocks agree.

State machine (every transition is one primitive, atomic, fenced where it says so)::

    put ──► QUEUED ──claim──► RUNNING ──complete──► SUCCEEDED
              ▲                 │ ├──fail──────► FAILED
              │   retry/release │ ├──discard───► DISCARDED
              └─────────────────┘ └─(deliveries exhausted at claim)─► DEAD ─requeue_dead─► QUEUED
    QUEUED ──cancel──► CANCELLED      RUNNING ──cancel──► (flag; the worker stops, then fails it)

Finished records expire ``task.ttl`` seconds after they finish. The conformance kit
(``taskkit-testing``) is the executable form of this contract.
"""

from __future__ import annotations

import abc
import pickle
import threading
import time
from collections.abc import Iterable, Sequence
from typing import ClassVar

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
)
from .errors import LeaseLost

__all__ = ["Backend", "earliest"]


def earliest(*times: float | None) -> float | None:
    """The earliest of ``times`` that is known (not None), or None when none is.

    For a claim's :attr:`~taskkit.ClaimBatch.next_due`: the earliest of the next queued due
    time and the next lease expiry, either of which may be unknown.
    """
    known = [t for t in times if t is not None]
    return min(known) if known else None


def _as_bytes(value: bytes | str) -> bytes:
    return value.encode() if isinstance(value, str) else value


def _as_text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class Backend(abc.ABC):
    """Base class of every backend.

    Subclasses implement the abstract primitives and declare their capabilities below; the
    conformance kit skips, with the reason, what a backend honestly declares it lacks.
    The capability flags, each a class attribute: :attr:`supports_processes`,
    :attr:`supports_notifications`, :attr:`supports_transactional_put`,
    :attr:`supports_fake_clock` and :attr:`clock_is_local`.

    An instance must be thread-safe: a worker process shares one among its claimer, executor,
    keeper and scheduler threads. A claim whose lease expired but was not yet reclaimed by
    another worker is still current: its token is accepted until another claim replaces it.
    """

    #: The backend's name in the plugin registry (``"memory"``, ``"redis"``, ``"django"``).
    name: ClassVar[str] = ""

    #: State is shared between processes (and hosts): workers may run in child processes.
    #: The in-memory backend is single-process and says False.
    supports_processes: ClassVar[bool] = True

    #: ``wait_for_work`` and ``wait_for_outcome`` block on a notification instead of backing off.
    supports_notifications: ClassVar[bool] = False

    #: ``put`` may join the caller's open transaction (Django): it commits or rolls back with it.
    supports_transactional_put: ClassVar[bool] = False

    #: The backend's clock can be replaced by a fake one (``clock=`` argument) for tests.
    supports_fake_clock: ClassVar[bool] = False

    #: ``now()`` is a cheap in-process call (no round trip): the core calls it every time
    #: instead of estimating the backend's clock from the local one. Required for fake clocks.
    clock_is_local: ClassVar[bool] = False

    # ------------------------------------------------------------------ clock

    @abc.abstractmethod
    def now(self) -> float:
        """The backend's clock, in seconds since the epoch.

        Every time decision (due times, lease expiry, TTLs) is taken against this clock, never
        against the caller's: Redis ``TIME``, SQL ``now()``.
        """

    # ------------------------------------------------------------------ producers

    @abc.abstractmethod
    def put(self, tasks: Sequence[Task]) -> list[bool]:
        """Store ``tasks`` as QUEUED, in one round trip (one per group on a store sharded by group).

        Idempotent: a task whose id already exists (in any state, until its record expires) is
        left unchanged and reported as False. Atomic per task; a batch may be partially applied
        only if the backend raises.

        :param tasks: validated tasks; ``deliveries`` is 0.
        :return: for each task, True if it was stored, False if its id existed.
        """

    @abc.abstractmethod
    def put_scheduled(self, task: Task, scheduler: str, key: str, point: float) -> bool:
        """Atomically fire one schedule point: store ``task`` and advance the entry's mark.

        Stores ``task`` and sets the mark of (``scheduler``, ``key``) to ``point`` only if
        ``point`` is greater than the current mark (or there is none) and the task id is new.
        This compare-and-set is what lets any number of scheduler replicas fire each point
        exactly once with no leader, and rejects the late write of a paused replica.

        ``point`` is where the mark moves to. It may be later than ``task.scheduled``: after
        downtime the ``OnlyEarliest`` policy fires the earliest missed point but moves the mark
        past every missed point. Scheduler names and entry keys are free text: backends escape
        or hash them when building keys.

        :return: True if this call fired the point, False if it was already fired or passed.
        """

    @abc.abstractmethod
    def get_schedule_mark(self, scheduler: str, key: str) -> float | None:
        """The last fired schedule point of (``scheduler``, ``key``), or None if it never fired."""

    # ------------------------------------------------------------------ workers

    @abc.abstractmethod
    def claim(
        self,
        group: str,
        worker_id: str,
        limit: int,
        lease_seconds: float,
        max_deliveries: int,
    ) -> ClaimBatch:
        """Atomically take up to ``limit`` claimable tasks of ``group`` for ``worker_id``.

        Claimable: QUEUED with ``due <= now()``, or RUNNING with an expired lease (its worker
        died or was cut off). Tasks are taken in due order (ties by creation). Each claimed
        task gets a new fencing token, a lease until ``now() + lease_seconds`` and
        ``deliveries + 1``; the previous token of a reclaimed task becomes stale.

        A reclaimed task whose ``deliveries`` already reached ``max_deliveries`` is not
        delivered again: it becomes DEAD with the reason ``"worker lost"`` and is reported in
        :attr:`ClaimBatch.dead_lettered`.

        No task is ever held by two valid claims. Never blocks.
        """

    @abc.abstractmethod
    def renew(self, claims: Sequence[Claim], lease_seconds: float) -> list[LeaseStatus]:
        """Extend the leases of ``claims`` to ``now() + lease_seconds``, in one round trip.

        A claim whose token is stale (reclaimed by another worker, or the task finished) is
        not touched and answers LOST. A current claim of a task with a pending cancel request
        is extended and answers CANCEL_REQUESTED.
        """

    @abc.abstractmethod
    def complete(self, claim: Claim, result: bytes) -> None:
        """RUNNING → SUCCEEDED with ``result``, fenced by ``claim.token``.

        :raises LeaseLost: the token is stale; nothing changed.
        """

    @abc.abstractmethod
    def retry(self, claim: Claim, due: float, error: str) -> None:
        """RUNNING → QUEUED at ``due`` with ``retry_count + 1`` and ``deliveries`` reset to 0.

        Fenced by ``claim.token``. ``error`` (the failure's text) is kept as the last error.

        :raises LeaseLost: the token is stale; nothing changed.
        """

    @abc.abstractmethod
    def fail(self, claim: Claim, error: str) -> None:
        """RUNNING → FAILED with ``error`` (traceback text), fenced by ``claim.token``.

        :raises LeaseLost: the token is stale; nothing changed.
        """

    @abc.abstractmethod
    def discard(self, claim: Claim, reason: str) -> None:
        """RUNNING → DISCARDED with ``reason``, fenced by ``claim.token``.

        :raises LeaseLost: the token is stale; nothing changed.
        """

    @abc.abstractmethod
    def acknowledge_cancel(self, claim: Claim, reason: str) -> None:
        """RUNNING → CANCELLED with ``reason``, fenced by ``claim.token``.

        The lease holder calls it after stopping a handler whose task :meth:`renew` reported
        as CANCEL_REQUESTED.

        :raises LeaseLost: the token is stale; nothing changed.
        """

    def record_outcomes(self, writes: Sequence[OutcomeWrite]) -> list[bool]:
        """Write several outcomes, each exactly as its primitive would, ideally in one round trip.

        Workers batch the outcomes that finish while a write is in flight, so a busy worker
        pays one round trip for many tasks. Each write is fenced by its own claim's token and
        atomic on its own; the batch as a whole need not be.

        The default calls the primitives one by one; a backend overrides it to do better.

        :return: for each write, True if it was applied, False if its token was stale.
        :raises: whatever a primitive raises other than :class:`~taskkit.errors.LeaseLost`
            (the caller then cannot tell which writes were applied, and retries them: a write
            applied earlier then answers False).
        """
        applied = []
        for write in writes:
            try:
                if write.action == "retry":
                    self.retry(write.claim, write.retry_due(), _as_text(write.value))
                elif write.action == "complete":
                    self.complete(write.claim, _as_bytes(write.value))
                else:
                    getattr(self, write.action)(write.claim, _as_text(write.value))
            except LeaseLost:
                applied.append(False)
            else:
                applied.append(True)
        return applied

    @abc.abstractmethod
    def release(self, claims: Sequence[Claim]) -> None:
        """Hand ``claims`` back unrun: RUNNING → QUEUED, claimable at once, delivery uncounted.

        Used by a graceful shutdown. Stale tokens are ignored silently (idempotent).
        """

    @abc.abstractmethod
    def release_worker(self, worker_id: str) -> int:
        """Expire every lease held by ``worker_id`` now; the deliveries stay counted.

        The supervisor calls it when it sees a worker process die, so the orphaned tasks are
        claimable at once instead of after their lease runs out.

        :return: how many leases were expired.
        """

    def wait_for_work(self, group: str, timeout: float) -> None:
        """Block until work of ``group`` may have arrived, or ``timeout`` seconds pass.

        Spurious wake-ups are allowed; missed ones are not, for backends that declare
        :attr:`supports_notifications`: work put (or retried, released, requeued) after this
        thread's last :meth:`claim` of ``group`` returned must end the wait.

        The default simply sleeps ``min(timeout, 0.05)`` seconds, a bounded back-off: the
        claimer calls it again with the remaining time.
        """
        time.sleep(max(0.0, min(timeout, 0.05)))

    # ------------------------------------------------------------------ results

    @abc.abstractmethod
    def get_outcome(self, task_id: str) -> Outcome | None:
        """The task's current outcome, or None if it does not exist (or its record expired)."""

    def wait_for_outcome(self, task_id: str, timeout: float) -> Outcome | None:
        """Block until the task is finished, or ``timeout`` seconds pass; never longer.

        :return: the outcome (finished or not), or None if the task does not exist.

        The default polls :meth:`get_outcome` with an exponential back-off capped at 0.2 s.
        """
        deadline = time.monotonic() + timeout
        delay = 0.005
        while True:
            outcome = self.get_outcome(task_id)
            remaining = deadline - time.monotonic()
            if outcome is None or outcome.state.finished or remaining <= 0:
                return outcome
            time.sleep(min(delay, remaining))
            delay = min(delay * 2, 0.2)

    # ------------------------------------------------------------------ control

    @abc.abstractmethod
    def cancel(self, task_id: str, reason: str = "cancelled") -> CancelResult:
        """Cancel a task.

        QUEUED → CANCELLED at once. RUNNING → a cancel request that :meth:`renew` reports to
        the lease holder, which stops the handler and records the outcome. Finished tasks are
        unchanged.
        """

    @abc.abstractmethod
    def publish_control(self, kind: ControlKind, groups: Sequence[str] | None) -> ControlEvent:
        """Append a control event for every worker; the backend keeps only recent ones."""

    @abc.abstractmethod
    def read_control(self, after_seq: int) -> list[ControlEvent]:
        """Control events with ``seq > after_seq``, oldest first."""

    # ------------------------------------------------------------------ dead letters

    @abc.abstractmethod
    def list_dead_letters(self, group: str | None = None, limit: int = 100) -> list[Outcome]:
        """DEAD tasks, newest first, optionally of one group."""

    @abc.abstractmethod
    def requeue_dead_letter(self, task_id: str) -> bool:
        """DEAD → QUEUED (due now, deliveries 0). False if the task is not a dead letter."""

    # ------------------------------------------------------------------ maintenance

    @abc.abstractmethod
    def stats(self, group: str) -> QueueStats:
        """How many tasks of ``group`` are queued and running."""

    def purge(self, finished_before: float) -> int:
        """Delete finished records that finished before ``finished_before`` (backend time).

        Backends with native expiry may make it a no-op. :return: how many were deleted.
        """
        return 0

    def check(self) -> list[str]:
        """Start-up checks; returns warnings to log (e.g. Redis eviction policy)."""
        return []

    def interrupt_waits(self) -> None:
        """End this instance's blocked :meth:`wait_for_work` calls soon (a spurious wake-up).

        A stopping worker calls it so its claimers leave their waits before :meth:`close`
        releases the connections they wait on. The default does nothing: waits then end
        within their timeout (``max_idle_wait``). Waking other instances' waits too is
        allowed.
        """

    def close(self) -> None:
        """Release connections. The backend must not be used afterwards."""

    def clone(self) -> Backend:
        """A fresh instance with the same configuration and its own connections.

        Called in every worker process, so no connection crosses a ``fork``. The default
        round-trips through pickle: backends make themselves picklable by configuration.
        """
        clone: Backend = pickle.loads(pickle.dumps(self))  # noqa: S301 - our own object
        return clone

    # ------------------------------------------------------------------ helpers for subclasses

    @staticmethod
    def _claim_order(tasks: Iterable[Task]) -> list[Task]:
        """Sort tasks in the order claims take them: due time, then creation, then id."""
        return sorted(tasks, key=lambda t: (t.due, t.created, t.id))


class Notifier:
    """A condition variable keyed by name, for single-process backends' blocking waits."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._versions: dict[str, int] = {}
        self._interruptions = 0  # bumped by wake_all: every wait in progress returns

    def notify(self, key: str) -> None:
        with self._cond:
            self._versions[key] = self._versions.get(key, 0) + 1
            self._cond.notify_all()

    def wake_all(self) -> None:
        """End every wait in progress (a spurious wake-up for each of them)."""
        with self._cond:
            self._interruptions += 1
            self._cond.notify_all()

    def version(self, key: str) -> int:
        with self._cond:
            return self._versions.get(key, 0)

    def wait(self, key: str, seen: int, timeout: float) -> None:
        """Wait until ``key``'s version differs from ``seen`` or ``timeout`` passes."""
        deadline = time.monotonic() + timeout
        with self._cond:
            interruptions = self._interruptions
            while self._versions.get(key, 0) == seen and self._interruptions == interruptions:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return
                self._cond.wait(remaining)
