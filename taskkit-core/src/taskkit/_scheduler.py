"""The scheduler: turns schedule points into tasks, exactly once across any number of replicas.

Every worker process runs one :class:`Scheduler` per scheduler name, and nothing elects a
leader. Each firing goes through :meth:`Backend.put_scheduled`, an atomic compare-and-set on
the entry's *mark* (its last fired point) that also refuses an existing task id. The id is
derived from (scheduler name, entry key, point), so replicas that decide to fire the same
point build the same task and exactly one of them wins; a replica whose clock lags, or that
was paused, finds the mark already past its point and fires nothing.

Per entry and tick the scheduler asks the schedule two questions, whatever the downtime:

* ``first = next_after(mark)`` – nothing is due while ``first > now``;
* ``last = previous_at_or_before(now)`` – if ``first < last`` several points were missed,
  and the schedule's duplication policy picks which of ``first``/``last`` fire. The final
  ``put_scheduled`` advances the mark to ``last``, so the skipped points are never revisited.
"""

from __future__ import annotations

import hashlib
import logging
import math
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone, tzinfo
from typing import Final

from ._health import RETRY_CAP, BackendHealth, is_unavailable
from ._task import DEFAULT_TTL, Task
from .backend import Backend, earliest
from .clock import Clock
from .errors import ScheduleError
from .schedule import Schedule, ScheduleEntry, TzInfo, _check_key

__all__ = ["Scheduler", "scheduled_task_id"]

log = logging.getLogger("taskkit.scheduler")

#: Shortest and first back-off after a failure, in seconds (doubles up to ``max_wait``).
_BASE_BACKOFF: Final = 0.5
#: Shortest sleep between ticks: the loop can never spin, whatever the clocks say.
_MIN_WAIT: Final = 0.01
#: Points closer than this are the same point (custom schedules may return fractions).
_SAME_POINT: Final = 1e-6


def scheduled_task_id(scheduler: str, key: str, point: float) -> str:
    """The id of the task that fires ``point`` of entry ``key``: the same on every replica.

    ``"s"`` and 32 hex digits of a SHA-256 over the three parts (NUL-separated; names and
    keys are printable, so the encoding is unambiguous).
    """
    raw = f"{scheduler}\x00{key}\x00{float(point)!r}".encode()
    return "s" + hashlib.sha256(raw).hexdigest()[:32]


@dataclass
class _EntryState:
    """What one replica remembers about one entry between ticks."""

    #: The highest mark this replica has seen or written. It stands in for the backend's mark
    #: if that vanishes (a wiped backend), so the catch-up is one point, not a burst.
    seen: float | None = None
    #: The next point to act on; before it nothing is due, so no backend round trip is made.
    #: ``math.inf`` once the schedule has no more points.
    next_point: float | None = None
    #: Consecutive failures of this entry, and when (scheduler clock) to try again.
    failures: int = 0
    retry_at: float | None = None
    #: Whether the "mark vanished" warning was logged since the mark was last seen.
    warned_lost_mark: bool = False


