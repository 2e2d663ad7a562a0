"""The backend contract: the few atomic primitives a storage must provide.

The core owns everything else (claim loops, waiting, retries, timeouts, scheduling,
supervision). A backend stores tasks and answers these primitives, each atomically and each
on the backend's own clock (:meth:`Backend.now`), so hosts with skewed clocks agree.

State machine. Every transition is one atomic step; the ones out of RUNNING are the actions
of :meth:`Backend.record_outcomes`, each fenced by its claim's token::

    put ──► QUEUED ──claim──► RUNNING ──complete────────────► SUCCEEDED
              ▲                 │ ├──fail───────────────────► FAILED
              │  retry (+1 try) │ ├──discard────────────────► DISCARDED
              │  defer (uncount)│ ├──acknowledge_cancel─────► CANCELLED
              └─────────────────┘ ├──bury───────────────────► DEAD ─requeue_dead_letter─► QUEUED
                                  └─(deliveries exhausted at claim)─► DEAD
    QUEUED ──cancel──► CANCELLED      RUNNING ──cancel──► (flag; the worker stops, then acks it)

``release`` is a defer to now. Finished records expire ``task.ttl`` seconds after they
finish. The conformance kit (``taskkit-testing``) is the executable form of this contract.
"""

from __future__ import annotations

import abc
import asyncio
import pickle
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import ClassVar

from ._headers import MAX_HEADERS, MAX_HEADERS_SIZE, decode_headers, encode_headers
from ._stats import (
    FINISHED_BUCKET,
    MAX_FINISHED_WINDOW,
    FinishedCounts,
    GroupStats,
    WorkerInfo,
    checked_heartbeat,
    checked_registration,
    checked_window,
)
from ._task import (
    CancelResult,
    Claim,
    ClaimBatch,
    ControlEvent,
    ControlKind,
    LeaseStatus,
    Outcome,
    OutcomeAction,
    OutcomeWrite,
    QueueStats,
    Task,
    TaskState,
)
from .errors import LeaseLost

__all__ = [
    "FINISHED_BUCKET",
    "MAX_FINISHED_WINDOW",
    "MAX_HEADERS",
    "MAX_HEADERS_SIZE",
    "OUTCOME_STATES",
    "RELEASE_REASON",
    "Backend",
    "OutcomeChange",
    "checked_heartbeat",
    "checked_registration",
    "checked_window",
    "decode_headers",
    "earliest",
    "encode_headers",
    "outcome_changes",
]


def earliest(*times: float | None) -> float | None:
    """The earliest of ``times`` that is known (not None), or None when none is.

    For a claim's :attr:`~taskkit.ClaimBatch.next_due`: the earliest of the next queued due
    time and the next lease expiry, either of which may be unknown.
    """
    known = [t for t in times if t is not None]
    return min(known) if known else None


#: The state each outcome action (``OutcomeAction``) leaves its task in.
OUTCOME_STATES: Mapping[OutcomeAction, TaskState] = MappingProxyType(
    {
        "complete": TaskState.SUCCEEDED,
        "retry": TaskState.QUEUED,
        "fail": TaskState.FAILED,
        "discard": TaskState.DISCARDED,
        "acknowledge_cancel": TaskState.CANCELLED,
        "defer": TaskState.QUEUED,
        "bury": TaskState.DEAD,
    }
)

#: The reason :meth:`Backend.release` defers with; it becomes the task's last error.
RELEASE_REASON = "released unrun: its worker stopped"


@dataclass(frozen=True)
class OutcomeChange:
    """What one :class:`~taskkit.OutcomeWrite` does to its task's record, worked out once by
    :func:`outcome_changes` so that every backend writes each state change the same way.

    It applies only while the record is RUNNING under ``claim.token``. The backend then drops
    the lease (token holder, worker, expiry) and either

    - finishes the task (``due`` is None): sets ``state``, ``result`` and ``error``, stamps
      ``finished`` with its clock, clears the cancel request and lets the record expire
      ``task.ttl`` seconds later (a DEAD record also joins the dead letters), or
    - queues it again (``retry`` and ``defer``: ``due`` is set) at ``due`` with ``error`` as
      its last error: a retry (:attr:`retried`) adds 1 to ``retry_count`` and resets
      ``deliveries`` to 0, a defer keeps ``retry_count`` and takes back this claim's
      delivery (``deliveries - 1``, never below 0).

    :ivar index: the write's position in its batch, where its answer goes.
    :ivar claim: the claim the write ends.
    :ivar action: the write's action.
    :ivar state: the state the task is left in.
    :ivar result: the encoded result of a ``complete``, else None.
    :ivar error: the error or reason text of every other action, else None.
    :ivar due: when a ``retry`` or ``defer`` is due again; None for every action that
        finishes the task.
    """

    index: int
    claim: Claim
    action: OutcomeAction
    state: TaskState
    result: bytes | None
    error: str | None
    due: float | None

    @property
    def retried(self) -> bool:
        """True for ``retry``: the retry is counted and a fresh attempt begins."""
        return self.action == "retry"


