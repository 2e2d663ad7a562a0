"""Schedules and schedule entries: *when* a scheduler fires, and *what* it puts.

A :class:`Schedule` is a set of points in time (seconds since the epoch). The scheduler
(:mod:`taskkit._scheduler`) only ever asks a schedule two questions, so catching up after any
amount of downtime costs the same as one ordinary firing:

* :meth:`Schedule.next_after` – the first point strictly after ``t``;
* :meth:`Schedule.previous_at_or_before` – the last point at or before ``t``.

Two schedules are built in, both evaluated by the ``cronsim`` library under one time-zone
policy (see "Time zones and DST" in ``docs/scheduling.md``):

* :class:`RegularSchedule` – the field-set schedule of taskkit 0.2, now with 1-second
  granularity and cron's day rule;
* :class:`CronSchedule` – a cron expression (5 fields, 6 with seconds first, or ``@daily``...).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone, tzinfo
from typing import (
    Final,
    Literal,
    Protocol,
    TypeAlias,
    TypedDict,
    cast,
    runtime_checkable,
)

from cronsim import CronSim, CronSimError

from ._validation import validate_name, validate_payload
from .errors import InvalidTask, ScheduleError

__all__ = [
    "CronSchedule",
    "DataEncoder",
    "DuplicationPolicy",
    "OnlyEarliest",
    "OnlyLatest",
    "RegularSchedule",
    "Schedule",
    "ScheduleEntriesCompat",
    "ScheduleEntriesCompatMapping",
    "ScheduleEntry",
    "ScheduleEntryCompat",
    "ScheduleEntryDict",
    "normalize_entries",
]

_UTC: Final = timezone.utc  # not datetime.UTC: that is Python 3.11+
# Classes below have an attribute named ``tzinfo``; annotations there use this name.
TzInfo: TypeAlias = tzinfo
#: Longest scheduler name or entry key accepted (they end up in backend keys).
MAX_KEY_LENGTH: Final = 200


# --------------------------------------------------------------------------- protocols


@runtime_checkable
class DuplicationPolicy(Protocol):
    """Chooses which of several missed points fire after downtime (taskkit 0.2's signature).

    When more than one point of an entry is due at once (the schedulers were down, or the
    backend was unreachable), the scheduler calls the policy with the **earliest and the
    latest** missed point (never the full list: a 1-second schedule after a month of downtime
    would be millions of points) and the entry's last fired point, as aware datetimes in the
    schedule's zone. The policy returns the points to fire, a sub-list of the ones it was
    given; the rest are skipped for good.
    """

    def __call__(
        self, schedule_points: list[datetime], last_scheduled_at: datetime | None, /
    ) -> list[datetime]: ...


@dataclass(frozen=True)
class OnlyLatest:
    """After downtime, fire only the latest missed point (the default)."""

    def __call__(
        self, schedule_points: list[datetime], last_scheduled_at: datetime | None, /
    ) -> list[datetime]:
        return schedule_points[-1:]


@dataclass(frozen=True)
class OnlyEarliest:
    """After downtime, fire only the earliest missed point."""

    def __call__(
        self, schedule_points: list[datetime], last_scheduled_at: datetime | None, /
    ) -> list[datetime]:
        return schedule_points[:1]


@runtime_checkable
class Schedule(Protocol):
    """A set of points in time at which an entry fires. Implement it to write your own.

    Points are seconds since the epoch. ``tz`` is the scheduler's zone (``kit.start(...,
    tzinfo=...)``, UTC when not given); a schedule with a zone of its own ignores it. Both
    methods must be pure and cheap (no enumeration of every point): the scheduler calls them
    on every firing and once per entry to catch up after downtime. They must agree with each
    other: ``previous_at_or_before(t)`` is the largest point ``<= t``, ``next_after(t)`` the
    smallest point ``> t``.
    """

    #: Which missed points fire after downtime.
    duplication_policy: DuplicationPolicy

    def next_after(self, t: float, tz: tzinfo) -> float | None:
        """The first point strictly after ``t``, or None if there is none."""
        ...

    def previous_at_or_before(self, t: float, tz: tzinfo) -> float | None:
        """The last point at or before ``t``, or None if there is none."""
        ...


# --------------------------------------------------------------------------- cron engine

_MAX_STEPS: Final = 200_000
_ONE_SECOND: Final = timedelta(seconds=1)


def _offset_at(epoch: float, zone: tzinfo) -> timedelta | None:
    return datetime.fromtimestamp(epoch, zone).utcoffset()


def _gap_end(wall: datetime, zone: tzinfo) -> float:
    """The first real instant after the nonexistent wall time ``wall`` (the DST jump itself).

    For a wall time in a gap, ``fold=0`` reads it with the offset before the jump (an instant
    after it) and ``fold=1`` with the offset after (an instant before it) (PEP 495), so the
    jump lies between the two; tz data switches offsets on whole seconds.
    """
    early = math.floor(wall.replace(tzinfo=zone, fold=1).timestamp())
    late = math.ceil(wall.replace(tzinfo=zone, fold=0).timestamp())
    if early > late:
        early, late = late, early
    after = _offset_at(late, zone)
    while late - early > 1:
        middle = (early + late) // 2
        if _offset_at(middle, zone) == after:
            late = middle
        else:
            early = middle
    return float(late)


class _CronEngine:
    """Answers next/previous point questions for a 6-field cron expression in any zone.

    Two modes, as Vixie/Debian cron and cronsim do:

    * **wall clock** (``wall_clock=True``, for schedules naming times of day): the expression
      is matched against local wall times. A repeated wall time (fall-back) fires once, at its
      first occurrence; a nonexistent one (spring-forward) fires once, at the instant the
      clock jumps (the first valid instant after it).
    * **elapsed time** (interval-like schedules): the expression is matched against the local
      time of every real instant, so the repeated hour runs normally (an every-minute job
      keeps firing every minute) and the skipped hour simply has no points.
    """

    __slots__ = ("expression", "wall_clock")

    def __init__(self, expression: str, wall_clock: bool) -> None:
        self.expression = expression
        self.wall_clock = wall_clock

    def check(self) -> None:
        """Raise ScheduleError if cronsim rejects the expression or it never fires."""
        try:
            next(CronSim(self.expression, datetime(2000, 1, 1)))
        except StopIteration:
            raise ScheduleError(f"cron expression {self.expression!r} never fires") from None
        except (CronSimError, ValueError, TypeError, IndexError, KeyError, AssertionError) as e:
            raise ScheduleError(f"invalid cron expression {self.expression!r}: {e}") from e

    def _iterate(self, start: datetime, reverse: bool) -> Iterator[datetime]:
        it = CronSim(self.expression, start, reverse=reverse)
        for _ in range(_MAX_STEPS):
            try:
                yield next(it)
            except StopIteration:  # cronsim gives up after 50 years without a match
                return
        raise ScheduleError(f"{self.expression!r}: no answer after {_MAX_STEPS} steps")

    def _instant(self, wall: datetime, zone: tzinfo) -> float:
        aware = wall.replace(tzinfo=zone, fold=0)
        if aware.astimezone(_UTC).astimezone(zone).replace(tzinfo=None) == wall:
            return aware.timestamp()  # fold=0: a repeated wall time means its first occurrence
        return _gap_end(wall, zone)

    def next_after(self, t: float, zone: tzinfo) -> float | None:
        whole = math.floor(t)
        if not self.wall_clock:
            for dt in self._iterate(datetime.fromtimestamp(whole, zone), reverse=False):
                point = dt.timestamp()
                if point > t:
                    return point
            return None
        # Instants of matching wall times never decrease as the wall time grows, and every
        # wall time before wall(t) maps to an instant <= t; so scan forward from wall(t).
        wall = datetime.fromtimestamp(whole, zone).replace(tzinfo=None)
        for dt in self._iterate(wall, reverse=False):
            point = self._instant(dt, zone)
            if point > t:
                return point
        return None

    def previous_at_or_before(self, t: float, zone: tzinfo) -> float | None:
        whole = math.floor(t)
        if not self.wall_clock:
            # cronsim's reverse iteration first steps back one second: start just after t.
            start = datetime.fromtimestamp(whole + 1, zone)
            for dt in self._iterate(start, reverse=True):
                point = dt.timestamp()
                if point <= t:
                    return point
            return None
        local = datetime.fromtimestamp(whole, zone)
        wall = local.replace(tzinfo=None)
        if local.fold:
            # t is in the second pass of a repeated hour: wall times up to one shift later
            # were passed (first occurrence) before t.
            first_offset = local.replace(fold=0).utcoffset()
            second_offset = local.utcoffset()
            if first_offset is not None and second_offset is not None:
                wall += max(timedelta(0), first_offset - second_offset)
        for dt in self._iterate(wall + _ONE_SECOND, reverse=True):
            point = self._instant(dt, zone)
            if point <= t:
                return point
        return None


# --------------------------------------------------------------------------- RegularSchedule

FieldValue: TypeAlias = "Literal['*'] | int | Iterable[int] | None"

_FIELD_RANGES: Final = {
    "seconds": range(60),
    "minutes": range(60),
    "hours": range(24),
    "days": range(1, 32),
    "weekdays": range(7),
    "months": range(1, 13),
}
_DAYS_IN_MONTH: Final = (0, 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


def _parse_field(field: str, value: object) -> frozenset[int] | None:
    """A field's values, or None when unrestricted (``None`` or ``'*'``)."""
    valid = _FIELD_RANGES[field]
    bounds = f"{valid.start}..{valid.stop - 1}"
    if value is None or (isinstance(value, str) and value == "*"):
        return None
    if isinstance(value, (bool, str, bytes, float)):
        raise ScheduleError(
            f"RegularSchedule {field} must be '*', None, an int or a set of ints in {bounds}, "
            f"not {value!r}"
        )
    if isinstance(value, int):
        items: list[object] = [value]
    elif isinstance(value, Iterable):
        items = list(value)
    else:
        raise ScheduleError(
            f"RegularSchedule {field} must be '*', None, an int or a set of ints, "
            f"not {type(value).__name__}"
        )
    if not items:
        raise ScheduleError(f"RegularSchedule {field} is empty, so it would never fire")
    for item in items:
        if isinstance(item, bool) or not isinstance(item, int):
            raise ScheduleError(
                f"RegularSchedule {field} values must be ints, not {type(item).__name__} ({item!r})"
            )
        if item not in valid:
            raise ScheduleError(f"RegularSchedule {field} value {item} is out of range {bounds}")
    return frozenset(item for item in items if isinstance(item, int))