def _as_point(value: object, what: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ScheduleError(f"{what} returned {value!r}; expected epoch seconds or None")
    return float(value)


class Scheduler:
    """Fires the points of one scheduler's entries into a backend.

    :param backend: where tasks and marks live.
    :param name: the scheduler name (the key of ``kit.start(schedule_entries=...)``).
    :param entries: validated entries (see :func:`taskkit.schedule.normalize_entries`).
    :param tzinfo: the zone of schedules that have none; None means UTC.
    :param clock: where "now" comes from; by default the backend's clock
        (:meth:`Backend.now`), so replicas on hosts with skewed clocks agree.
    :param on_fired: called with each task this replica fired (not with points another
        replica fired); its exceptions are logged and ignored.
    :param on_entry_fired: the same, called after it with the entry's key as well (for
        what is reported per entry, such as the ``taskkit_schedule_fired`` hook).
    :param max_wait: the longest :meth:`run` sleeps between ticks, in seconds.
    :param health: where backend outages are reported (a worker passes its own, so an
        outage is one line per process); by default the scheduler's own.

    While the backend is unreachable, ticks are retried at least every second (so points
    fire within about a second of its return) and the outage is logged once; other errors
    (a broken custom schedule) back off exponentially up to ``max_wait``.

    Not thread-safe: one thread calls :meth:`tick` or :meth:`run`.
    """

    def __init__(
        self,
        backend: Backend,
        name: str,
        entries: Sequence[ScheduleEntry],
        tzinfo: tzinfo | None = None,
        clock: Clock | None = None,
        on_fired: Callable[[Task], None] | None = None,
        *,
        max_wait: float = 30.0,
        health: BackendHealth | None = None,
        on_entry_fired: Callable[[str, Task], None] | None = None,
    ) -> None:
        _check_key("scheduler name", name)
        keys: set[str] = set()
        for entry in entries:
            if not isinstance(entry, ScheduleEntry):
                raise ScheduleError(
                    f"scheduler {name!r}: entries must be ScheduleEntry objects "
                    f"(normalize_entries turns dicts into them), not {type(entry).__name__}"
                )
            if entry.key in keys:
                raise ScheduleError(f"scheduler {name!r}: duplicate entry key {entry.key!r}")
            keys.add(entry.key)
        if not max_wait > 0:
            raise ScheduleError(f"max_wait must be positive, not {max_wait!r}")
        self.backend = backend
        self.name = name
        self.entries: tuple[ScheduleEntry, ...] = tuple(entries)
        self.tzinfo: TzInfo = tzinfo if tzinfo is not None else timezone.utc
        self.clock = clock
        self.on_fired = on_fired
        self.on_entry_fired = on_entry_fired
        self.max_wait = float(max_wait)
        self._health = health or BackendHealth(log, backend.name)
        self._entry_unavailable = False  # an entry of the last tick found the backend down
        self._states = {entry.key: _EntryState() for entry in self.entries}
        #: The time of the first tick: with no mark at all, points after it fire.
        self._started: float | None = None

    # ------------------------------------------------------------------ the loop

    def run(self, stop: threading.Event) -> None:
        """Tick until ``stop`` is set, sleeping until the next point (at most ``max_wait``).

        Errors are logged and retried with a capped exponential back-off; the loop itself
        only ends when ``stop`` is set.
        """
        failures = 0
        log.debug("scheduler %r started with %d entries", self.name, len(self.entries))
        while not stop.is_set():
            try:
                wake = self._tick(self._now())
                # Measured after the tick, on the same clock: the tick's own duration counts.
                after = self._now() if wake is not None else 0.0
            except Exception as exc:
                failures += 1
                delay = self._backoff(failures, exc)
                if is_unavailable(exc):
                    self._health.failed(f"scheduler {self.name!r}", exc)
                else:
                    log.warning(
                        "scheduler %r: tick failed (%d in a row): %r; retrying in %.1fs",
                        self.name,
                        failures,
                        exc,
                        delay,
                        exc_info=failures == 1,
                    )
                stop.wait(delay)
                continue
            failures = 0
            if not self._entry_unavailable:
                self._health.succeeded()
            if wake is None:
                delay = self.max_wait
            else:
                delay = min(self.max_wait, max(_MIN_WAIT, wake - after))
            stop.wait(delay)
        log.debug("scheduler %r stopped", self.name)

    def tick(self) -> float | None:
        """Fire every point due now; return the time of the next point (or retry), or None.

        Each entry is handled on its own: one failing (backend error, broken custom
        schedule) is logged and retried later with back-off without holding up the others.
        """
        return self._tick(self._now())

    # ------------------------------------------------------------------ internals

    def _backoff(self, failures: int, exc: BaseException) -> float:
        """The wait before retrying after ``failures`` failures in a row, the last ``exc``."""
        delay = min(self.max_wait, _BASE_BACKOFF * 2.0 ** min(failures - 1, 16))
        return min(delay, RETRY_CAP) if is_unavailable(exc) else delay

    def _now(self) -> float:
        return self.clock.time() if self.clock is not None else self.backend.now()

    def _tick(self, now: float) -> float | None:
        if self._started is None:
            self._started = now
        wake: float | None = None
        self._entry_unavailable = False
        for entry in self.entries:
            state = self._states[entry.key]
            if state.retry_at is not None and now < state.retry_at:
                wake = earliest(wake, state.retry_at)
                continue
            try:
                due = self._tick_entry(entry, state, now)
            except Exception as exc:
                state.failures += 1
                state.next_point = None
                delay = self._backoff(state.failures, exc)
                state.retry_at = now + delay
                if is_unavailable(exc):
                    self._entry_unavailable = True
                    self._health.failed(f"scheduler {self.name!r}, entry {entry.key!r}", exc)
                else:
                    log.warning(
                        "scheduler %r: entry %r failed (%d in a row): %r; retrying in %.1fs",
                        self.name,
                        entry.key,
                        state.failures,
                        exc,
                        delay,
                        exc_info=state.failures == 1,
                    )
                due = state.retry_at
            else:
                state.failures = 0
                state.retry_at = None
            wake = earliest(wake, due)
        return wake

    def _tick_entry(self, entry: ScheduleEntry, state: _EntryState, now: float) -> float | None:
        """Fire what is due for one entry; return its next point (None: no more points)."""
        if state.next_point is not None and now < state.next_point:
            return None if state.next_point == math.inf else state.next_point
        schedule = entry.schedule
        mark = self.backend.get_schedule_mark(self.name, entry.key)
        if mark is not None:
            state.seen = mark if state.seen is None else max(state.seen, mark)
            state.warned_lost_mark = False
        elif state.seen is not None and not state.warned_lost_mark:
            state.warned_lost_mark = True
            log.warning(
                "scheduler %r: the mark of entry %r vanished from the backend (was it wiped?); "
                "catching up from the last point this scheduler saw",
                self.name,
                entry.key,
            )
        # With no mark at all (a new entry), points after this replica's first tick fire.
        base = state.seen if state.seen is not None else self._started
        if base is None:  # only before the first tick, which sets _started
            base = now
        first = self._next_after(schedule, base)
        if first is None:
            state.next_point = math.inf
            return None
        if first > now:
            state.next_point = first
            return first
        last = _as_point(
            schedule.previous_at_or_before(now, self.tzinfo),
            f"{schedule!r}.previous_at_or_before({now})",
        )
        if last is None or not first <= last <= now:
            raise ScheduleError(
                f"{schedule!r} is inconsistent: next_after({base}) = {first} but "
                f"previous_at_or_before({now}) = {last}"
            )
        if last - first <= _SAME_POINT:
            points = [first]
        else:
            points = self._collapse(entry, first, last, mark)
        for index, point in enumerate(points):
            # The last firing moves the mark to `last`, so the skipped points stay skipped.
            position = last if index == len(points) - 1 else point
            self._fire(entry, state, point, position, now)
        following = self._next_after(schedule, now)
        state.next_point = math.inf if following is None else following
        return following

    def _next_after(self, schedule: Schedule, t: float) -> float | None:
        point = _as_point(schedule.next_after(t, self.tzinfo), f"{schedule!r}.next_after({t})")
        if point is not None and point <= t:
            raise ScheduleError(f"{schedule!r}.next_after({t}) returned {point}, not after {t}")
        return point

    def _collapse(
        self, entry: ScheduleEntry, first: float, last: float, mark: float | None
    ) -> list[float]:
        """Ask the entry's duplication policy which of the missed points fire."""
        schedule = entry.schedule
        zone = getattr(schedule, "tzinfo", None)
        if not isinstance(zone, tzinfo):
            zone = self.tzinfo
        policy = schedule.duplication_policy
        chosen = policy(
            [datetime.fromtimestamp(first, zone), datetime.fromtimestamp(last, zone)],
            None if mark is None else datetime.fromtimestamp(mark, zone),
        )
        points: set[float] = set()
        for item in chosen:
            stamp = item.timestamp() if isinstance(item, datetime) else None
            if stamp is not None and abs(stamp - first) <= _SAME_POINT:
                points.add(first)
            elif stamp is not None and abs(stamp - last) <= _SAME_POINT:
                points.add(last)
            else:
                log.warning(
                    "scheduler %r: entry %r: duplication policy %r returned %r, which is not "
                    "one of the points it was given; ignored",
                    self.name,
                    entry.key,
                    policy,
                    item,
                )
        if not points:
            log.warning(
                "scheduler %r: entry %r: duplication policy %r chose no point; firing the latest",
                self.name,
                entry.key,
                policy,
            )
            points.add(last)
        log.info(
            "scheduler %r: entry %r missed points from %s to %s; %s fires them as %s",
            self.name,
            entry.key,
            datetime.fromtimestamp(first, zone).isoformat(),
            datetime.fromtimestamp(last, zone).isoformat(),
            type(policy).__name__,
            ", ".join(datetime.fromtimestamp(p, zone).isoformat() for p in sorted(points)),
        )
        return sorted(points)

    def _fire(
        self, entry: ScheduleEntry, state: _EntryState, point: float, position: float, now: float
    ) -> bool:
        task = Task(
            id=scheduled_task_id(self.name, entry.key, point),
            group=entry.group,
            name=entry.name,
            data=entry.data,
            due=point,
            created=now,
            scheduled=point,
            ttl=DEFAULT_TTL if entry.result_ttl is None else entry.result_ttl,
        )
        if not self.backend.put_scheduled(task, self.name, entry.key, position):
            log.debug(
                "scheduler %r: entry %r point %s was fired by another replica",
                self.name,
                entry.key,
                point,
            )
            return False
        state.seen = position if state.seen is None else max(state.seen, position)
        log.debug(
            "scheduler %r: fired entry %r at %s as task %s", self.name, entry.key, point, task.id
        )
        if self.on_fired is not None:
            try:
                self.on_fired(task)
            except Exception:
                log.exception("scheduler %r: on_fired raised for task %s", self.name, task.id)
        if self.on_entry_fired is not None:
            try:
                self.on_entry_fired(entry.key, task)
            except Exception:
                log.exception("scheduler %r: on_entry_fired raised for task %s", self.name, task.id)
        return True
