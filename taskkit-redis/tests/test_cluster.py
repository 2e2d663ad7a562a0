"""Redis Cluster specifics (the whole kit also runs on the cluster: test_conformance.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from _servers import RedisCluster3
from conftest import delete_prefix, new_prefix
from helpers import drain, make_tasks
from readme_app import Handler
from redis.cluster import ClusterNode, RedisCluster
from taskkit_redis import RedisBackend, make_kit

pytestmark = pytest.mark.cluster


@pytest.fixture
def cluster_backend(cluster: RedisCluster3) -> Iterator[RedisBackend]:
    prefix = new_prefix()
    backend = RedisBackend(cluster.url, prefix=prefix)
    yield backend
    backend.close()
    delete_prefix(cluster.url, prefix)


def test_make_kit_from_a_cluster_client(cluster: RedisCluster3) -> None:
    client = RedisCluster(startup_nodes=[ClusterNode("127.0.0.1", cluster.servers[1].port)])
    prefix = new_prefix()
    try:
        kit = make_kit(client, Handler(), prefix=prefix)
        assert kit.backend.config.cluster
        result = kit.initiate_task("cg", "bar", {"x": 1})
        assert kit.backend.get_outcome(result.id) is not None
        kit.backend.close()
    finally:
        client.close()
        delete_prefix(cluster.url, prefix)


def test_groups_spread_over_the_shards(cluster_backend: RedisBackend) -> None:
    groups = [f"g{i}" for i in range(12)]
    for group in groups:
        cluster_backend.put(make_tasks(cluster_backend, group, 2))
    nodes = {
        cluster_backend.client.get_node_from_key(cluster_backend.keys.queue(g)).name for g in groups
    }
    assert len(nodes) > 1
    for group in groups:
        assert len(drain(cluster_backend, group)) == 2


def test_the_id_index_follows_the_record(cluster_backend: RedisBackend) -> None:
    client, keys = cluster_backend.client, cluster_backend.keys
    task = make_tasks(cluster_backend, "g", 1, ttl=30.0)[0]
    cluster_backend.put([task])
    assert client.get(keys.index(task.id)) == b"g" and client.pttl(keys.index(task.id)) == -1
    drain(cluster_backend, "g")
    assert 0 < client.pttl(keys.index(task.id)) <= 30_000
    # A scheduler replica refused by the mark leaves no index entry behind.
    late = make_tasks(cluster_backend, "g", 1)[0]
    assert cluster_backend.put_scheduled(late.evolve(id="s-2"), "s", "k", 2.0)
    assert not cluster_backend.put_scheduled(late.evolve(id="s-1"), "s", "k", 1.0)
    assert client.get(keys.index("s-1")) is None
    assert client.get(keys.index("s-2")) == b"g"
    assert cluster_backend.get_schedule_mark("s", "k") == 2.0
