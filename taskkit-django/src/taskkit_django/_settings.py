"""The ``TASKKIT`` Django setting, read by the management commands.

::

    TASKKIT = {
        "HANDLER": "myapp.tasks.Handler",       # a TaskHandler class or instance (dotted path)
        "DATABASE": "default",                  # the alias holding the taskkit tables
        "PROCESSES": 2,                          # worker processes
        "THREADS": {"mail": 4, "reports": 1},   # worker threads per group, per process
        "SCHEDULE": "myapp.tasks.SCHEDULE",     # {scheduler: [entries]} (dotted path), optional
        "TIMEZONE": "Asia/Tokyo",               # schedules' default time zone, optional
        "OPTIONS": {"lease_seconds": 30},       # taskkit.KitConfig fields, optional
    }
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import tzinfo
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string


@dataclass
class TaskkitSettings:
    handler: Any = None
    database: str = "default"
    processes: int = 1
    threads: dict[str, int] = field(default_factory=dict)
    schedule: Any = None
    timezone: tzinfo | None = None
    options: dict[str, Any] = field(default_factory=dict)


def load() -> TaskkitSettings:
    raw = dict(getattr(settings, "TASKKIT", {}) or {})
    unknown = set(raw) - {
        "HANDLER",
        "DATABASE",
        "PROCESSES",
        "THREADS",
        "SCHEDULE",
        "TIMEZONE",
        "OPTIONS",
    }
    if unknown:
        raise ImproperlyConfigured(f"unknown TASKKIT setting(s): {', '.join(sorted(unknown))}")
    result = TaskkitSettings(
        database=str(raw.get("DATABASE", "default")),
        processes=int(raw.get("PROCESSES", 1)),
        threads={str(k): int(v) for k, v in dict(raw.get("THREADS", {})).items()},
        options=dict(raw.get("OPTIONS", {})),
    )
    handler = raw.get("HANDLER")
    if isinstance(handler, str):
        handler = import_string(handler)
    if isinstance(handler, type):
        handler = handler()
    result.handler = handler
    schedule = raw.get("SCHEDULE")
    result.schedule = import_string(schedule) if isinstance(schedule, str) else schedule
    tz = raw.get("TIMEZONE")
    if isinstance(tz, str):
        from zoneinfo import ZoneInfo  # noqa: PLC0415

        tz = ZoneInfo(tz)
    result.timezone = tz
    return result
