"""The handler of the original README, plus a ledger so the test can see what ran.

Module-level so worker processes (any start method) can import it.
"""

from __future__ import annotations

import json
import os
from typing import Any

from taskkit import DiscardTask, Task, TaskHandler

GROUP_NAME = "readme"


class Handler(TaskHandler):
    ledger_path = os.environ.get("TASKKIT_TEST_LEDGER", "")

    def handle(self, task: Task) -> Any:
        if self.ledger_path:
            line = f"{task.name} {task.id} {task.scheduled} {os.getpid()}\n".encode()
            fd = os.open(self.ledger_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
            try:
                os.write(fd, line)
            finally:
                os.close(fd)
        if task.group == GROUP_NAME:
            if task.name == "foo":
                data = json.loads(task.data)
                return {"doubled": data["some_data"] * 2}
            if task.name in ("bar", "test2", "test3"):
                return json.loads(task.data)
        raise DiscardTask

    def get_retry_interval(self, task: Task, exception: Exception) -> float | None:
        return task.retry_count if task.retry_count < 10 else None

    def encode_data(self, group: str, task_name: str, data: Any) -> bytes:
        return json.dumps(data).encode()

    def encode_result(self, task: Task, result: Any) -> bytes:
        return json.dumps(result).encode()

    def decode_result(self, task: Task, encoded: bytes) -> Any:
        return json.loads(encoded)


class HashHandler(TaskHandler):
    """Returns sha256(data) hex; logs ``end <id> <pid>`` lines to the ledger (O_APPEND)."""

    def __init__(self, ledger_path: str) -> None:
        self.ledger_path = ledger_path

    def handle(self, task: Task) -> Any:
        import hashlib

        fd = os.open(self.ledger_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
        try:
            os.write(fd, f"end {task.id} {os.getpid()}\n".encode())
        finally:
            os.close(fd)
        return hashlib.sha256(task.data).hexdigest()

    def encode_data(self, group: str, task_name: str, data: Any) -> bytes:
        return json.dumps(data).encode()

    def encode_result(self, task: Task, result: Any) -> bytes:
        return json.dumps(result).encode()

    def decode_result(self, task: Task, encoded: bytes) -> Any:
        return json.loads(encoded)
