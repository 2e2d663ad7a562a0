"""Handlers and factories the tests hand to worker processes (importable by name)."""

from __future__ import annotations

from typing import Any

from taskkit import Backend, DiscardTask, Task, TaskHandler
from taskkit.clock import Clock


class EchoHandler(TaskHandler):
    """``echo`` returns its data; ``boom`` fails; anything else is discarded."""

    def handle(self, task: Task) -> Any:
        if task.name == "echo":
            return self.decode_data(task)
        if task.name == "boom":
            raise RuntimeError("boom")
        raise DiscardTask(task.name)

    def get_retry_interval(self, task: Task, exception: Exception) -> float | None:
        return None


class AliasFactory:
    """A picklable backend factory: a configured alias here, the URL in a fresh process."""

    def __init__(self, alias: str, url: str) -> None:
        self.alias = alias
        self.url = url

    def __call__(self, clock: Clock | None = None) -> Backend:
        from django.conf import settings
        from taskkit_django import DjangoBackend

        if settings.configured:
            from django.db import connections

            if self.alias in connections:
                # The URL lets a spawned worker process rebuild it from scratch.
                return DjangoBackend(self.alias, clock=clock, url=self.url)
        from taskkit_django._standalone import configure

        return DjangoBackend(configure(self.url), clock=clock, url=self.url)


class RealClockFactory(AliasFactory):
    """The same backends, always on the database's clock (no ``clock`` parameter, so the
    conformance kit passes no fake clock)."""

    def __call__(self) -> Backend:  # type: ignore[override]
        return super().__call__()
