"""``TaskRouter``: what the runtime runs tasks through — a kit's function tasks first, then
its handler.

The runtime (workers, eager runs, the producer's encode/decode) sees one
:class:`~taskkit.TaskHandler`: the router sends each (group, name) that a function task
claims to it and every other one to the user's handler, so function tasks and a 0.2
``TaskHandler`` live in one kit.
"""

from __future__ import annotations

import inspect
from typing import Any

from ._task import Task
from .functions import TaskRegistry
from .handler import TaskHandler

__all__ = ["TaskRouter"]


class TaskRouter(TaskHandler):
    """Routes each TaskHandler method to the function task of (group, name) or ``handler``."""

    def __init__(self, handler: TaskHandler, tasks: TaskRegistry) -> None:
        self.handler = handler
        self.tasks = tasks

    @property
    def routed_handler(self) -> TaskHandler:
        """The user's handler (what error messages name)."""
        return self.handler

    def __reduce__(self) -> tuple[Any, ...]:
        return (TaskRouter, (self.handler, self.tasks))

    def is_async_group(self, group: str) -> bool:
        """Whether ``group`` runs on the worker's event loop: it has an ``async def`` function
        task, or no function task and a handler whose ``is_async_group(group)`` says so (or,
        without that method, whose ``handle`` is ``async def``)."""
        functions = self.tasks.in_group(group)
        if functions:
            return any(task.is_async for task in functions)
        own = getattr(self.handler, "is_async_group", None)
        if callable(own):  # a handler that decides per group itself
            return bool(own(group))
        return inspect.iscoroutinefunction(type(self.handler).handle)

    def is_async_task(self, task: Task) -> bool:
        """Whether ``task`` runs as a coroutine: its function task is ``async def``, or (no
        function task) the handler's ``handle`` is. An async group runs the others on a
        thread."""
        function = self.tasks.find(task.group, task.name)
        if function is not None:
            return function.is_async
        return inspect.iscoroutinefunction(type(self.handler).handle)

    def max_deliveries(self, task: Task) -> int | None:
        """The task's own delivery limit (a function task's ``max_deliveries``), or None for
        the kit's."""
        function = self.tasks.find(task.group, task.name)
        return None if function is None else function.options.max_deliveries

    def handle(self, task: Task) -> Any:
        function = self.tasks.find(task.group, task.name)
        if function is not None:
            return function.run(task)
        return self.handler.handle(task)

    def get_retry_interval(self, task: Task, exception: Exception) -> float | None:
        function = self.tasks.find(task.group, task.name)
        if function is not None:
            return function.retry_interval(task, exception)
        return self.handler.get_retry_interval(task, exception)

    def encode_data(self, group: str, task_name: str, data: Any) -> bytes:
        function = self.tasks.find(group, task_name)
        if function is not None:
            return function.encode_data(data)
        return self.handler.encode_data(group, task_name, data)

    def decode_data(self, task: Task) -> Any:
        function = self.tasks.find(task.group, task.name)
        if function is not None:
            args, kwargs = function.decode_call(task)
            return {"args": args, "kwargs": kwargs}
        return self.handler.decode_data(task)

    def encode_result(self, task: Task, result: Any) -> bytes:
        function = self.tasks.find(task.group, task.name)
        if function is not None:
            return function.serializer().dumps(result)
        return self.handler.encode_result(task, result)

    def decode_result(self, task: Task, encoded: bytes) -> Any:
        function = self.tasks.find(task.group, task.name)
        if function is not None:
            return function.serializer().loads(encoded)
        return self.handler.decode_result(task, encoded)
