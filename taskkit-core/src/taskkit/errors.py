"""Every exception taskkit raises on purpose.

Stored errors are plain text: taskkit never rebuilds an exception class named in stored data
(the Celery CVE-2021-23727 pattern); a failure always comes back as :class:`Failed`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._task import Task


class TaskkitError(Exception):
    """Base class of taskkit's own errors."""


class DiscardTask(Exception):
    """Raise from a handler (or ``get_retry_interval``) to discard the task without retrying."""


class UnknownTask(DiscardTask):
    """No function task and no handler of this worker knows the task's (group, name).

    Raised by the base :meth:`TaskHandler.handle` and by a kit without a handler. A worker
    does not discard such a task: during a rolling deploy the worker that knows the name may
    not be running yet, so the task is handed back with a back-off (not counted as a
    delivery) and becomes a dead letter only after ``KitConfig.unknown_task_window``. It is a
    :class:`DiscardTask` so that 0.2 code catching that keeps working; a ``DiscardTask``
    raised by the user's own handler keeps its meaning (the task is discarded).
    """


class ResultGetTimedOut(TaskkitError, TimeoutError):
    """``Result.get(timeout)`` saw no outcome within the timeout."""


class ResultGetPrevented(TaskkitError):
    """``Result.get`` was called inside a running handler.

    Waiting on another task from a worker thread can deadlock the pool: every thread may end up
    waiting for a task that no free thread can run.
    """


class NotFound(TaskkitError, LookupError):
    """No such task: never initiated, discarded, or its record expired after its TTL."""

    def __init__(self, task_id: str, reason: str = "not found") -> None:
        super().__init__(f"task {task_id!r}: {reason}")
        self.task_id = task_id
        self.reason = reason


class Failed(TaskkitError):
    """The task failed for good.

    :ivar task: the task as last stored.
    :ivar message: the traceback text (or reason) of the last failure.
    """

    def __init__(self, task: Task, message: str) -> None:
        super().__init__(f"task {task.id!r} ({task.group}/{task.name}) failed: {message}")
        self.task = task
        self.message = message


class Cancelled(Failed):
    """The task was cancelled before it finished."""


class DeadLettered(Failed):
    """The task became a dead letter (for example it killed its worker too many times)."""


class InvalidTask(TaskkitError, ValueError):
    """A task was refused at enqueue: bad group or name, non-bytes data, bad due time."""


class PayloadTooLarge(InvalidTask):
    """Data, result or error text exceeded its configured size cap.

    :ivar size: the size in bytes that was refused.
    :ivar limit: the cap in bytes.
    """

    def __init__(self, what: str, size: int, limit: int) -> None:
        super().__init__(f"{what} is {size} bytes, over the limit of {limit} bytes")
        self.what = what
        self.size = size
        self.limit = limit


class LeaseLost(TaskkitError):
    """A state change presented a stale fencing token: another claim owns the task now."""


class TaskCancelled(BaseException):
    """Raised inside a handler when its task is cancelled (or by ``current_task().check()``).

    A ``BaseException`` so that a handler's ``except Exception`` does not swallow it.
    """


class TaskTimeout(BaseException):
    """Raised inside a handler when its task exceeds its time limit."""


class ConfigurationError(TaskkitError, ValueError):
    """Bad configuration: unknown URL scheme, missing backend distribution, bad options."""


class BackendUnavailable(TaskkitError, ConnectionError):
    """The backend could not be reached; the call may be retried."""


class ScheduleError(TaskkitError, ValueError):
    """An invalid schedule or schedule entry."""
