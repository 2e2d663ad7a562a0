"""The whole conformance kit, on the shared Redis and on a private three-node cluster."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from conftest import delete_prefix, new_prefix
from redis_factories import RedisFactory
from taskkit_testing import BackendTests, KitSettings
from taskkit_testing.stateful import StatefulBackendTests


class TestRedisBackend(BackendTests):
    """``backend_factory`` comes from conftest: the shared Redis, a random prefix per test."""


@pytest.mark.cluster
class TestRedisClusterBackend(BackendTests):
    """Every test of the kit again, on the cluster; the bulk workloads at a quarter of their size
    to keep the suite quick (the shared-Redis class runs them in full)."""

    @pytest.fixture
    def kit_settings(self, request: pytest.FixtureRequest) -> KitSettings:
        settings = KitSettings.from_config(request.config)
        return KitSettings(scale=settings.scale * 0.25, timeout_factor=settings.timeout_factor)

    @pytest.fixture
    def backend_factory(self, cluster) -> Iterator[RedisFactory]:  # type: ignore[no-untyped-def]
        prefix = new_prefix()
        yield RedisFactory(cluster.url, prefix)
        delete_prefix(cluster.url, prefix)


class TestRedisBackendStateful(StatefulBackendTests):
    """Random operation sequences against the reference model (real time: 10 sequences)."""
