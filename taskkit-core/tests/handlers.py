"""Handlers used by the core tests (importable, so spawned processes can unpickle them)."""

from __future__ import annotations

import threading
import time
from typing import Any

from taskkit import DiscardTask, Task, TaskHandler
from taskkit.context import current_task


class RecordingHandler(TaskHandler):
    """Dispatches on the task name; records every run."""

    def __init__(self) -> None:
        self.runs: list[tuple[str, int]] = []
        self.lock = threading.Lock()
        self.release = threading.Event()

    def __getstate__(self) -> dict[str, Any]:
        return {}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__()  # type: ignore[misc]

    def handle(self, task: Task) -> Any:
        with self.lock:
            self.runs.append((task.id, task.retry_count))
        data = self.decode_data(task)
        if task.name == "double":
            return data * 2
        if task.name == "fail":
            raise ValueError(f"failing on purpose: {data}")
        if task.name == "exit":
            raise SystemExit(7)
        if task.name == "interrupt":
            raise KeyboardInterrupt
        if task.name == "discard":
            raise DiscardTask("not wanted")
        if task.name == "sleep":
            time.sleep(data)
            return "slept"
        if task.name == "spin":  # pure Python loop: interruptible by time limit and cancel
            while True:
                sum(range(1000))
        if task.name == "wait_release":
            self.release.wait(30)
            return "released"
        if task.name == "cooperative":
            context = current_task()
            assert context is not None
            while True:
                context.check()
                time.sleep(0.01)
        if task.name == "big_result":
            return "x" * data
        if task.name == "unencodable":
            return object()
        raise DiscardTask(f"unknown task {task.group}/{task.name}")

    def get_retry_interval(self, task: Task, exception: Exception) -> float | None:
        return 0.01 if task.retry_count < 2 else None