def outcome_changes(writes: Sequence[OutcomeWrite]) -> list[OutcomeChange]:
    """Check a batch for :meth:`Backend.record_outcomes` and work out what each write changes.

    Every write is checked before the first is returned, so a backend that calls this before
    writing anything leaves a batch with one bad write wholly unwritten. Only the first write
    of each claim is returned: once it is applied (or found stale) the claim's token is
    stale, so a later write of the same claim answers False without a look at the store.

    :return: the changes, in batch order; each names the ``index`` of its write.
    :raises ValueError: a write names an unknown action, or a ``retry`` or ``defer`` has no
        finite due time (``OutcomeWrite.retry_due()``).
    :raises TypeError: a write's value is neither bytes nor text.
    """
    changes: list[OutcomeChange] = []
    seen: set[tuple[str, str]] = set()
    for index, write in enumerate(writes):
        state = OUTCOME_STATES.get(write.action)
        if state is None:
            raise ValueError(
                f"unknown outcome action {write.action!r} (task {write.claim.task.id!r}); "
                f"expected one of {', '.join(OUTCOME_STATES)}"
            )
        if not isinstance(write.value, (bytes, str)):
            raise TypeError(
                f"an outcome's value is bytes or text, not {type(write.value).__name__} "
                f"(task {write.claim.task.id!r})"
            )
        due = write.retry_due() if state is TaskState.QUEUED else None
        key = (write.claim.task.id, write.claim.token)
        if key in seen:
            continue
        seen.add(key)
        if write.action == "complete":
            result, error = _as_bytes(write.value), None
        else:
            result, error = None, _as_text(write.value)
        changes.append(OutcomeChange(index, write.claim, write.action, state, result, error, due))
    return changes


def _as_bytes(value: bytes | str) -> bytes:
    return value.encode() if isinstance(value, str) else value


