"""``from taskkit.impl.redis import make_kit``: the taskkit 0.2 path, served by taskkit-redis."""

from __future__ import annotations

try:
    from taskkit_redis import RedisBackend, make_kit
except ImportError as exc:  # pragma: no cover - exercised in a venv without taskkit-redis
    if exc.name not in ("taskkit_redis", "redis"):
        raise
    raise ImportError(
        "taskkit.impl.redis needs the taskkit-redis distribution: pip install taskkit-redis",
        name=exc.name,
    ) from exc

__all__ = ["RedisBackend", "make_kit"]