def _cron_field(values: frozenset[int] | None) -> str:
    return "*" if values is None else ",".join(str(v) for v in sorted(values))


def _check_tzinfo(owner: str, value: object) -> tzinfo | None:
    if value is not None and not isinstance(value, tzinfo):
        raise ScheduleError(
            f"{owner} tzinfo must be a datetime.tzinfo (e.g. zoneinfo.ZoneInfo('Europe/Paris') "
            f"or datetime.timezone.utc), not {type(value).__name__}"
        )
    return value


def _check_policy(owner: str, value: object) -> DuplicationPolicy:
    if not callable(value):
        raise ScheduleError(
            f"{owner} duplication_policy must be OnlyLatest(), OnlyEarliest() or a callable "
            f"policy, not {value!r}"
        )
    return cast(DuplicationPolicy, value)


class _EngineSchedule:
    """What RegularSchedule and CronSchedule share: a cron engine, a zone, immutability."""

    __slots__ = ()
    _engine: _CronEngine
    tzinfo: TzInfo | None
    duplication_policy: DuplicationPolicy

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable")

    def next_after(self, t: float, tz: TzInfo) -> float | None:
        """The first point strictly after ``t``."""
        return self._engine.next_after(t, self.tzinfo or tz)

    def previous_at_or_before(self, t: float, tz: TzInfo) -> float | None:
        """The last point at or before ``t``."""
        return self._engine.previous_at_or_before(t, self.tzinfo or tz)

    @property
    def follows_wall_clock(self) -> bool:
        """True when the schedule names times of day (see the class docstring)."""
        return self._engine.wall_clock

    def _key(self) -> tuple[object, ...]:
        return (self._engine.expression, self.tzinfo, self.duplication_policy)

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())


