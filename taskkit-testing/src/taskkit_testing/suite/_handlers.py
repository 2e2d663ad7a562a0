"""The handler the runtime tests run in worker processes (importable, so ``spawn`` works)."""

from __future__ import annotations

import os
import threading
import time
from typing import Any

from taskkit import DiscardTask, Task, TaskHandler, current_task

from ..helpers import Ledger

__all__ = ["ConformanceHandler"]


class ConformanceHandler(TaskHandler):
    """Task names: ``add`` ({a, b} -> a + b), ``boom`` (raises, never retried), ``flaky``
    (fails its first attempt, then returns "ok"), ``sleep`` ({seconds} -> the task id,
    logged to the ledger), ``headers`` ({fail_first} -> the headers ``current_task()`` shows,
    after a failed first attempt when ``fail_first``); anything else is discarded as unknown.
    Data that is not JSON fails the task (no retry), as a real handler's decoding error
    would.

    :param ledger_path: where ``sleep`` tasks log ``start``/``end`` lines, if anywhere.
    """

    def __init__(self, ledger_path: str | None = None) -> None:
        self.ledger_path = ledger_path
        self._local = threading.local()

    def __getstate__(self) -> dict[str, Any]:
        return {"ledger_path": self.ledger_path}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.ledger_path = state["ledger_path"]
        self._local = threading.local()

    def _ledger(self) -> Ledger | None:
        if self.ledger_path is None:
            return None
        ledger: Ledger | None = getattr(self._local, "ledger", None)
        if ledger is None:
            ledger = self._local.ledger = Ledger(self.ledger_path)
        return ledger

    def handle(self, task: Task) -> Any:
        if task.name == "add":
            data = self.decode_data(task)
            return data["a"] + data["b"]
        if task.name == "boom":
            raise ValueError(f"boom from {task.id}")
        if task.name == "flaky":
            if task.retry_count == 0:
                raise RuntimeError("first attempt fails")
            return "ok"
        if task.name == "sleep":
            data = self.decode_data(task)
            ledger = self._ledger()
            if ledger is not None:
                ledger.write("start", task.id, task.deliveries, os.getpid(), time.monotonic())
            time.sleep(data["seconds"])  # the work: kills land in the middle of it
            if ledger is not None:
                ledger.write("end", task.id, os.getpid())
            return task.id
        if task.name == "headers":
            if self.decode_data(task)["fail_first"] and task.retry_count == 0:
                raise RuntimeError("first attempt fails")
            context = current_task()
            return None if context is None else dict(context.task.headers)
        raise DiscardTask(f"unknown task {task.group}/{task.name}")

    def get_retry_interval(self, task: Task, exception: Exception) -> float | None:
        if task.name in ("flaky", "headers") and task.retry_count == 0:
            return 0.0
        return None
