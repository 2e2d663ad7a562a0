"""Retry policies: when a failed task runs again, and when it stops trying.

The handler's ``get_retry_interval`` has the first word; the base :class:`TaskHandler`
implementation defers to the handler's ``retry_policy``, a named policy from the registry
(``"exponential"`` by default: capped exponential back-off with jitter, at most 20 retries).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import ClassVar, Protocol, runtime_checkable

from ._task import Task

__all__ = ["ExponentialBackoff", "NoRetry", "RetryPolicy"]


@runtime_checkable
class RetryPolicy(Protocol):
    """Decides the delay before the next attempt, or None to stop retrying."""

    name: ClassVar[str]

    def next_interval(self, task: Task, exception: BaseException) -> float | None:
        """Seconds to wait before retrying ``task`` after ``exception``; None fails it."""
        ...


@dataclass(frozen=True)
class ExponentialBackoff:
    """``base * factor ** retry_count`` seconds, capped at ``cap``, with full jitter below it.

    Stops after ``max_retries`` retries (the task then fails with its last error).
    """

    name: ClassVar[str] = "exponential"

    base: float = 1.0
    factor: float = 2.0
    cap: float = 3600.0
    max_retries: int = 20
    jitter: float = 0.5  # fraction of the delay that is randomised

    def __post_init__(self) -> None:
        if self.base < 0 or self.cap < 0 or self.factor < 1:
            raise ValueError("base and cap must be >= 0 and factor >= 1")
        if self.max_retries < 0:
            raise ValueError("max_retries must be >= 0")
        if not 0 <= self.jitter <= 1:
            raise ValueError("jitter must be between 0 and 1")

    def next_interval(self, task: Task, exception: BaseException) -> float | None:
        if task.retry_count >= self.max_retries:
            return None
        delay = min(self.cap, self.base * self.factor ** min(task.retry_count, 64))
        return delay * (1 - self.jitter) + delay * self.jitter * random.random()


@dataclass(frozen=True)
class NoRetry:
    """Never retry: the first failure is final."""

    name: ClassVar[str] = "none"

    def next_interval(self, task: Task, exception: BaseException) -> float | None:
        return None
