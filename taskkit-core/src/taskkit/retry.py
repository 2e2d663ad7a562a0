"""Retry policies: when a failed task runs again, and when it stops trying.

The handler's ``get_retry_interval`` has the first word; the base :class:`TaskHandler`
implementation applies the handler's ``retry_on``/``retry_unless`` filter, then defers to its
``retry_policy``, a policy object or a named policy from the registry (``"exponential"`` by
default: 5 retries after about 5, 10, 20, 40 and 80 s, with jitter; a task gives up within
about 2.5 minutes).

Which exceptions are retried is a filter of its own (:func:`is_retryable`), shared by the
handler's class attributes and :class:`ExponentialBackoff`'s fields, so every way of setting a
policy spells it the same way: ``retry_on=(ConnectionError,)`` retries only those,
``retry_unless=(KeyError,)`` everything but those.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import ClassVar, Protocol, runtime_checkable

from ._task import Task

__all__ = ["ExceptionTypes", "ExponentialBackoff", "NoRetry", "RetryPolicy", "is_retryable"]

#: One exception class or a tuple of them, as ``isinstance`` takes them.
ExceptionTypes = type[BaseException] | tuple[type[BaseException], ...]


def exception_types(value: object, what: str) -> tuple[type[BaseException], ...]:
    """``value`` as a tuple of exception classes; ``TypeError`` naming ``what`` otherwise."""
    items = value if isinstance(value, tuple) else (value,)
    for item in items:
        if not (isinstance(item, type) and issubclass(item, BaseException)):
            raise TypeError(f"{what} must be an exception class or a tuple of them, not {value!r}")
    return items


def is_retryable(
    exception: BaseException,
    retry_on: ExceptionTypes = (Exception,),
    retry_unless: ExceptionTypes = (),
) -> bool:
    """Whether a policy may retry after ``exception``.

    True if it is an instance of one of ``retry_on`` and of none of ``retry_unless``
    (``retry_unless`` wins where both match).
    """
    return isinstance(exception, retry_on) and not isinstance(exception, retry_unless)


@runtime_checkable
class RetryPolicy(Protocol):
    """Decides the delay before the next attempt, or None to stop retrying."""

    name: ClassVar[str]

    def next_interval(self, task: Task, exception: BaseException) -> float | None:
        """Seconds to wait before retrying ``task`` after ``exception``; None fails it."""
        ...


@dataclass(frozen=True)
class ExponentialBackoff:
    """``base * factor ** retry_count`` seconds, capped at ``cap``, the last ``jitter``
    fraction of it random.

    Stops after ``max_retries`` retries (the task then fails with its last error), and never
    retries an exception outside ``retry_on`` or inside ``retry_unless``
    (see :func:`is_retryable`)::

        ExponentialBackoff(retry_on=(ConnectionError, TimeoutError))

    The defaults (5 s, doubling, at most 5 retries: about 5, 10, 20, 40 and 80 s, each
    shortened by up to half at random) give a transient failure a few minutes to clear and
    let a persistent one (a bug, bad data) fail within about 2.5 minutes, where it is seen,
    instead of being retried for hours. Until 0.3 the default was 20 retries with a one-hour
    cap; pass ``max_retries=20, base=1, cap=3600`` to keep that.
    """

    name: ClassVar[str] = "exponential"

    base: float = 5.0
    factor: float = 2.0
    cap: float = 300.0
    max_retries: int = 5
    jitter: float = 0.5  # fraction of the delay that is randomised
    #: Retry only after these exceptions (a class or a tuple of classes).
    retry_on: ExceptionTypes = (Exception,)
    #: Never retry after these, even when ``retry_on`` matches.
    retry_unless: ExceptionTypes = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "retry_on", exception_types(self.retry_on, "retry_on"))
        object.__setattr__(self, "retry_unless", exception_types(self.retry_unless, "retry_unless"))
        if self.base < 0 or self.cap < 0 or self.factor < 1:
            raise ValueError("base and cap must be >= 0 and factor >= 1")
        if self.max_retries < 0:
            raise ValueError("max_retries must be >= 0")
        if not 0 <= self.jitter <= 1:
            raise ValueError("jitter must be between 0 and 1")

    def next_interval(self, task: Task, exception: BaseException) -> float | None:
        """The delay before the next attempt, or None past ``max_retries`` or for an
        exception the filter does not retry."""
        if task.retry_count >= self.max_retries:
            return None
        if not is_retryable(exception, self.retry_on, self.retry_unless):
            return None
        delay = min(self.cap, self.base * self.factor ** min(task.retry_count, 64))
        return delay * (1 - self.jitter) + delay * self.jitter * random.random()


@dataclass(frozen=True)
class NoRetry:
    """Never retry: the first failure is final."""

    name: ClassVar[str] = "none"

    def next_interval(self, task: Task, exception: BaseException) -> float | None:
        return None
