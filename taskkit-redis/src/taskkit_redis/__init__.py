"""taskkit-redis: the Redis backend of taskkit.

::

    from redis import Redis
    from taskkit_redis import make_kit      # or: from taskkit.impl.redis import make_kit

    kit = make_kit(Redis(host="localhost", port=6379), Handler())
    # or: taskkit.make_kit("redis://localhost:6379/0", Handler(), prefix="myapp")
"""

from __future__ import annotations

from ._config import RedisConfig
from ._kit import make_kit
from .backend import RedisBackend

__version__ = "1.0.0a1"

__all__ = ["RedisBackend", "RedisConfig", "__version__", "make_kit"]