class RegularSchedule(_EngineSchedule):
    """Fires at every time whose fields all match (taskkit 0.2's schedule, 1-second steps).

    Each field is ``'*'`` or None (any value), an int, or a set of ints:

    :param seconds: 0–59 (default 0: once a minute at most).
    :param minutes: 0–59.
    :param hours: 0–23.
    :param days: day of the month, 1–31.
    :param weekdays: day of the week, Monday = 0 … Sunday = 6.
    :param months: 1–12.
    :param tzinfo: the zone the fields are read in; None means the scheduler's zone
        (``kit.start(tzinfo=...)``, else UTC).
    :param duplication_policy: which missed points fire after downtime.

    As in cron, when both ``days`` and ``weekdays`` are restricted a day matches if *either*
    matches (``days={1}, weekdays={0}``: the 1st of the month and every Monday); when one of
    them is unrestricted, only the other counts.

    When both ``hours`` and ``minutes`` are restricted the schedule names times of day and
    follows the wall clock across DST changes; otherwise it follows elapsed time (see
    ``docs/scheduling.md``).

    :raises ScheduleError: a field value of the wrong type or out of range, or a combination
        that never fires.
    """

    __slots__ = (
        "_engine",
        "_restricted",
        "days",
        "duplication_policy",
        "hours",
        "minutes",
        "months",
        "seconds",
        "tzinfo",
        "weekdays",
    )

    seconds: frozenset[int]
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    weekdays: frozenset[int]
    months: frozenset[int]
    tzinfo: TzInfo | None
    duplication_policy: DuplicationPolicy
    _engine: _CronEngine
    _restricted: frozenset[str]

    def __init__(
        self,
        seconds: FieldValue = 0,
        minutes: FieldValue = None,
        hours: FieldValue = None,
        days: FieldValue = None,
        weekdays: FieldValue = None,
        months: FieldValue = None,
        tzinfo: TzInfo | None = None,
        duplication_policy: DuplicationPolicy = OnlyLatest(),
    ) -> None:
        given = {
            "seconds": seconds,
            "minutes": minutes,
            "hours": hours,
            "days": days,
            "weekdays": weekdays,
            "months": months,
        }
        parsed = {name: _parse_field(name, value) for name, value in given.items()}
        for name, values in parsed.items():
            object.__setattr__(
                self, name, frozenset(_FIELD_RANGES[name]) if values is None else values
            )
        object.__setattr__(
            self, "_restricted", frozenset(n for n, v in parsed.items() if v is not None)
        )
        object.__setattr__(self, "tzinfo", _check_tzinfo("RegularSchedule", tzinfo))
        object.__setattr__(
            self, "duplication_policy", _check_policy("RegularSchedule", duplication_policy)
        )
        if parsed["days"] is not None and parsed["weekdays"] is None:
            longest = max(_DAYS_IN_MONTH[m] for m in self.months)
            if min(self.days) > longest:
                raise ScheduleError(
                    f"RegularSchedule never fires: no month in {sorted(self.months)} has a day "
                    f"{min(self.days)}"
                )
        # cron counts weekdays from Sunday = 0; taskkit from Monday = 0.
        cron_weekdays = (
            None
            if parsed["weekdays"] is None
            else frozenset((d + 1) % 7 for d in parsed["weekdays"])
        )
        cron_days = parsed["days"]
        if cron_days is not None and cron_weekdays is not None:
            longest = max(_DAYS_IN_MONTH[m] for m in self.months)
            if min(cron_days) > longest:
                # No (day, month) pair exists, so only the weekdays can match; say so plainly
                # (older cronsim releases reject an impossible day-of-month outright).
                cron_days = None
        expression = " ".join(
            [
                _cron_field(parsed["seconds"]),
                _cron_field(parsed["minutes"]),
                _cron_field(parsed["hours"]),
                _cron_field(cron_days),
                _cron_field(parsed["months"]),
                _cron_field(cron_weekdays),
            ]
        )
        wall_clock = parsed["hours"] is not None and parsed["minutes"] is not None
        engine = _CronEngine(expression, wall_clock)
        engine.check()
        object.__setattr__(self, "_engine", engine)

    def get_timezone(self) -> TzInfo | None:
        """The schedule's own zone (taskkit 0.2 API)."""
        return self.tzinfo

    def __repr__(self) -> str:
        fields = ", ".join(
            f"{name}={sorted(getattr(self, name))}"
            for name in _FIELD_RANGES
            if name in self._restricted
        )
        extra = [fields] if fields else []
        if self.tzinfo is not None:
            extra.append(f"tzinfo={self.tzinfo!r}")
        if not isinstance(self.duplication_policy, OnlyLatest):
            extra.append(f"duplication_policy={self.duplication_policy!r}")
        return f"RegularSchedule({', '.join(extra)})"

    def __reduce__(self) -> tuple[object, ...]:
        args = tuple(
            sorted(getattr(self, name)) if name in self._restricted else None
            for name in _FIELD_RANGES
        )
        return (RegularSchedule, (*args, self.tzinfo, self.duplication_policy))


