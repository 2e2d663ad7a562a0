"""``make_kit``: the taskkit 0.2 entry point, ``make_kit(Redis(...), Handler())``."""

from __future__ import annotations

from typing import Any

import taskkit
from taskkit import Kit, TaskHandler

from ._config import BACKEND_OPTIONS, CONNECTION_OPTIONS
from .backend import RedisBackend

__all__ = ["make_kit"]


def make_kit(redis_client: Any, handler: TaskHandler, **options: Any) -> Kit:
    """Build a :class:`taskkit.Kit` on Redis.

    :param redis_client: a ``redis.Redis`` or ``redis.cluster.RedisCluster`` client (its
        connection settings are copied: the kit opens its own connections, in every worker
        process), a Redis URL, or a :class:`RedisBackend`.
    :param handler: the task handler.
    :param options: backend options (``prefix``, ``cluster``, ``socket_timeout``,
        ``dead_letter_limit``, ...; see :class:`RedisBackend`) and kit options
        (:class:`taskkit.KitConfig` fields, ``plugins``).
    """
    backend_options = {
        k: options.pop(k) for k in list(options) if k in BACKEND_OPTIONS | CONNECTION_OPTIONS
    }
    if isinstance(redis_client, RedisBackend):
        backend = redis_client
        if backend_options:
            raise taskkit.ConfigurationError(
                f"backend option(s) {', '.join(sorted(backend_options))} need a client or URL"
            )
    elif isinstance(redis_client, str):
        backend = RedisBackend(redis_client, **backend_options)
    else:
        backend = RedisBackend.from_client(redis_client, **backend_options)
    return taskkit.make_kit(backend, handler, **options)
