"""The Redis round trip that each task of workload B-async-redis awaits, the same code for
every system: one ``INCR`` through a ``redis.asyncio`` client of the worker's own.

Not the system's own connection (arq hands its tasks one, taskkit and taskiq do not), so every
system pays for the same client, pool and command. One client per process and event loop,
made at first use: a connection never crosses a fork or a loop. Imported only by the adapters
of asyncio workers (redis-py is in each of their environments).
"""

from __future__ import annotations

import asyncio
import os

import redis.asyncio as aioredis
from _common import env_url

KEY = "bench:async:roundtrips"

_clients: dict[tuple[int, int], aioredis.Redis] = {}


async def redis_roundtrip() -> None:
    """Await one round trip to the system's Redis database."""
    key = (os.getpid(), id(asyncio.get_running_loop()))
    client = _clients.get(key)
    if client is None:
        client = _clients[key] = aioredis.Redis.from_url(env_url())
    await client.incr(KEY)
