"""The program of the taskkit 0.2 README, shared by every suite that checks it runs unchanged.

The core runs it on the in-memory backend, taskkit-redis and taskkit-django on theirs; this
module is its one copy, statement by statement:

* :class:`Handler`, the README's handler as users wrote it (JSON encoded by hand, a retry
  after ``retry_count`` seconds, at most 10), plus two test knobs: the group it serves, and
  a ledger file through which a test sees what ran in worker processes;
* :func:`schedule_entries`, its ``schedule_entries`` (a :class:`~taskkit.ScheduleEntry`
  and the dict form);
* :func:`worker_options`, the arguments of its ``kit.start(...)`` /
  ``kit.start_processes(...)`` call;
* :func:`initiate_foo`, its first task, whose result is :data:`FOO_RESULT`.

A suite writes the README's calls with these (``kit.start_processes(**worker_options(2),
daemon=True)``), so what the README does is written once and each suite adds only what it
checks on its backend.
"""

from __future__ import annotations

import json
import os
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from taskkit import DiscardTask, RegularSchedule, ScheduleEntry, Task, TaskHandler

if TYPE_CHECKING:
    from taskkit import Kit, Result, ScheduleEntriesCompatMapping

__all__ = [
    "FOO_RESULT",
    "GROUP_NAME",
    "LEDGER_ENV",
    "THREADS",
    "TZ",
    "Handler",
    "ReadmeCodec",
    "initiate_foo",
    "schedule_entries",
    "worker_options",
]

#: The README's group.
GROUP_NAME = "Any task group name"
#: The environment variable that names a ledger file (the default of ``Handler.ledger_path``).
LEDGER_ENV = "TASKKIT_TEST_LEDGER"
#: The README's time zone for schedules that set none (its ``tzinfo=``).
TZ = timezone(timedelta(hours=9), "JST")
#: The README's worker threads per process for its group.
THREADS = 3
#: What the README's ``foo`` task returns for its data, ``dict(some_data=1)``.
FOO_RESULT = {"doubled": 2}


class ReadmeCodec(TaskHandler):
    """The README's encoding, for handlers of tests that run beside it: JSON, encoded by hand."""

    def encode_data(self, group: str, task_name: str, data: Any) -> bytes:
        return json.dumps(data).encode()

    def encode_result(self, task: Task, result: Any) -> bytes:
        return json.dumps(result).encode()

    def decode_result(self, task: Task, encoded: bytes) -> Any:
        return json.loads(encoded)


class Handler(ReadmeCodec):
    """The README's handler: ``foo`` doubles ``some_data``; ``bar``, ``test2`` and ``test3``
    return their data; everything else is discarded.

    :param group: the group it serves (the README's :data:`GROUP_NAME` by default).
    :param ledger_path: a file each run appends ``name id scheduled pid`` to, one line per
        run written with ``O_APPEND`` so that processes never interleave within a line; empty
        for none. Defaults to the class attribute (itself ``$TASKKIT_TEST_LEDGER``).
    """

    group: str = GROUP_NAME
    ledger_path: str = os.environ.get(LEDGER_ENV, "")

    def __init__(self, group: str | None = None, ledger_path: str | None = None) -> None:
        if group is not None:
            self.group = group
        if ledger_path is not None:
            self.ledger_path = ledger_path

    def handle(self, task: Task) -> Any:
        if self.ledger_path:
            self._write_ledger(task)
        if task.group == self.group:
            if task.name == "foo":
                data = json.loads(task.data)
                return {"doubled": data["some_data"] * 2}
            if task.name in ("bar", "test2", "test3"):
                return json.loads(task.data)
        raise DiscardTask

    def get_retry_interval(self, task: Task, exception: Exception) -> float | None:
        return task.retry_count if task.retry_count < 10 else None

    def _write_ledger(self, task: Task) -> None:
        line = f"{task.name} {task.id} {task.scheduled} {os.getpid()}\n".encode()
        fd = os.open(self.ledger_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
        try:
            os.write(fd, line)
        finally:
            os.close(fd)


def schedule_entries(
    handler: TaskHandler, group: str = GROUP_NAME, *, every_second: bool = False
) -> ScheduleEntriesCompatMapping:
    """The README's ``schedule_entries``.

    Under ``"scheduler_name"``: a :class:`~taskkit.ScheduleEntry` for ``test2`` whose data
    (``"SOME DATA"``) ``handler`` encoded, as 0.2 required, twice an hour; and the dict form
    for ``test3`` (data ``2``, encoded by the kit), at half past. ``"another_scheduler"``
    has no entries.

    :param handler: encodes the ``ScheduleEntry``'s data (the README's
        ``Handler().encode_data(...)``).
    :param group: the group both entries initiate their tasks in.
    :param every_second: fire both every second instead, for a suite that waits for them.
    """
    every = RegularSchedule(seconds="*")
    return {
        "scheduler_name": [
            ScheduleEntry(
                key="test2",
                group=group,
                name="test2",
                data=handler.encode_data(group, "test2", "SOME DATA"),
                schedule=every if every_second else RegularSchedule(seconds={0}, minutes={0, 30}),
            ),
            {
                "key": "test3",
                "group": group,
                "name": "test3",
                "data": 2,
                "schedule": every if every_second else RegularSchedule(seconds={0}, minutes={30}),
            },
        ],
        "another_scheduler": [],
    }


def worker_options(
    num_processes: int,
    group: str = GROUP_NAME,
    schedule_entries: ScheduleEntriesCompatMapping | None = None,
) -> dict[str, Any]:
    """The keyword arguments of the README's ``kit.start(...)`` and
    ``kit.start_processes(...)``: ``num_processes`` workers of :data:`THREADS` threads for
    ``group``, running ``schedule_entries`` (none by default) in :data:`TZ`.

    ``kit.start_processes(**worker_options(2), daemon=True)`` is the README's call.
    """
    return {
        "num_processes": num_processes,
        "num_worker_threads_per_group": {group: THREADS},
        "schedule_entries": schedule_entries if schedule_entries is not None else {},
        "tzinfo": TZ,
    }


def initiate_foo(kit: Kit, group: str = GROUP_NAME, delay: float = 1.0) -> Result[Any]:
    """The README's first task: ``foo`` with ``dict(some_data=1)``, due ``delay`` seconds
    from now as a naive local datetime (as the README writes it). Its result, once a worker
    ran it, is :data:`FOO_RESULT`."""
    return kit.initiate_task(
        group, "foo", dict(some_data=1), due=datetime.now() + timedelta(seconds=delay)
    )
