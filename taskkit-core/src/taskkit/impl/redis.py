"""``from taskkit.impl.redis import make_kit``: the taskkit 0.2 path, served by taskkit-redis."""

from __future__ import annotations

from . import missing_distribution

try:
    from taskkit_redis import RedisBackend, make_kit
except ImportError as exc:
    _hint = missing_distribution(exc, __name__, "taskkit-redis", ("taskkit_redis", "redis"))
    if _hint is None:
        raise
    raise _hint from exc

__all__ = ["RedisBackend", "make_kit"]