# --------------------------------------------------------------------------- CronSchedule

_ALIASES: Final = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}


class CronSchedule(_EngineSchedule):
    """A cron expression, evaluated by the ``cronsim`` library.

    Accepts the 5 classic fields (minute hour day-of-month month day-of-week; Sunday is 0 or
    7), 6 fields with seconds first, and ``@yearly``, ``@monthly``, ``@weekly``, ``@daily``,
    ``@hourly``. Day-of-month and day-of-week combine as in Debian cron: OR when both are
    restricted, AND when either starts with ``*``. Expressions whose minute and hour fields
    do not start with ``*`` name times of day and follow the wall clock across DST changes;
    the others follow elapsed time (see ``docs/scheduling.md``).

    :param expression: the cron expression.
    :param tzinfo: the zone it is read in; None means the scheduler's zone (else UTC).
    :param duplication_policy: which missed points fire after downtime.
    :raises ScheduleError: the expression is not valid cron or never fires.
    """

    __slots__ = ("_engine", "duplication_policy", "expression", "tzinfo")

    expression: str
    tzinfo: TzInfo | None
    duplication_policy: DuplicationPolicy
    _engine: _CronEngine

    def __init__(
        self,
        expression: str,
        tzinfo: TzInfo | None = None,
        duplication_policy: DuplicationPolicy = OnlyLatest(),
    ) -> None:
        if not isinstance(expression, str):
            raise ScheduleError(f"a cron expression must be a str, not {type(expression).__name__}")
        text = " ".join(expression.split())
        fields = _ALIASES.get(text.lower(), text).split()
        if len(fields) == 5:
            fields.insert(0, "0")
        if len(fields) != 6:
            raise ScheduleError(
                f"invalid cron expression {expression!r}: expected 5 fields (minute hour "
                f"day-of-month month day-of-week), 6 with seconds first, or an @alias"
            )
        wall_clock = not fields[1].startswith("*") and not fields[2].startswith("*")
        engine = _CronEngine(" ".join(fields), wall_clock)
        engine.check()
        object.__setattr__(self, "expression", text)
        object.__setattr__(self, "tzinfo", _check_tzinfo("CronSchedule", tzinfo))
        object.__setattr__(
            self, "duplication_policy", _check_policy("CronSchedule", duplication_policy)
        )
        object.__setattr__(self, "_engine", engine)

    @classmethod
    def from_expression(cls, expression: str, tz: TzInfo | None = None) -> CronSchedule:
        """Build from an expression; the factory registered as schedule kind ``"cron"``."""
        return cls(expression, tz)

    def __repr__(self) -> str:
        tz = "" if self.tzinfo is None else f", tzinfo={self.tzinfo!r}"
        return f"CronSchedule({self.expression!r}{tz})"

    def __reduce__(self) -> tuple[object, ...]:
        return (CronSchedule, (self.expression, self.tzinfo, self.duplication_policy))


