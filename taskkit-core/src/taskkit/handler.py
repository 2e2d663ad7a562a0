"""``TaskHandler``: the one class users write."""

from __future__ import annotations

import functools
from typing import Any, ClassVar

from ._task import Task
from .errors import UnknownTask
from .plugins import registries
from .retry import ExceptionTypes, ExponentialBackoff, RetryPolicy, exception_types, is_retryable
from .serializers import Serializer

__all__ = ["TaskHandler"]


@functools.cache
def _serializer_named(name: str) -> Serializer:
    return registries().serializers.get(name)()


class TaskHandler:
    """Runs tasks and encodes their data and results.

    Subclasses must implement :meth:`handle`. The other four methods have defaults: data and
    results are encoded with :attr:`serializer` (JSON unless a subclass names another
    registered serializer), and failures are retried by :attr:`retry_policy` (capped
    exponential back-off with jitter: at most 5 retries, over about 2.5 minutes), for the
    exceptions :attr:`retry_on` names and :attr:`retry_unless` does not.

    Retry only connection trouble, in one line::

        class Handler(TaskHandler):
            retry_on = (ConnectionError, TimeoutError)

    A handler that overrides :meth:`get_retry_interval` decides alone, as in taskkit 0.2:
    ``retry_on``, ``retry_unless`` and ``retry_policy`` are then not consulted.

    Handlers are pickled into worker processes under the ``spawn`` and ``forkserver`` start
    methods, so keep their state picklable (or rebuild it lazily).
    """

    #: Name of the registered serializer used by the default encode/decode methods.
    serializer: ClassVar[str] = "json"
    #: The policy the default :meth:`get_retry_interval` applies: a policy object, or the
    #: name of a registered one.
    retry_policy: ClassVar[RetryPolicy | str] = ExponentialBackoff()
    #: The default :meth:`get_retry_interval` retries only after these exceptions (a class
    #: or a tuple of classes); any other exception fails the task at once.
    retry_on: ClassVar[ExceptionTypes] = (Exception,)
    #: ... and never after these, even where :attr:`retry_on` matches.
    retry_unless: ClassVar[ExceptionTypes] = ()

    def handle(self, task: Task) -> Any:
        """Run ``task`` and return its result (encoded by :meth:`encode_result`).

        Dispatch on ``task.group`` and ``task.name``; raise :class:`DiscardTask` to discard a
        task, any other exception to fail (and maybe retry) it. The default (also reached
        through ``super().handle(task)``) raises :class:`~taskkit.UnknownTask`: the worker
        then holds the task back for a worker that knows it (a rolling deploy) instead of
        discarding it. ``async def handle`` is run on the worker's event loop.
        """
        raise UnknownTask(f"no handler for {task.group}/{task.name}")

    def get_retry_interval(self, task: Task, exception: Exception) -> float | None:
        """Seconds to wait before retrying ``task`` after ``exception``; None fails the task.

        Raise :class:`DiscardTask` to discard it instead. The default fails the task for an
        exception outside :attr:`retry_on` or inside :attr:`retry_unless`, and otherwise
        asks :attr:`retry_policy`.
        """
        retry_on = exception_types(self.retry_on, "TaskHandler.retry_on")
        retry_unless = exception_types(self.retry_unless, "TaskHandler.retry_unless")
        if not is_retryable(exception, retry_on, retry_unless):
            return None
        return self._retry_policy().next_interval(task, exception)

    def encode_data(self, group: str, task_name: str, data: Any) -> bytes:
        """Encode a task's data for storage."""
        return self._serializer().dumps(data)

    def decode_data(self, task: Task) -> Any:
        """Decode ``task.data`` as :meth:`encode_data` encoded it (a convenience for handle)."""
        return self._serializer().loads(task.data)

    def encode_result(self, task: Task, result: Any) -> bytes:
        """Encode a task's result for storage."""
        return self._serializer().dumps(result)

    def decode_result(self, task: Task, encoded: bytes) -> Any:
        """Decode a result that :meth:`encode_result` encoded."""
        return self._serializer().loads(encoded)

    def _serializer(self) -> Serializer:
        return _serializer_named(self.serializer)

    def _retry_policy(self) -> RetryPolicy:
        policy = self.retry_policy
        if isinstance(policy, str):
            return registries().retry_policies.get(policy)()
        return policy
