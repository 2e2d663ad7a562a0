"""Starting, killing and reaping the kit's child processes."""

from __future__ import annotations

import multiprocessing
import os
import signal
from collections.abc import Callable
from multiprocessing.process import BaseProcess
from types import TracebackType
from typing import Any

from ..helpers import wait_until

__all__ = ["Children"]


def _exited(process: BaseProcess) -> bool:
    try:
        return process.exitcode is not None
    except ValueError:  # already closed, hence reaped
        return True


class Children:
    """``spawn``ed child processes that are always reaped, even when a test fails.

    ``spawn`` is used on purpose: it proves the backend can be rebuilt from its picklable
    factory in a fresh interpreter, as worker processes do.
    """

    def __init__(self) -> None:
        self.context = multiprocessing.get_context("spawn")
        self.processes: list[BaseProcess] = []

    def start(self, target: Callable[..., Any], *args: Any, name: str | None = None) -> BaseProcess:
        process = self.context.Process(target=target, args=args, name=name, daemon=True)
        process.start()
        self.processes.append(process)
        return process

    def event(self) -> Any:
        return self.context.Event()

    def kill(self, process: BaseProcess, timeout: float = 10.0) -> None:
        """SIGKILL ``process`` and wait until it is gone."""
        if _exited(process):
            return
        if process.pid is not None:
            os.kill(process.pid, signal.SIGKILL)
        process.join(timeout)

    def join_all(self, timeout: float) -> None:
        wait_until(
            lambda: all(_exited(p) for p in self.processes),
            timeout,
            message="child processes did not exit in time",
        )

    def __enter__(self) -> Children:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for process in self.processes:
            if not _exited(process):
                self.kill(process)
            try:
                process.close()
            except ValueError:
                pass  # still running after the kill's timeout: leave it to the OS