# --------------------------------------------------------------------------- entries


def _check_key(what: str, value: object) -> str:
    if not isinstance(value, str):
        raise ScheduleError(f"{what} must be a str, not {type(value).__name__}")
    if not value:
        raise ScheduleError(f"{what} must not be empty")
    if len(value) > MAX_KEY_LENGTH:
        raise ScheduleError(
            f"{what} is {len(value)} characters long; the limit is {MAX_KEY_LENGTH}"
        )
    if not value.isprintable():
        raise ScheduleError(f"{what} {value!r} must contain only printable characters")
    return value


def _check_schedule(what: str, value: object) -> Schedule:
    if isinstance(value, Schedule):
        return value
    if callable(value) and hasattr(value, "get_timezone"):
        raise ScheduleError(
            f"{what} {value!r} is a taskkit 0.2 style schedule (called with candidate points); "
            f"taskkit 1.0 schedules implement next_after(t, tz) and previous_at_or_before(t, "
            f"tz) and have a duplication_policy: see docs/scheduling.md"
        )
    raise ScheduleError(
        f"{what} must be a Schedule (RegularSchedule, CronSchedule, or an object with "
        f"next_after, previous_at_or_before and duplication_policy), not {value!r}"
    )


def _check_ttl(what: str, value: object) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ScheduleError(f"{what} must be a number of seconds or None, not {value!r}")
    if not math.isfinite(value) or value <= 0:
        raise ScheduleError(f"{what} must be a positive, finite number of seconds, not {value!r}")
    return float(value)


