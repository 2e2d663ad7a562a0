"""The ``taskkit`` entry point of taskkit-redis: registers the ``redis`` backend."""

from __future__ import annotations

from typing import Any

from taskkit.plugins import BackendRegistry, hookimpl

__all__ = ["taskkit_register_backends"]


def _factory(url: str, **options: Any) -> Any:
    from .backend import RedisBackend  # noqa: PLC0415 - keep plugin loading cheap

    return RedisBackend(url, **options)


@hookimpl
def taskkit_register_backends(registry: BackendRegistry) -> None:
    """Serve ``redis://``, ``rediss://`` and ``unix://`` URLs."""
    registry.add(
        "redis", _factory, schemes=("redis", "rediss", "unix"), distribution="taskkit-redis"
    )
