"""What the conformance kit cannot see: the key layout, native TTLs, bounds, damaged records,
and blocking waits, on the shared Redis (a random prefix per test)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from _servers import RedisServer, wait_until
from helpers import make_tasks
from redis.crc import key_slot
from redis_factories import RedisFactory
from taskkit import Outcome, TaskState
from taskkit_redis import RedisBackend
from taskkit_redis.backend import CONTROL_EVENTS_KEPT


def test_every_key_of_a_group_shares_one_slot(tmp_path: Path) -> None:
    # A private server: listing every key (SCAN) is for test teardowns on the shared one.
    server = RedisServer(tmp_path / "data").start()
    backend = RedisBackend(server.url, prefix="layout")
    try:
        _check_layout(backend)
    finally:
        backend.close()
        server.stop()


def _check_layout(backend: RedisBackend) -> None:
    def all_keys(backend: RedisBackend) -> set[str]:
        return {k.decode() for k in backend.client.scan_iter(count=1000)}

    made = make_tasks(backend, "mail", 3)
    backend.put(made)
    batch = backend.claim("mail", "w1", 3, 30.0, 3)
    backend.complete(batch.claims[0], b"r")
    backend.retry(batch.claims[1], backend.now() + 60, "again")
    group_keys = {
        k for k in all_keys(backend) if k.startswith("{" + backend.keys.prefix + ":mail}")
    }
    assert {key_slot(k.encode()) for k in group_keys} == {
        key_slot(backend.keys.queue("mail").encode())
    }
    index_keys = {k for k in all_keys(backend) if k.startswith(backend.keys.index_prefix)}
    assert index_keys == {backend.keys.index(t.id) for t in made}
    others = all_keys(backend) - group_keys - index_keys
    assert others == {backend.keys.groups, backend.keys.worker_groups("w1")}, others


def test_finished_records_expire_natively_and_live_ones_do_not(backend: RedisBackend) -> None:
    short, long = make_tasks(backend, "g", 1, ttl=5.0)[0], make_tasks(backend, "g", 1)[0]
    backend.put([short, long])
    client = backend.client
    assert client.pttl(backend.keys.record("g", short.id)) == -1  # queued: no TTL
    assert client.pttl(backend.keys.index(short.id)) == -1
    claim = next(c for c in backend.claim("g", "w", 2, 30.0, 3).claims if c.task.id == short.id)
    backend.complete(claim, b"done")
    for key in (backend.keys.record("g", short.id), backend.keys.index(short.id)):
        assert 4000 < client.pttl(key) <= 5000
    assert client.pttl(backend.keys.record("g", long.id)) == -1  # still running: no TTL


def _bury(backend: RedisBackend, group: str, count: int) -> list[str]:
    """Make ``count`` dead letters: claims whose lease ran out with deliveries exhausted."""
    made = make_tasks(backend, group, count)
    backend.put(made)
    backend.claim(group, "dying", count, 0.05, 1)
    deadline = backend.now() + 0.06
    wait_until(lambda: backend.now() > deadline, 5.0, "Redis' clock did not move")
    batch = backend.claim(group, "next", count, 30.0, 1)
    assert len(batch.dead_lettered) == count and not batch.claims
    return [t.id for t in made]


def test_dead_letters_are_bounded_by_count(shared_redis: str, prefix: str) -> None:
    backend = RedisBackend(shared_redis, prefix=prefix, dead_letter_limit=3)
    try:
        ids = _bury(backend, "g", 2) + _bury(backend, "g", 3)
        kept = backend.list_dead_letters("g", 10)
        assert len(kept) == 3
        assert {o.task.id for o in kept} <= set(ids[2:])
        assert all(backend.get_outcome(i) is None for i in ids[:2])  # dropped, record and all
    finally:
        backend.close()


def test_dead_letters_are_bounded_by_age(shared_redis: str, prefix: str) -> None:
    backend = RedisBackend(shared_redis, prefix=prefix, dead_letter_max_age=1.0)
    try:
        first = _bury(backend, "g", 2)
        assert backend.client.pttl(backend.keys.record("g", first[0])) <= 1000
        died = backend.now()
        wait_until(lambda: backend.now() > died + 1.0, 5.0, "Redis' clock did not move")
        _bury(backend, "g", 1)
        assert [o.task.id for o in backend.list_dead_letters("g")] not in (first,)
        assert len(backend.list_dead_letters("g")) == 1
    finally:
        backend.close()


def test_control_events_are_trimmed(backend: RedisBackend) -> None:
    for _ in range(CONTROL_EVENTS_KEPT + 20):
        backend.publish_control("pause", None)
    assert len(backend.read_control(0)) == CONTROL_EVENTS_KEPT
    assert backend.client.zcard(backend.keys.control) == CONTROL_EVENTS_KEPT


def test_a_damaged_record_fails_with_its_reason_and_claims_go_on(backend: RedisBackend) -> None:
    good = make_tasks(backend, "g", 2)
    backend.put(good)
    damaged = backend.keys.record("g", "bad1")
    backend.client.hset(damaged, mapping={"id": "bad1", "st": "queued", "qm": "0|bad1", "du": "x"})
    backend.client.zadd(backend.keys.queue("g"), {"0|bad1": 0})
    backend.client.set(backend.keys.index("bad1"), "g")
    batch = backend.claim("g", "w", 10, 30.0, 3)
    assert sorted(c.task.id for c in batch.claims) == sorted(t.id for t in good)
    outcome = backend.get_outcome("bad1")
    assert outcome is not None and outcome.state is TaskState.FAILED
    assert "malformed record" in (outcome.error or "")
    assert backend.stats("g").queued == 0


def test_ids_are_unique_across_groups(backend: RedisBackend) -> None:
    task = make_tasks(backend, "a", 1)[0]
    assert backend.put([task]) == [True]
    assert backend.put([task.evolve(group="b")]) == [False]
    outcome = backend.get_outcome(task.id)
    assert outcome is not None and outcome.task.group == "a"


def test_wait_for_work_wakes_on_a_put(backend_factory: RedisFactory) -> None:
    consumer, producer = backend_factory(), backend_factory()
    try:
        subscribed = threading.Event()
        woke = threading.Event()

        def claimer() -> None:
            assert not consumer.claim("g", "w", 1, 30.0, 3).claims
            consumer.wait_for_work("g", 0.01)  # the first wait subscribes this thread
            subscribed.set()
            consumer.wait_for_work("g", 30.0)
            woke.set()

        waiter = threading.Thread(target=claimer)
        waiter.start()
        assert subscribed.wait(10.0)
        producer.put(make_tasks(producer, "g", 1))
        # Whether the put lands before or while the claimer blocks, it must wake.
        assert woke.wait(10.0), "the waiting claimer did not wake on a put"
        waiter.join()
    finally:
        consumer.close()
        producer.close()


def test_every_waiter_of_a_result_wakes_on_completion(shared_redis: str, prefix: str) -> None:
    worker = RedisBackend(shared_redis, prefix=prefix)
    name = f"waiter-{prefix}"
    waiters = [RedisBackend(shared_redis, prefix=prefix, client_name=name) for _ in range(3)]
    observer = worker.client
    try:
        task = make_tasks(worker, "g", 1)[0]
        worker.put([task])
        claim = worker.claim("g", "w", 1, 30.0, 3).claims[0]
        outcomes: list[Outcome | None] = []
        threads = [
            threading.Thread(target=lambda b=b: outcomes.append(b.wait_for_outcome(task.id, 10.0)))
            for b in waiters
        ]
        for t in threads:
            t.start()
        wait_until(
            lambda: (
                sum(
                    c.get("name") == name and c.get("cmd") == "blmove"
                    for c in observer.client_list()
                )
                == 3
            ),
            10.0,
            "the waiters did not block",
        )
        worker.complete(claim, b"42")
        for t in threads:
            t.join(10.0)
        assert [o.result if o else None for o in outcomes] == [b"42"] * 3
    finally:
        for b in [worker, *waiters]:
            b.close()


@pytest.mark.parametrize("timeout", [0.05, 0.3])
def test_wait_for_outcome_never_overruns_its_timeout(backend: RedisBackend, timeout: float) -> None:
    task = make_tasks(backend, "g", 1)[0]
    backend.put([task])
    began = time.monotonic()
    outcome = backend.wait_for_outcome(task.id, timeout)
    took = time.monotonic() - began
    assert outcome is not None and outcome.state is TaskState.QUEUED
    assert timeout <= took < timeout + 0.1


def test_an_idle_claimer_wakes_at_the_next_due_time(backend: RedisBackend) -> None:
    """Sleeping until ``next_due`` (precise client-side timeouts) then claiming gets the task:
    no polling in between, and no Redis timer rounding pushing the wake-up 100 ms late."""
    task = make_tasks(backend, "g", 1)[0].evolve(due=backend.now() + 0.2)
    backend.put([task])
    batch = backend.claim("g", "w", 1, 30.0, 3)
    assert not batch.claims and batch.next_due == pytest.approx(task.due)
    waits = 0
    while not batch.claims:
        assert batch.next_due is not None
        waits += 1
        backend.wait_for_work("g", max(0.001, batch.next_due - backend.now()))
        batch = backend.claim("g", "w", 1, 30.0, 3)
    assert waits <= 3, f"{waits} waits for one due time: polling?"
    print(f"claimed {1000 * (backend.now() - task.due):.1f} ms after its due time")


def test_blocking_waits_fit_inside_a_short_socket_timeout(shared_redis: str, prefix: str) -> None:
    backend = RedisBackend(shared_redis, prefix=prefix, socket_timeout=0.3)
    try:
        task = make_tasks(backend, "g", 1)[0]
        backend.put([task])
        outcome = backend.wait_for_outcome(task.id, 1.0)  # several slices, none times out
        assert outcome is not None and outcome.state is TaskState.QUEUED
    finally:
        backend.close()
