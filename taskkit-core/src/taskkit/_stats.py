"""The value objects of the fleet and queue figures (``Backend.group_stats``,
``Backend.finished_counts``, ``Backend.list_workers``), and the checks every backend runs on
their arguments before it reads or writes anything."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ._task import TaskState
from ._validation import validate_name

__all__ = [
    "FINISHED_BUCKET",
    "FINISHED_OUTCOMES",
    "MAX_FINISHED_WINDOW",
    "FinishedCounts",
    "GroupStats",
    "WorkerInfo",
    "checked_heartbeat",
    "checked_registration",
    "checked_window",
]

#: The finished states :meth:`~taskkit.backend.Backend.finished_counts` counts, in report order.
FINISHED_OUTCOMES: tuple[TaskState, ...] = tuple(s for s in TaskState if s.finished)

#: The longest window :meth:`~taskkit.backend.Backend.finished_counts` answers for, in seconds.
MAX_FINISHED_WINDOW = 3600.0

#: The width, in seconds of the backend's clock, of the counters that backends which bucket
#: their finished counts keep: a window is widened to whole buckets, so it may start up to
#: this much earlier than asked.
FINISHED_BUCKET = 10.0

#: The longest worker id the registry stores (the Django column's length).
_WORKER_ID_LENGTH = 255


@dataclass(frozen=True)
class GroupStats:
    """One group's queue figures, read in one atomic step on the backend's clock.

    :ivar group: the group.
    :ivar queued: QUEUED tasks due now (``due <= now``): what a free worker could claim.
    :ivar scheduled: QUEUED tasks due later (delayed tasks, retries waiting for their time).
    :ivar running: RUNNING tasks, held under a lease (expired leases not yet reclaimed too).
    :ivar dead_letters: DEAD tasks kept (what
        :meth:`~taskkit.backend.Backend.list_dead_letters` would list without a limit).
    :ivar oldest_due_age: seconds the oldest due task has waited past its due time
        (``now - due``, on the backend's clock), or None when no task is due.
    :ivar now: the backend's clock at the reading.
    """

    group: str
    queued: int
    scheduled: int
    running: int
    dead_letters: int
    oldest_due_age: float | None
    now: float

    @property
    def waiting(self) -> int:
        """Every QUEUED task, due or not: what ``QueueStats.queued`` counts."""
        return self.queued + self.scheduled


@dataclass(frozen=True)
class FinishedCounts:
    """How many tasks of one group finished in each finished state over a recent window.

    A task counts once, in the state it finished in, at the moment it finished (a worker's
    outcome, a claim that buried it ``"worker lost"``, a cancel of a queued task). Retries
    and hand-backs do not finish a task and are not counted.

    :ivar group: the group.
    :ivar since: backend time the counted span starts: at or before ``until - window``, at
        most :data:`~taskkit.backend.FINISHED_BUCKET` seconds before it on a backend that
        buckets its counters.
    :ivar until: the backend's clock at the reading.
    :ivar succeeded: tasks that reached SUCCEEDED; the other fields likewise.
    """

    group: str
    since: float
    until: float
    succeeded: int = 0
    failed: int = 0
    discarded: int = 0
    dead: int = 0
    cancelled: int = 0

    @classmethod
    def of(
        cls, group: str, since: float, until: float, counts: Mapping[str, int]
    ) -> FinishedCounts:
        """The counts from a mapping of state value (``"succeeded"``, ...) to count; other
        keys are ignored."""
        known = {s.value: int(counts.get(s.value, 0)) for s in FINISHED_OUTCOMES}
        return cls(group, float(since), float(until), **known)

    def as_dict(self) -> dict[str, int]:
        """``{state value: count}`` for every finished state, in the order of TaskState."""
        return {s.value: int(getattr(self, s.value)) for s in FINISHED_OUTCOMES}

    @property
    def total(self) -> int:
        """Every task that finished in the span."""
        return sum(self.as_dict().values())


@dataclass(frozen=True)
class WorkerInfo:
    """One live worker process as the backend's registry knows it.

    :ivar id: the worker id (the one its claims carry).
    :ivar host: the host name it runs on.
    :ivar pid: its process id on that host.
    :ivar threads: its concurrency per group (threads, or coroutines for an async group).
    :ivar started: backend time it registered.
    :ivar heartbeat: backend time of its last heartbeat (its registration counts as one).
    :ivar expires: backend time after which it is no longer listed unless it beats again.
    :ivar tasks_held: the claims it held at its last heartbeat.
    """

    id: str
    host: str
    pid: int
    threads: Mapping[str, int] = field(default_factory=dict)
    started: float = 0.0
    heartbeat: float = 0.0
    expires: float = 0.0
    tasks_held: int = 0

    @property
    def groups(self) -> tuple[str, ...]:
        """The groups it serves, sorted."""
        return tuple(sorted(self.threads))

    def heartbeat_age(self, now: float) -> float:
        """Seconds since its last heartbeat at backend time ``now`` (never below 0)."""
        return max(0.0, now - self.heartbeat)


# --------------------------------------------------------------------------- argument checks


def checked_window(window: Any) -> float:
    """``window`` for :meth:`~taskkit.backend.Backend.finished_counts`, as a float.

    :raises TypeError: it is not a number.
    :raises ValueError: it is not finite, not above 0, or above
        :data:`~taskkit.backend.MAX_FINISHED_WINDOW`.
    """
    if isinstance(window, bool) or not isinstance(window, (int, float)):
        raise TypeError(f"a window is a number of seconds, not {type(window).__name__}")
    if not math.isfinite(window) or not 0 < window <= MAX_FINISHED_WINDOW:
        raise ValueError(
            f"a window is above 0 and at most {MAX_FINISHED_WINDOW:g} seconds, not {window!r}"
        )
    return float(window)


def _checked_worker_id(worker_id: Any) -> str:
    if not isinstance(worker_id, str) or not worker_id:
        raise ValueError(f"a worker id is a non-empty string, not {worker_id!r}")
    if len(worker_id) > _WORKER_ID_LENGTH or not worker_id.isprintable():
        raise ValueError(
            f"a worker id is printable and at most {_WORKER_ID_LENGTH} characters: {worker_id!r}"
        )
    return worker_id


def _checked_expiry(expires_after: Any) -> float:
    if isinstance(expires_after, bool) or not isinstance(expires_after, (int, float)):
        raise TypeError(f"expires_after is a number of seconds, not {expires_after!r}")
    if not math.isfinite(expires_after) or expires_after <= 0:
        raise ValueError(f"expires_after is a finite number of seconds above 0: {expires_after!r}")
    return float(expires_after)


def _checked_count(what: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{what} is a whole number >= 0, not {value!r}")
    return value


def checked_registration(
    worker_id: Any, host: Any, pid: Any, threads: Any, expires_after: Any
) -> WorkerInfo:
    """The arguments of :meth:`~taskkit.backend.Backend.register_worker`, checked, as a
    :class:`~taskkit.WorkerInfo` whose times are still 0 (the backend stamps them on its clock).

    :raises ValueError: an empty or unprintable worker id or host, a negative pid, a bad
        group name, a thread count below 1, an expiry that is not a number above 0.
    :raises TypeError: ``threads`` is not a mapping, or ``expires_after`` not a number.
    """
    if not isinstance(host, str) or not host or len(host) > 255 or not host.isprintable():
        raise ValueError(f"a host is a printable name of 1 to 255 characters, not {host!r}")
    if not isinstance(threads, Mapping):
        raise TypeError(f"threads maps group names to counts, not {type(threads).__name__}")
    checked: dict[str, int] = {}
    for group, count in threads.items():
        validate_name("group", group)
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise ValueError(f"group {group!r}: a thread count is a whole number >= 1")
        checked[group] = count
    _checked_expiry(expires_after)
    worker_id = _checked_worker_id(worker_id)
    return WorkerInfo(worker_id, host, _checked_count("a pid", pid), dict(sorted(checked.items())))


def checked_heartbeat(worker_id: Any, tasks_held: Any, expires_after: Any) -> float:
    """Check the arguments of :meth:`~taskkit.backend.Backend.heartbeat_worker`; returns
    ``expires_after`` as a float.

    :raises ValueError: an empty worker id, a negative count, a bad expiry.
    """
    _checked_worker_id(worker_id)
    _checked_count("tasks_held", tasks_held)
    return _checked_expiry(expires_after)
