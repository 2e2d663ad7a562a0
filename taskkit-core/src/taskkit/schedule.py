"""Schedules and schedule entries. (Skeleton: being written; see the scheduler work item.)"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import tzinfo
from typing import Any, Protocol, TypeAlias, TypedDict

from .errors import ScheduleError


class DuplicationPolicy(Protocol):
    """Chooses which missed points fire after downtime."""


@dataclass(frozen=True)
class OnlyLatest:
    """After downtime, fire only the latest missed point."""


@dataclass(frozen=True)
class OnlyEarliest:
    """After downtime, fire only the earliest missed point."""


class Schedule(Protocol):
    """A set of points in time at which an entry fires."""


class RegularSchedule:
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        raise NotImplementedError("RegularSchedule is being written")


class CronSchedule:
    @classmethod
    def from_expression(cls, expression: str, tz: tzinfo | None) -> CronSchedule:
        raise NotImplementedError("CronSchedule is being written")


@dataclass(frozen=True)
class ScheduleEntry:
    key: str
    schedule: Schedule
    group: str
    name: str
    data: bytes
    result_ttl: float | None = None


class ScheduleEntryDict(TypedDict):
    key: str
    schedule: Schedule
    group: str
    name: str
    data: Any


ScheduleEntryCompat: TypeAlias = "ScheduleEntry | ScheduleEntryDict"
ScheduleEntriesCompat: TypeAlias = "Sequence[ScheduleEntryCompat]"
ScheduleEntriesCompatMapping: TypeAlias = "Mapping[str, ScheduleEntriesCompat]"


def normalize_entries(
    entries: ScheduleEntriesCompatMapping, handler: Any, max_data_size: int
) -> dict[str, list[ScheduleEntry]]:
    if entries:
        raise ScheduleError("schedules are being written")
    return {}
