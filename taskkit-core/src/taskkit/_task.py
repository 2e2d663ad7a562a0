"""The value objects that travel between producers, backends and workers."""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, tzinfo
from typing import Literal

from ._headers import EMPTY_HEADERS, TaskHeaders, as_headers

#: How long a finished task's record (and its result) is kept, in seconds.
DEFAULT_TTL: float = 7 * 24 * 3600.0


def _to_datetime(epoch: float, tz: tzinfo | None) -> datetime:
    return datetime.fromtimestamp(epoch, tz)


@dataclass(frozen=True)
class Task:
    """One unit of work.

    Times are seconds since the epoch (as in taskkit 0.2); the ``*_dt`` helpers turn them
    into aware datetimes.

    :ivar id: unique id; producers' ids are random, scheduler ids derive from the schedule point.
    :ivar group: the group whose worker threads run the task.
    :ivar name: the task name within the group; the handler dispatches on (group, name).
    :ivar data: the encoded payload, as produced by ``TaskHandler.encode_data``.
    :ivar due: the earliest time the task may run.
    :ivar created: when the task was initiated.
    :ivar scheduled: the schedule point for scheduler-made tasks, else None.
    :ivar retry_count: how many times the handler asked for a retry so far.
    :ivar ttl: seconds the finished record (and result) is kept.
    :ivar timeout: the run-time limit in seconds, or None for the kit's default.
    :ivar deliveries: claims of the current attempt so far, this one included (set by backends).
    :ivar headers: a small read-only ``str -> str`` mapping set at enqueue (trace context, a
        request id); empty by default. Backends store it with the task and return it
        unchanged through claims, retries, defers, reclaims and dead-letter requeues. A
        mapping given here is kept as a :class:`~taskkit.TaskHeaders`, so a task stays
        hashable; the kit checks it at enqueue (:meth:`taskkit.Kit.make_task`).
    """

    id: str
    group: str
    name: str
    data: bytes
    due: float
    created: float
    scheduled: float | None = None
    retry_count: int = 0
    ttl: float = DEFAULT_TTL
    timeout: float | None = None
    deliveries: int = 0
    headers: Mapping[str, str] = EMPTY_HEADERS

    def __post_init__(self) -> None:
        # A plain dict becomes the read-only, hashable mapping; the type check keeps the
        # common case (backends pass TaskHeaders) to one comparison.
        if type(self.headers) is not TaskHeaders:
            object.__setattr__(self, "headers", as_headers(self.headers))

    def due_dt(self, tz: tzinfo | None = None) -> datetime:
        """``due`` as a datetime in ``tz`` (local time when None)."""
        return _to_datetime(self.due, tz)

    def created_dt(self, tz: tzinfo | None = None) -> datetime:
        """``created`` as a datetime in ``tz`` (local time when None)."""
        return _to_datetime(self.created, tz)

    def scheduled_dt(self, tz: tzinfo | None = None) -> datetime | None:
        """``scheduled`` as a datetime in ``tz``, or None for tasks no scheduler made."""
        return None if self.scheduled is None else _to_datetime(self.scheduled, tz)

    def evolve(self, **changes: object) -> Task:
        """A copy with ``changes`` applied."""
        return replace(self, **changes)  # type: ignore[arg-type]


class TaskState(str, enum.Enum):
    """Where a task is in its life. Exactly one state holds at any time."""

    QUEUED = "queued"  #: waiting for its due time or a free worker
    RUNNING = "running"  #: claimed under a lease
    SUCCEEDED = "succeeded"  #: the handler returned; the result is stored
    FAILED = "failed"  #: the handler raised and no retry was asked for
    DISCARDED = "discarded"  #: the handler raised DiscardTask, or the task was unrunnable
    DEAD = "dead"  #: a dead letter: it kept killing its workers; can be re-queued
    CANCELLED = "cancelled"  #: cancelled before it finished

    @property
    def finished(self) -> bool:
        """True for every state a task never leaves on its own."""
        return self not in (TaskState.QUEUED, TaskState.RUNNING)


