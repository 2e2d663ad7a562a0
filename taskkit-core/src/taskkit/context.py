"""The running task's context, for cooperative cancellation and time limits.

The context lives in a :class:`contextvars.ContextVar`, not a thread-local: an executor
thread sets it for the task it runs, and every asyncio task on the worker's event loop has
a context of its own, so :func:`current_task` names the right task in coroutines too
(hundreds of them share the loop's one thread).
"""

from __future__ import annotations

import threading
import time
from contextvars import ContextVar
from dataclasses import dataclass, field

from ._task import Task
from .errors import TaskCancelled, TaskTimeout

__all__ = ["TaskContext", "current_task"]

_current: ContextVar[TaskContext | None] = ContextVar("taskkit_current_task", default=None)


@dataclass
class TaskContext:
    """What a handler can ask about the task it is running.

    :ivar task: the task.
    :ivar deadline: ``time.monotonic()`` value after which the task times out, or None.
    """

    task: Task
    deadline: float | None = None
    cancel_requested: threading.Event = field(default_factory=threading.Event)
    timed_out: threading.Event = field(default_factory=threading.Event)

    @property
    def cancelled(self) -> bool:
        """True once a cancel of this task was requested."""
        return self.cancel_requested.is_set()

    def remaining(self) -> float | None:
        """Seconds left before the time limit, or None without a limit."""
        return None if self.deadline is None else max(0.0, self.deadline - time.monotonic())

    def check(self) -> None:
        """Raise :class:`TaskCancelled` or :class:`TaskTimeout` if the task should stop.

        Long-running handlers call it between steps: the cooperative half of cancellation and
        time limits (the enforced half interrupts Python code, but not a call blocked in C).
        """
        if self.cancel_requested.is_set():
            raise TaskCancelled(self.task.id)
        if self.timed_out.is_set() or (
            self.deadline is not None and time.monotonic() > self.deadline
        ):
            self.timed_out.set()
            raise TaskTimeout(self.task.id)


def current_task() -> TaskContext | None:
    """The context of the task this thread (or this asyncio task) is running, or None
    outside a handler. A coroutine the handler starts with ``asyncio.create_task`` inherits
    it, as it inherits every context variable."""
    return _current.get()


def _set_current(context: TaskContext | None) -> None:
    _current.set(context)
