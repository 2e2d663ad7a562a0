"""Picklable backend factories for the tests and the conformance kit (spawned children
import this module by name to rebuild them)."""

from __future__ import annotations

from taskkit_redis import RedisBackend


class RedisFactory:
    """A zero-argument callable building a backend on one URL and key prefix.

    A class rather than ``functools.partial``: the kit offers a fake clock to factories that
    take keyword arguments, and the Redis backend keeps time with Redis ``TIME`` only.
    """

    def __init__(self, url: str, prefix: str) -> None:
        self.url = url
        self.prefix = prefix

    def __call__(self) -> RedisBackend:
        return RedisBackend(self.url, prefix=self.prefix)

    def __repr__(self) -> str:
        return f"RedisFactory({self.url!r}, {self.prefix!r})"