@dataclass(frozen=True)
class ScheduleEntry:
    """One scheduled task: fire ``group``/``name`` with ``data`` at every point of ``schedule``.

    :ivar key: identifies the entry within its scheduler (and in the backend's marks), so
        keep it stable across deployments; renaming it starts the entry afresh.
    :ivar schedule: when to fire.
    :ivar group: the task group.
    :ivar name: the task name.
    :ivar data: the task data, **already encoded** as ``TaskHandler().encode_data(group,
        name, value)`` would (the dict form :class:`ScheduleEntryDict` encodes for you).
    :ivar result_ttl: seconds the finished task's record is kept (default 7 days).
    :raises ScheduleError: a field has the wrong type or value.
    """

    key: str
    schedule: Schedule
    group: str
    name: str
    data: bytes
    result_ttl: float | None = None

    def __post_init__(self) -> None:
        _check_key("schedule entry key", self.key)
        where = f"schedule entry {self.key!r}"
        _check_schedule(f"{where}: schedule", self.schedule)
        try:
            validate_name("group", self.group)
            validate_name("task name", self.name)
        except InvalidTask as exc:
            raise ScheduleError(f"{where}: {exc}") from exc
        if not isinstance(self.data, bytes):
            raise ScheduleError(
                f"{where}: data must be bytes encoded like TaskHandler().encode_data(group, "
                f"name, value), not {type(self.data).__name__} (the dict form encodes for you)"
            )
        _check_ttl(f"{where}: result_ttl", self.result_ttl)


class _ScheduleEntryDictOptional(TypedDict, total=False):
    result_ttl: float | None


class ScheduleEntryDict(_ScheduleEntryDictOptional):
    """The dict form of a :class:`ScheduleEntry`; ``data`` is the *unencoded* value.

    The kit encodes ``data`` with its handler's ``encode_data(group, name, data)``.
    """

    key: str
    schedule: Schedule
    group: str
    name: str
    data: object


#: One entry in either form.
ScheduleEntryCompat: TypeAlias = ScheduleEntry | ScheduleEntryDict
#: The entries of one scheduler.
ScheduleEntriesCompat: TypeAlias = Sequence[ScheduleEntryCompat]
#: ``{scheduler_name: entries}``, as ``kit.start(schedule_entries=...)`` takes it.
ScheduleEntriesCompatMapping: TypeAlias = Mapping[str, ScheduleEntriesCompat]


class DataEncoder(Protocol):
    """What :func:`normalize_entries` needs of a handler."""

    def encode_data(self, group: str, task_name: str, data: object, /) -> bytes: ...


_DICT_REQUIRED: Final = frozenset({"key", "schedule", "group", "name", "data"})
_DICT_ALLOWED: Final = _DICT_REQUIRED | {"result_ttl"}