def _as_text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class Backend(abc.ABC):
    """Base class of every backend.

    Subclasses implement the abstract primitives and declare their capabilities below; the
    conformance kit skips, with the reason, what a backend honestly declares it lacks. Every
    end of a claim goes through the one primitive :meth:`record_outcomes`: :meth:`complete`,
    :meth:`retry`, :meth:`fail`, :meth:`discard`, :meth:`acknowledge_cancel`, :meth:`defer`,
    :meth:`bury` and :meth:`release` derive from it, and the waits have polling defaults.
    The capability flags, each a class attribute: :attr:`supports_processes`,
    :attr:`supports_notifications`, :attr:`supports_transactional_put`,
    :attr:`supports_fake_clock`, :attr:`clock_is_local` and :attr:`supports_fleet_stats`.

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

    #: The fleet and queue figures are kept (the section "fleet and queue figures" below):
    #: the four reads answer and the three worker-registry writes store what they are given.
    #: Without it the defaults apply: the writes do nothing, so workers run unchanged, and
    #: the reads raise :class:`NotImplementedError` (callers fall back to :meth:`stats`).
    supports_fleet_stats: ClassVar[bool] = False

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

        Every field is stored, :attr:`Task.headers <taskkit.Task.headers>` included: claims,
        outcomes and dead-letter listings return the headers unchanged, and no state change
        (retry, defer, bury, reclaim, requeue of a dead letter) alters them.
        :func:`encode_headers` and :func:`decode_headers` give them a text form (empty when
        there are none) for a column or a hash field, of at most :data:`MAX_HEADERS_SIZE`
        bytes for at most :data:`MAX_HEADERS` entries.

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
    def release_worker(self, worker_id: str) -> int:
        """Expire every lease held by ``worker_id`` now; the deliveries stay counted.

        The supervisor calls it when it sees a worker process die, so the orphaned tasks are
        claimable at once instead of after their lease runs out.

        :return: how many leases were expired.
        """

    def wait_for_work(self, group: str, timeout: float) -> None:
        """Block until work of ``group`` may have arrived, or ``timeout`` seconds pass.

        Spurious wake-ups are allowed; missed ones are not, for backends that declare
        :attr:`supports_notifications`: work put (or retried, deferred, released, requeued)
        after this thread's last :meth:`claim` of ``group`` returned must end the wait.

        The default simply sleeps ``min(timeout, 0.05)`` seconds, a bounded back-off: the
        claimer calls it again with the remaining time.
        """
        time.sleep(max(0.0, min(timeout, 0.05)))

    # ------------------------------------------------------------------ outcomes
    # One primitive ends claims; every single-claim method below derives from it, so a
    # backend writes each state change once.

    @abc.abstractmethod
    def record_outcomes(self, writes: Sequence[OutcomeWrite]) -> list[bool]:
        """End claims: apply each write's action to its task, ideally in one round trip.

        Workers batch the outcomes that finish while a write is in flight, so a busy worker
        pays one round trip for many tasks; :meth:`complete`, :meth:`retry` and the other
        single-claim methods are batches of one. The actions (``write.action``), each only
        from RUNNING:

        - ``complete``: SUCCEEDED with the result ``value`` (bytes);
        - ``fail``: FAILED; ``discard``: DISCARDED; ``acknowledge_cancel``: CANCELLED;
          ``bury``: DEAD, listed by :meth:`list_dead_letters` and requeued by
          :meth:`requeue_dead_letter`; each keeps ``value`` (the traceback or reason text) as
          the error, stamps ``finished``, and wakes the task's :meth:`wait_for_outcome`;
        - ``retry``: QUEUED at ``write.due``, ``retry_count + 1``, ``deliveries`` reset to 0;
        - ``defer``: QUEUED at ``write.due``, ``retry_count`` unchanged, and this claim's
          delivery not counted (``deliveries`` back to what it was before the claim), so a
          task handed back again and again never becomes a dead letter;
          ``retry`` and ``defer`` keep ``value`` as the last error and wake the group's
          :meth:`wait_for_work` as a put does.

        Each write is fenced by its own claim's token and atomic on its own; the batch as a
        whole need not be. Once one write of a claim is applied its token is stale, so a second
        write of the same claim in a batch answers False. :func:`outcome_changes` checks a
        batch and works out each change; call it before writing anything.

        :return: for each write, in order, True if it was applied, False if its token was stale
            (nothing changed for that task).
        :raises ValueError: a write is malformed (see :func:`outcome_changes`); nothing of
            the batch was written.
        :raises BackendUnavailable: the store could not be reached; the caller cannot tell
            which writes were applied and retries them (a write applied earlier then answers
            False).
        """

    def _end_claim(self, write: OutcomeWrite) -> None:
        if not self.record_outcomes([write])[0]:
            raise LeaseLost(f"task {write.claim.task.id!r}: the claim's token is stale")

    def complete(self, claim: Claim, result: bytes) -> None:
        """RUNNING → SUCCEEDED with ``result``: the ``complete`` action of one claim.

        :raises LeaseLost: the token is stale; nothing changed.
        """
        self._end_claim(OutcomeWrite(claim, "complete", result))

    def retry(self, claim: Claim, due: float, error: str) -> None:
        """RUNNING → QUEUED at ``due`` with ``retry_count + 1`` and ``deliveries`` reset to 0:
        the ``retry`` action of one claim. ``error`` (the failure's text) is kept as the last
        error.

        :raises LeaseLost: the token is stale; nothing changed.
        """
        self._end_claim(OutcomeWrite(claim, "retry", error, due))

    def fail(self, claim: Claim, error: str) -> None:
        """RUNNING → FAILED with ``error`` (traceback text): the ``fail`` action of one claim.

        :raises LeaseLost: the token is stale; nothing changed.
        """
        self._end_claim(OutcomeWrite(claim, "fail", error))

    def discard(self, claim: Claim, reason: str) -> None:
        """RUNNING → DISCARDED with ``reason``: the ``discard`` action of one claim.

        :raises LeaseLost: the token is stale; nothing changed.
        """
        self._end_claim(OutcomeWrite(claim, "discard", reason))

    def acknowledge_cancel(self, claim: Claim, reason: str) -> None:
        """RUNNING → CANCELLED with ``reason``: the ``acknowledge_cancel`` action of one claim.

        The lease holder calls it after stopping a handler whose task :meth:`renew` reported
        as CANCEL_REQUESTED.

        :raises LeaseLost: the token is stale; nothing changed.
        """
        self._end_claim(OutcomeWrite(claim, "acknowledge_cancel", reason))

    def defer(self, claim: Claim, due: float, reason: str) -> None:
        """RUNNING → QUEUED at ``due``, the delivery uncounted and ``retry_count`` unchanged:
        the ``defer`` action of one claim. ``reason`` is kept as the last error.

        :raises LeaseLost: the token is stale; nothing changed.
        """
        self._end_claim(OutcomeWrite(claim, "defer", reason, due))

    def bury(self, claim: Claim, reason: str) -> None:
        """RUNNING → DEAD with ``reason``, a dead letter: the ``bury`` action of one claim.

        :raises LeaseLost: the token is stale; nothing changed.
        """
        self._end_claim(OutcomeWrite(claim, "bury", reason))

    def release(self, claims: Sequence[Claim]) -> None:
        """Hand ``claims`` back unrun: each is deferred to now (QUEUED, claimable at once, the
        delivery uncounted), in one :meth:`record_outcomes` call.

        Used by a graceful shutdown. Stale tokens are ignored silently (idempotent).
        """
        if claims:
            now = self.now()
            self.record_outcomes([OutcomeWrite(c, "defer", RELEASE_REASON, now) for c in claims])

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
        """How many tasks of ``group`` are queued (due or not) and running.

        The figures every backend has; :meth:`group_stats` tells due from scheduled tasks.
        """

    # ------------------------------------------------------------------ fleet and queue figures
    # What operators read about queues and workers (``taskkit inspect``, the Django admin,
    # the Prometheus exporter), on backends that declare :attr:`supports_fleet_stats`. None
    # of these scans every record; each says what it costs. Arguments are checked before
    # anything is read or written (:func:`checked_window`, :func:`checked_registration`,
    # :func:`checked_heartbeat`): a bad one raises ValueError or TypeError, writing nothing.

    def _no_fleet_stats(self, what: str) -> NotImplementedError:
        return NotImplementedError(
            f"{type(self).__name__} keeps no fleet and queue figures ({what}): it does not "
            "declare supports_fleet_stats; stats(group) has the queued and running counts"
        )

    def list_groups(self) -> list[str]:
        """The groups this store holds tasks of, sorted.

        Every group with a queued, running or dead task is listed, and every group with a
        task finished within the last :data:`MAX_FINISHED_WINDOW` seconds. A backend may
        list a group for longer (Redis lists every group ever written to under its prefix),
        never for less.

        Cost: Redis reads one set (O(groups)); SQL probes the group index once per group
        (a loose index scan), never reads the tasks themselves.

        :raises NotImplementedError: the backend does not declare :attr:`supports_fleet_stats`.
        """
        raise self._no_fleet_stats("list_groups")

    def group_stats(self, group: str) -> GroupStats:
        """``group``'s queued (due now), scheduled (due later), running and dead-letter
        counts and the age of its oldest due task, read in one atomic step on the backend's
        clock, in one round trip.

        The figures are exact at that moment: each task counts in exactly one of them, and a
        task due at exactly ``now`` is due. A group with no task answers zeros and no age.

        Cost: Redis O(log n) per figure (sorted-set counts); SQL an index range count per
        state over the group's rows (so it grows with the group's queued tasks, never with
        the whole table) and one indexed minimum. For dashboards, alerts and the CLI, not for
        a claim's hot path.

        :raises NotImplementedError: the backend does not declare :attr:`supports_fleet_stats`.
        """
        raise self._no_fleet_stats("group_stats")

    def finished_counts(self, group: str, window: float = 300.0) -> FinishedCounts:
        """How many tasks of ``group`` finished in each finished state over the last
        ``window`` seconds of the backend's clock.

        Counted by the very write that finishes the task, atomically with it (a worker's
        outcome, a claim's "worker lost" burial, a cancel of a queued task), so no count is
        lost or doubled by a crash or a replayed write; retries and hand-backs finish
        nothing and are not counted. Backends may keep the counts in buckets of
        :data:`FINISHED_BUCKET` seconds: the span counted then starts up to that much before
        ``now - window`` (the answer's ``since`` says where).

        Cost, on the finishing write: one counter increment per (group, state) of an outcome
        batch (Redis: a hash increment inside the outcome's script; SQL: an upsert of a
        counter row inside the outcome's statement or transaction). On the read: one counter
        per bucket of the window (at most 361 for an hour), one round trip.

        :param window: seconds, above 0 and at most :data:`MAX_FINISHED_WINDOW`.
        :raises ValueError: the window is out of range (TypeError: not a number).
        :raises NotImplementedError: the backend does not declare :attr:`supports_fleet_stats`.
        """
        raise self._no_fleet_stats("finished_counts")

    def register_worker(
        self,
        worker_id: str,
        host: str,
        pid: int,
        threads: Mapping[str, int],
        expires_after: float,
    ) -> None:
        """Add a starting worker to the registry that :meth:`list_workers` reads, or replace
        its entry: ``started`` and ``heartbeat`` are the backend's clock now, ``tasks_held``
        is 0.

        The entry is listed until ``expires_after`` seconds after its last heartbeat, so a
        worker that dies without :meth:`deregister_worker` ages out by itself (the core's
        workers pass three heartbeat intervals). One round trip writing one small record.

        :param threads: the worker's concurrency per group it serves.
        :raises ValueError: a bad argument (:func:`checked_registration`); nothing is stored.

        The default does nothing.
        """

    def heartbeat_worker(self, worker_id: str, tasks_held: int, expires_after: float) -> bool:
        """Renew a registered worker's entry: ``heartbeat`` is now, ``tasks_held`` as given,
        and it is listed for ``expires_after`` more seconds. A worker's keeper calls it once
        per heartbeat, after its lease renewal. One round trip updating one small record.

        :return: True if the entry was live and is renewed; False if there is none (it aged
            out or was deregistered), and then the worker registers again.
        :raises ValueError: a bad argument (:func:`checked_heartbeat`); nothing is changed.

        The default does nothing and answers True.
        """
        return True

    def deregister_worker(self, worker_id: str) -> None:
        """Remove a stopping worker's entry from the registry; idempotent. One round trip.

        The default does nothing.
        """

    def list_workers(self) -> list[WorkerInfo]:
        """The live workers: every registered worker whose entry has not aged out (its last
        heartbeat is less than its ``expires_after`` ago), oldest registration first, then by
        id. An entry that aged out is never listed; the call may delete it.

        Cost: a read of the registry (one small record per live worker), one round trip.

        :raises NotImplementedError: the backend does not declare :attr:`supports_fleet_stats`.
        """
        raise self._no_fleet_stats("list_workers")

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

    # ------------------------------------------------------------------ asyncio
    # The producer's primitives for coroutines (``Kit.ainitiate_task``, ``Result.aget``).
    # Each keeps the guarantees of its blocking twin and never blocks the event loop. The
    # defaults serve any backend: they run the blocking primitive in a thread, and the wait
    # polls without holding a thread while it sleeps. A backend with an asyncio client
    # overrides them so that no thread is used at all, and multiplexes every waiter of a
    # process and loop over one notification connection.

    async def aput(self, tasks: Sequence[Task]) -> list[bool]:
        """:meth:`put` for coroutines: store ``tasks`` as QUEUED without blocking the loop.

        The guarantees of :meth:`put`: idempotent by id (a task whose id already exists, in
        any state until its record expires, is left unchanged and reported as False), atomic
        per task, one round trip (one per group on a store sharded by group). Tasks stored by
        either method are the same tasks: a worker cannot tell them apart.

        The default runs :meth:`put` in a thread (:func:`asyncio.to_thread`).

        :param tasks: validated tasks; ``deliveries`` is 0.
        :return: for each task, True if it was stored, False if its id existed.
        """
        return await asyncio.to_thread(self.put, tasks)

    async def aget_outcome(self, task_id: str) -> Outcome | None:
        """:meth:`get_outcome` for coroutines: the task's current outcome, or None if it does
        not exist (or its record expired).

        The default runs :meth:`get_outcome` in a thread (:func:`asyncio.to_thread`).
        """
        return await asyncio.to_thread(self.get_outcome, task_id)

    async def await_outcome(self, task_id: str, timeout: float) -> Outcome | None:
        """:meth:`wait_for_outcome` for coroutines: wait until the task is finished, or
        ``timeout`` seconds pass; never longer.

        Returns at once for a task that is already finished or does not exist. Any number of
        coroutines may wait at once on one loop, and a waiting coroutine holds no thread
        while it sleeps. Cancelling it ends its wait and leaves nothing behind. For backends
        that declare :attr:`supports_notifications`, a task finished by any process (a
        worker's :meth:`complete`, :meth:`fail`, ...) ends the wait promptly: the backend
        looks at the task only once its notification is armed, so none is missed.

        :return: the outcome (finished or not), or None if the task does not exist.

        The default polls :meth:`aget_outcome` with an exponential back-off capped at 0.2 s,
        sleeping with :func:`asyncio.sleep`.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max(0.0, timeout)
        delay = 0.005
        while True:
            outcome = await self.aget_outcome(task_id)
            remaining = deadline - loop.time()
            if outcome is None or outcome.state.finished or remaining <= 0:
                return outcome
            await asyncio.sleep(min(delay, remaining))
            delay = min(delay * 2, 0.2)

    async def aclose(self) -> None:
        """:meth:`close` for coroutines: release every connection, those the asyncio
        primitives opened on the running loop included, without blocking the loop.

        The backend must not be used afterwards. The default runs :meth:`close` in a thread.
        """
        await asyncio.to_thread(self.close)


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