@dataclass(frozen=True)
class Outcome:
    """What a backend knows about one task.

    :ivar task: the task as last stored.
    :ivar state: its state.
    :ivar result: the encoded result when ``state`` is SUCCEEDED.
    :ivar error: the reason or traceback text for FAILED, DISCARDED, DEAD and CANCELLED; for
        a QUEUED task that was retried, the error of its last attempt.
    :ivar finished: backend time the task reached its state, for finished states.
    """

    task: Task
    state: TaskState
    result: bytes | None = None
    error: str | None = None
    finished: float | None = None


@dataclass(frozen=True)
class Claim:
    """A task handed to one worker under a lease.

    :ivar task: the task, with ``deliveries`` counting this delivery.
    :ivar token: the fencing token; every later state change must present it.
    :ivar lease_expires: backend time after which the task may be claimed by another worker.
    :ivar worker_id: the worker that holds the lease.
    """

    task: Task
    token: str
    lease_expires: float
    worker_id: str


#: The primitives that end a claim, as named on :class:`taskkit.backend.Backend`.
#: ``defer`` hands the task back unrun, due at ``due``, its delivery uncounted and its
#: retry count unchanged (a task no worker knows yet, see :class:`~taskkit.UnknownTask`);
#: ``bury`` makes it a dead letter with the reason.
OutcomeAction = Literal[
    "complete", "retry", "fail", "discard", "acknowledge_cancel", "defer", "bury"
]


@dataclass(frozen=True)
class OutcomeWrite:
    """One outcome for :meth:`taskkit.backend.Backend.record_outcomes` to write.

    :ivar claim: the claim it ends; the write is fenced by its token.
    :ivar action: the primitive it stands for.
    :ivar value: the encoded result (``complete``), or the error / reason text (the others).
    :ivar due: the new due time (``retry`` and ``defer``).
    """

    claim: Claim
    action: OutcomeAction
    value: bytes | str
    due: float | None = None

    def retry_due(self) -> float:
        """The new due time of a ``retry`` or ``defer`` write (both queue the task again).

        :raises ValueError: the write has no due time, or one that is not a finite number
            (a retry and a defer always need one).
        """
        if self.due is None or not math.isfinite(self.due):
            raise ValueError(
                f"a {self.action} needs a due time (task {self.claim.task.id!r}, got {self.due!r})"
            )
        return float(self.due)


@dataclass(frozen=True)
class ClaimBatch:
    """The answer of :meth:`taskkit.backend.Backend.claim`.

    :ivar claims: the claimed tasks, possibly none.
    :ivar next_due: the earliest backend time at which more work of the group may become
        claimable (a delayed task's due time or a lease's expiry), or None when nothing is
        pending. The claimer sleeps at most until then unless notified.
    :ivar dead_lettered: tasks that the claim moved to dead letters because their deliveries
        were exhausted, so the caller can report them.
    """

    claims: list[Claim]
    next_due: float | None = None
    dead_lettered: list[Outcome] = field(default_factory=list)


class LeaseStatus(str, enum.Enum):
    """The answer of a renewal for one claim."""

    OK = "ok"  #: the lease was extended
    LOST = "lost"  #: the token is stale: another claim owns the task, or it finished
    CANCEL_REQUESTED = "cancel_requested"  #: the lease was extended, and a cancel is pending


class CancelResult(str, enum.Enum):
    """The answer of :meth:`taskkit.backend.Backend.cancel`."""

    CANCELLED = "cancelled"  #: the task was queued and is now cancelled
    REQUESTED = "requested"  #: the task is running; its worker is asked to stop
    FINISHED = "finished"  #: the task had already finished; nothing changed
    NOT_FOUND = "not_found"  #: no such task


ControlKind = Literal["shutdown", "pause", "resume"]


@dataclass(frozen=True)
class ControlEvent:
    """A control message for workers: shutdown, pause or resume.

    :ivar seq: a backend-assigned, strictly increasing number.
    :ivar kind: what to do.
    :ivar groups: the groups it applies to, or None for all.
    :ivar created: backend time of publication; workers ignore events older than themselves.
    """

    seq: int
    kind: ControlKind
    groups: tuple[str, ...] | None
    created: float


@dataclass(frozen=True)
class QueueStats:
    """Counts of one group's tasks, for monitoring and tests."""

    queued: int
    running: int