def _entry_from_dict(where: str, item: Mapping[str, object], handler: DataEncoder) -> ScheduleEntry:
    keys = set(item)
    missing = _DICT_REQUIRED - keys
    if missing:
        raise ScheduleError(f"{where} is missing {', '.join(sorted(missing))}")
    unknown = keys - _DICT_ALLOWED
    if unknown:
        raise ScheduleError(
            f"{where} has unknown field(s) {', '.join(sorted(map(repr, unknown)))}; "
            f"allowed: {', '.join(sorted(_DICT_ALLOWED))}"
        )
    key = _check_key(f"{where}: key", item["key"])
    where = f"{where} ({key!r})"
    try:
        group = validate_name("group", item["group"])
        name = validate_name("task name", item["name"])
    except InvalidTask as exc:
        raise ScheduleError(f"{where}: {exc}") from exc
    schedule = _check_schedule(f"{where}: schedule", item["schedule"])
    ttl = _check_ttl(f"{where}: result_ttl", item.get("result_ttl"))
    try:
        data = handler.encode_data(group, name, item["data"])
    except Exception as exc:
        raise ScheduleError(f"{where}: encode_data failed: {exc!r}") from exc
    if not isinstance(data, bytes):
        raise ScheduleError(
            f"{where}: {type(handler).__name__}.encode_data returned "
            f"{type(data).__name__}, not bytes"
        )
    return ScheduleEntry(key, schedule, group, name, data, ttl)


def normalize_entries(
    entries: ScheduleEntriesCompatMapping, handler: DataEncoder | None, max_data_size: int
) -> dict[str, list[ScheduleEntry]]:
    """Validate ``{scheduler_name: [entries]}`` and encode the dict-form entries' data.

    :param entries: per scheduler name, :class:`ScheduleEntry` objects or
        :class:`ScheduleEntryDict` dicts (whose ``data`` is encoded here).
    :param handler: encodes dict-form data with ``encode_data(group, name, data)``.
    :param max_data_size: the cap on each entry's encoded data, in bytes.
    :return: per scheduler name, the validated entries.
    :raises ScheduleError: anything invalid: a bad scheduler name or entry key, a duplicate
        key within a scheduler, a missing or unknown dict field, a bad group or task name,
        data that is not bytes or over the cap, an object that is not a :class:`Schedule`.
    """
    if not isinstance(entries, Mapping):
        raise ScheduleError(
            f"schedule entries must be a mapping {{scheduler_name: [entries]}}, "
            f"not {type(entries).__name__}"
        )
    result: dict[str, list[ScheduleEntry]] = {}
    for scheduler_name, items in entries.items():
        _check_key("scheduler name", scheduler_name)
        if isinstance(items, (str, bytes, Mapping)) or not isinstance(items, Sequence):
            raise ScheduleError(
                f"scheduler {scheduler_name!r}: entries must be a list, not {type(items).__name__}"
            )
        normalized: list[ScheduleEntry] = []
        seen: set[str] = set()
        for index, item in enumerate(items):
            where = f"scheduler {scheduler_name!r}: entry #{index}"
            if isinstance(item, ScheduleEntry):
                entry = item
            elif isinstance(item, Mapping):
                if handler is None:
                    raise ScheduleError(f"{where}: a dict entry needs a handler to encode its data")
                entry = _entry_from_dict(where, cast("Mapping[str, object]", item), handler)
            else:
                raise ScheduleError(
                    f"{where} must be a ScheduleEntry or a dict, not {type(item).__name__}"
                )
            if entry.key in seen:
                raise ScheduleError(
                    f"scheduler {scheduler_name!r}: duplicate entry key {entry.key!r} "
                    f"(keys must be unique within a scheduler)"
                )
            seen.add(entry.key)
            try:
                validate_payload(f"data of schedule entry {entry.key!r}", entry.data, max_data_size)
            except InvalidTask as exc:
                raise ScheduleError(f"scheduler {scheduler_name!r}: {exc}") from exc
            normalized.append(entry)
        result[scheduler_name] = normalized
    return result
