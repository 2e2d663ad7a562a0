"""The program of the taskkit 0.2 README, shared by every suite that checks it runs unchanged.

The core runs it on the in-memory backend, taskkit-redis and taskkit-django on theirs; this
module is its one copy. :class:`Handler` is the README's handler as users wrote it (JSON
encoded by hand, a retry after ``retry_count`` seconds, at most 10), plus two test knobs: the
group it serves, and a ledger file through which a test sees what ran in worker processes.
"""

from __future__ import annotations

import json
import os
from typing import Any

from taskkit import DiscardTask, Task, TaskHandler

__all__ = ["GROUP_NAME", "LEDGER_ENV", "Handler", "ReadmeCodec"]

#: The README's group.
GROUP_NAME = "Any task group name"
#: The environment variable that names a ledger file (the default of ``Handler.ledger_path``).
LEDGER_ENV = "TASKKIT_TEST_LEDGER"


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
