"""A ledger kept outside the system under test (reliability.md §3.0).

Each handler run appends ``start`` and ``end`` lines to a per-process ``O_APPEND`` file with a
single ``os.write`` (lines < 4 KiB, so they survive SIGKILL whole). The harness merges the
ledgers with the backend's state to count lost and duplicate tasks.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from taskkit import DiscardTask, Task, TaskHandler


class LedgerHandler(TaskHandler):
    """Sleeps as told, returns sha256(payload), and writes the ledger.

    Task data: ``{"payload": str, "sleep_ms": [low, high], "poison": bool}``.
    """

    def __init__(self, ledger_dir: str) -> None:
        self.ledger_dir = ledger_dir
        self._fd: int | None = None
        self._pid: int | None = None
        self._lock = threading.Lock()

    def __getstate__(self) -> dict[str, Any]:
        return {"ledger_dir": self.ledger_dir}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["ledger_dir"])  # type: ignore[misc]

    def _write(self, kind: str, task: Task) -> None:
        with self._lock:
            if self._fd is None or self._pid != os.getpid():
                self._pid = os.getpid()
                path = os.path.join(self.ledger_dir, f"ledger-{self._pid}.log")
                self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            line = (
                f"{kind} {task.id} {task.retry_count} {os.getpid()} "
                f"{threading.get_ident()} {time.monotonic():.6f}\n"
            )
            os.write(self._fd, line.encode())

    def handle(self, task: Task) -> Any:
        if task.name not in ("work", "poison"):
            raise DiscardTask(f"unknown task {task.name}")
        spec = self.decode_data(task)
        self._write("start", task)
        if task.name == "poison":
            os._exit(137)
        low, high = spec.get("sleep_ms", [0, 0])
        if high:
            time.sleep(random.uniform(low, high) / 1000)
        self._write("end", task)
        return expected_result(spec["payload"])

    def get_retry_interval(self, task: Task, exception: Exception) -> float | None:
        return None


def expected_result(payload: str) -> str:
    return hashlib.sha256(payload.encode()).hexdigest()


def work(payload: str, sleep_ms: tuple[int, int] = (0, 0)) -> dict[str, Any]:
    return {"payload": payload, "sleep_ms": list(sleep_ms)}


@dataclass
class LedgerSummary:
    starts: Counter[str]
    ends: Counter[str]

    @property
    def duplicates(self) -> int:
        """``start`` lines minus distinct tasks started (reliability.md's definition)."""
        return sum(self.starts.values()) - len(self.starts)


def read_ledger(ledger_dir: str | Path) -> LedgerSummary:
    starts: Counter[str] = Counter()
    ends: Counter[str] = Counter()
    for path in Path(ledger_dir).glob("ledger-*.log"):
        for line in path.read_text().splitlines():
            parts = line.split()
            if len(parts) != 6:
                continue  # a line cut by SIGKILL cannot happen with one os.write, but be safe
            (starts if parts[0] == "start" else ends)[parts[1]] += 1
    return LedgerSummary(starts, ends)


def dumps(value: Any) -> str:
    return json.dumps(value)
