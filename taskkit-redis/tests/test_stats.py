"""What the Redis figures store, beyond the kit's FleetStatsTests: the counter buckets' width
and lifetime, the registry's native expiry, and a malformed record's failure counted."""

from __future__ import annotations

import re

from helpers import make_tasks
from taskkit.backend import FINISHED_BUCKET, MAX_FINISHED_WINDOW
from taskkit_redis import RedisBackend
from taskkit_redis._scripts import source


def test_the_prelude_buckets_as_the_contract_says() -> None:
    prelude = source("finish")
    match = re.search(r"local FINISHED_BUCKET, FINISHED_KEPT_MS = (\d+), (\d+)", prelude)
    assert match, "the prelude names its bucket width and lifetime"
    width, kept_ms = int(match[1]), int(match[2])
    assert width == FINISHED_BUCKET
    # A bucket must outlive the longest window that still reads it (plus its own width).
    assert kept_ms / 1000 >= MAX_FINISHED_WINDOW + 2 * FINISHED_BUCKET


def test_a_finish_counts_into_an_expiring_bucket_in_its_own_script(backend: RedisBackend) -> None:
    [task] = make_tasks(backend, "g", 1)
    backend.put([task])
    [claim] = backend.claim("g", "w", 1, 30.0, 3).claims
    backend.complete(claim, b"ok")
    [key] = backend.client.keys(backend.keys.base("g") + ":fc:*")
    assert backend.client.hgetall(key) == {b"succeeded": b"1"}
    assert 0 < backend.client.pttl(key) <= 3720000


def test_a_malformed_record_failed_by_a_claim_is_counted(backend: RedisBackend) -> None:
    damaged = backend.keys.record("g", "bad1")
    backend.client.hset(damaged, mapping={"id": "bad1", "st": "queued", "qm": "0|bad1", "du": "x"})
    backend.client.zadd(backend.keys.queue("g"), {"0|bad1": 0})
    backend.client.set(backend.keys.index("bad1"), "g")
    backend.claim("g", "w", 10, 30.0, 3)
    assert backend.finished_counts("g", 60).failed == 1


def test_a_worker_entry_expires_natively(backend: RedisBackend) -> None:
    backend.register_worker("w1", "host", 1, {"g": 1}, 30.0)
    info = backend.keys.worker_info("w1")
    assert 0 < backend.client.pttl(info) <= 30000
    assert backend.client.zscore(backend.keys.workers, "w1") is not None
    backend.deregister_worker("w1")
    assert not backend.client.exists(info)
    assert backend.client.zscore(backend.keys.workers, "w1") is None
