"""Connection trouble from redis-py, surfaced as taskkit's :class:`~taskkit.BackendUnavailable`.

One home for the errors that mean "Redis is unreachable" and for the decorators that translate
them, used by the blocking backend, its fleet figures and its asyncio twins alike (so none of
them needs to import another to share it).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Coroutine
from typing import Any, Concatenate, ParamSpec, Protocol, TypeVar

import redis.exceptions
from taskkit import BackendUnavailable

__all__ = ["UNAVAILABLE", "text", "translate_errors", "translate_errors_async"]

#: What redis-py (blocking and asyncio) raises when the server cannot be reached or answer.
UNAVAILABLE = (
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    redis.exceptions.ClusterDownError,
    redis.exceptions.TryAgainError,
)


class _Configured(Protocol):
    @property
    def config(self) -> Any: ...


S = TypeVar("S", bound=_Configured)
P = ParamSpec("P")
T = TypeVar("T")


def translate_errors(method: Callable[Concatenate[S, P], T]) -> Callable[Concatenate[S, P], T]:
    """Connection trouble surfaces as :class:`BackendUnavailable` (a ``ConnectionError``)."""

    @functools.wraps(method)
    def wrapper(self: S, *args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return method(self, *args, **kwargs)
        except UNAVAILABLE as exc:
            raise BackendUnavailable(f"Redis ({self.config.describe()}): {exc}") from exc

    return wrapper  # type: ignore[return-value]


def translate_errors_async(
    method: Callable[Concatenate[S, P], Coroutine[Any, Any, T]],
) -> Callable[Concatenate[S, P], Coroutine[Any, Any, T]]:
    """:func:`translate_errors` for coroutine methods."""

    @functools.wraps(method)
    async def wrapper(self: S, *args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return await method(self, *args, **kwargs)
        except UNAVAILABLE as exc:
            raise BackendUnavailable(f"Redis ({self.config.describe()}): {exc}") from exc

    return wrapper  # type: ignore[return-value]


def text(value: bytes | str) -> str:
    """A reply as text (replies are bytes unless the client decodes them)."""
    return value.decode() if isinstance(value, bytes) else value
