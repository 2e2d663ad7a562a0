"""Fixtures: the shared Redis (isolated by a random key prefix), private servers, a cluster."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from _servers import RedisCluster3
from redis_factories import RedisFactory
from taskkit_redis import RedisBackend

SHARED_URL = "redis://127.0.0.1:6379/0"


def new_prefix() -> str:
    return "tktest-" + uuid.uuid4().hex[:10]


def delete_prefix(url: str, prefix: str) -> None:
    """Test teardown only: delete this test's keys (SCAN by prefix; never FLUSH)."""
    backend = RedisBackend(url, prefix=prefix)
    try:
        backend.delete_all_keys(i_know_this_deletes_everything=True)
    finally:
        backend.close()


@pytest.fixture(scope="session")
def shared_redis() -> str:
    try:
        redis.Redis.from_url(SHARED_URL, socket_timeout=2).ping()
    except redis.exceptions.ConnectionError:
        pytest.skip("the shared Redis on 127.0.0.1:6379 is not running")
    return SHARED_URL


@pytest.fixture
def prefix(shared_redis: str) -> Iterator[str]:
    value = new_prefix()
    yield value
    delete_prefix(shared_redis, value)


@pytest.fixture
def backend_factory(shared_redis: str, prefix: str) -> RedisFactory:
    """A picklable zero-argument factory: every call builds a backend on this test's prefix."""
    return RedisFactory(shared_redis, prefix)


@pytest.fixture
def backend(backend_factory: RedisFactory) -> Iterator[RedisBackend]:
    instance = backend_factory()
    yield instance
    instance.close()


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisCluster3]:
    nodes = RedisCluster3(Path(tmp_path_factory.mktemp("cluster"))).start()
    try:
        yield nodes
    finally:
        nodes.stop()
