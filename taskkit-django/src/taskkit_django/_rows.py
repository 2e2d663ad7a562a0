"""What every flavour of the Django backend shares about rows: the state values it filters by,
the ``__in`` chunk size, and the conversions from ``taskkit_task`` / ``taskkit_control`` rows
to taskkit's value types.

It imports nothing of the backend, so the flavours (:mod:`taskkit_django._orm`,
:mod:`taskkit_django._sqlite`, :mod:`taskkit_django._postgres`) all import it and never
each other's helpers.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from typing import Any

from taskkit import ControlEvent, Outcome, Task, TaskState
from taskkit.backend import decode_headers, encode_headers

RUNNING = TaskState.RUNNING.value
QUEUED = TaskState.QUEUED.value
DEAD = TaskState.DEAD.value
FINISHED_STATES = [s.value for s in TaskState if s.finished]
#: Keeps ``__in`` lists under every database's parameter limit.
CHUNK = 500
#: The columns a claim reads to rebuild a :class:`~taskkit.Task` (see :func:`task_from_values`).
TASK_FIELDS = (
    "id",
    "group",
    "name",
    "data",
    "due",
    "created",
    "scheduled",
    "retry_count",
    "ttl",
    "timeout",
    "deliveries",
    "headers",
)


def chunks(items: Sequence[Any], size: int = CHUNK) -> Iterator[Sequence[Any]]:
    """``items`` in slices of at most ``size``."""
    for i in range(0, len(items), size):
        yield items[i : i + size]


def app_models() -> Any:
    """The app's models module (imported on first use: it needs a ready app registry)."""
    from . import models  # noqa: PLC0415 - needs the app registry, which may load later

    return models


def headers_column(task: Task) -> str | None:
    """The ``headers`` column of ``task``'s row: its JSON text, or null for none."""
    return encode_headers(task.headers) or None


def task_from_row(row: Any) -> Task:
    """The task of a ``TaskRecord`` (or any object with its attributes)."""
    return Task(
        id=row.id,
        group=row.group,
        name=row.name,
        data=bytes(row.data),
        due=float(row.due),
        created=float(row.created),
        scheduled=None if row.scheduled is None else float(row.scheduled),
        retry_count=int(row.retry_count),
        ttl=float(row.ttl),
        timeout=None if row.timeout is None else float(row.timeout),
        deliveries=int(row.deliveries),
        headers=decode_headers(row.headers),
    )


def task_from_values(row: dict[str, Any], deliveries: int) -> Task:
    """The task of a ``values(*TASK_FIELDS)`` row, with the delivery count it now has."""
    return Task(
        id=row["id"],
        group=row["group"],
        name=row["name"],
        data=bytes(row["data"]),
        due=float(row["due"]),
        created=float(row["created"]),
        scheduled=None if row["scheduled"] is None else float(row["scheduled"]),
        retry_count=int(row["retry_count"]),
        ttl=float(row["ttl"]),
        timeout=None if row["timeout"] is None else float(row["timeout"]),
        deliveries=deliveries,
        headers=decode_headers(row["headers"]),
    )


def outcome_from_row(row: Any) -> Outcome:
    """The outcome a ``TaskRecord`` (or an object with its attributes) stands for."""
    state = TaskState(row.state)
    return Outcome(
        task=task_from_row(row),
        state=state,
        result=(
            bytes(row.result) if state is TaskState.SUCCEEDED and row.result is not None else None
        ),
        error=row.error,
        finished=None if row.finished is None or not state.finished else float(row.finished),
    )


def event_from_row(rec: Any) -> ControlEvent:
    """The control event of a ``ControlRecord``."""
    groups = None if rec.groups is None else tuple(json.loads(rec.groups))
    return ControlEvent(seq=int(rec.seq), kind=rec.kind, groups=groups, created=float(rec.created))
