"""The asyncio primitives on Redis: one pub/sub connection multiplexes every waiter of a loop,
a dropped connection subscribes again and misses nothing, and the asyncio connections close
with their loop or the backend.

The kit's ``AsyncProducerTests`` (test_conformance.py) checks the contract; these tests look
at the connections themselves, through ``CLIENT LIST`` and the listener's counters.
"""

from __future__ import annotations

import asyncio
import pickle
import threading
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
from _servers import RedisCluster3
from conftest import delete_prefix, new_prefix
from helpers import make_tasks
from taskkit import TaskState
from taskkit_redis import RedisBackend, _aio

TIMEOUT = 30.0


def _named(url: str, name: str) -> list[dict[str, Any]]:
    """The server's clients that carry ``name`` (CLIENT SETNAME), from ``CLIENT LIST``."""
    with redis.Redis.from_url(url) as admin:
        return [c for c in admin.client_list() if c.get("name") == name]


def _subscribers(url: str, name: str) -> list[dict[str, Any]]:
    """Those of them holding sharded subscriptions."""
    return [c for c in _named(url, name) if int(c.get("ssub", 0)) > 0]


async def _eventually(predicate: Callable[[], object], what: str, timeout: float = 10.0) -> None:
    """Wait until ``predicate()`` (run in a thread: it may talk to Redis) is true."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await asyncio.to_thread(predicate):
        if loop.time() > deadline:
            raise AssertionError(f"not reached within {timeout:g}s: {what}")
        await asyncio.sleep(0.02)  # a poll interval: the condition is checked again


@pytest.fixture
def name() -> str:
    return "tk-aio-" + uuid.uuid4().hex[:10]


@pytest.fixture
def named_backend(shared_redis: str, prefix: str, name: str) -> Iterator[RedisBackend]:
    backend = RedisBackend(shared_redis, prefix=prefix, client_name=name)
    yield backend
    backend.close()


@pytest.fixture
def worker(shared_redis: str, prefix: str) -> Iterator[RedisBackend]:
    backend = RedisBackend(shared_redis, prefix=prefix)
    yield backend
    backend.close()


def test_every_waiter_of_a_loop_shares_one_pubsub_connection(
    shared_redis: str, named_backend: RedisBackend, worker: RedisBackend, name: str
) -> None:
    tasks = make_tasks(named_backend, "g", 50)
    named_backend.put(tasks)
    claims = worker.claim("g", "w", 50, 60.0, 3).claims
    assert len(claims) == 50

    async def scenario() -> None:
        waiters = [
            asyncio.create_task(named_backend.await_outcome(tasks[i % 50].id, TIMEOUT))
            for i in range(500)
        ]
        await _eventually(
            lambda: [int(c["ssub"]) for c in _subscribers(shared_redis, name)] == [50],
            "one connection subscribed to the 50 tasks' channels",
        )
        listener = named_backend.async_listener
        assert listener is not None
        assert listener.connections_opened == 1 and listener.subscribed == 50
        await asyncio.to_thread(lambda: [worker.complete(c, b"ok") for c in claims])
        outcomes = await asyncio.gather(*waiters)
        assert {o.state if o else None for o in outcomes} == {TaskState.SUCCEEDED}
        # The last waiter of each task unsubscribed its channel; the connection stays open.
        assert listener.subscribed == 0
        await _eventually(
            lambda: not _subscribers(shared_redis, name) and len(_named(shared_redis, name)) >= 1,
            "every channel unsubscribed, the connection kept",
        )
        assert listener.connections_opened == 1

    asyncio.run(scenario())


def test_a_dropped_pubsub_connection_subscribes_again_and_misses_nothing(
    shared_redis: str, named_backend: RedisBackend, worker: RedisBackend, name: str
) -> None:
    task = make_tasks(named_backend, "g", 1)[0]
    named_backend.put([task])
    claim = worker.claim("g", "w", 1, 60.0, 3).claims[0]

    async def scenario() -> None:
        waiter = asyncio.create_task(named_backend.await_outcome(task.id, TIMEOUT))
        await _eventually(lambda: _subscribers(shared_redis, name), "the waiter subscribed")
        (connection,) = await asyncio.to_thread(_subscribers, shared_redis, name)

        def kill_then_finish() -> None:
            with redis.Redis.from_url(shared_redis) as admin:
                admin.client_kill_filter(_id=connection["id"])
            # Most likely before the listener is back: this notification is lost, and the
            # new subscription's confirmation must make the waiter look again.
            worker.complete(claim, b"done")

        await asyncio.to_thread(kill_then_finish)
        outcome = await asyncio.wait_for(waiter, TIMEOUT / 2)
        assert outcome is not None and outcome.state is TaskState.SUCCEEDED
        listener = named_backend.async_listener
        assert listener is not None and listener.connections_opened == 2

    asyncio.run(scenario())


def test_cancelled_waiters_unsubscribe(
    shared_redis: str, named_backend: RedisBackend, name: str
) -> None:
    tasks = make_tasks(named_backend, "g", 20)
    named_backend.put(tasks)

    async def scenario() -> None:
        waiters = [asyncio.create_task(named_backend.await_outcome(t.id, TIMEOUT)) for t in tasks]
        await _eventually(
            lambda: [int(c["ssub"]) for c in _subscribers(shared_redis, name)] == [20],
            "20 channels subscribed",
        )
        for waiter in waiters:
            waiter.cancel()
        await asyncio.gather(*waiters, return_exceptions=True)
        listener = named_backend.async_listener
        assert listener is not None and listener.subscribed == 0
        await _eventually(lambda: not _subscribers(shared_redis, name), "every channel dropped")

    asyncio.run(scenario())


def test_a_finish_publishes_on_the_tasks_channel(
    named_backend: RedisBackend, worker: RedisBackend
) -> None:
    task = make_tasks(named_backend, "g", 1)[0]
    named_backend.put([task])
    claim = worker.claim("g", "w", 1, 60.0, 3).claims[0]
    pubsub = worker.client.pubsub()
    try:
        pubsub.ssubscribe(named_backend.keys.notify("g", task.id))
        assert pubsub.get_message(timeout=5.0)["type"] == "ssubscribe"
        worker.complete(claim, b"done")
        message = pubsub.get_message(timeout=5.0)
        assert message is not None and message["type"] == "smessage"
    finally:
        pubsub.close()


def test_a_finish_that_does_not_publish_is_seen_at_the_next_recheck(
    monkeypatch: pytest.MonkeyPatch,
    shared_redis: str,
    named_backend: RedisBackend,
    worker: RedisBackend,
    name: str,
) -> None:
    # Workers of a release before this one finish without publishing.
    monkeypatch.setattr(_aio, "RECHECK_INTERVAL", 0.2)
    task = make_tasks(named_backend, "g", 1)[0]
    named_backend.put([task])
    record = named_backend.keys.record("g", task.id)

    async def scenario() -> None:
        waiter = asyncio.create_task(named_backend.await_outcome(task.id, TIMEOUT))
        await _eventually(lambda: _subscribers(shared_redis, name), "the waiter subscribed")
        now = repr(worker.now())
        await asyncio.to_thread(
            worker.client.hset, record, mapping={"st": "succeeded", "r": b"old", "f": now}
        )
        outcome = await asyncio.wait_for(waiter, TIMEOUT / 2)
        assert outcome is not None and outcome.state is TaskState.SUCCEEDED

    asyncio.run(scenario())


def test_the_loops_end_closes_its_asyncio_connections(
    shared_redis: str, named_backend: RedisBackend, name: str
) -> None:
    task = make_tasks(named_backend, "g", 1)[0]  # reads the clock: a blocking connection
    blocking = {c["id"] for c in _named(shared_redis, name)}

    async def use() -> None:
        await named_backend.aput([task])
        await named_backend.await_outcome(task.id, 0.2)  # opens the pub/sub connection
        opened = {c["id"] for c in _named(shared_redis, name)} - blocking
        assert len(opened) == 2, "a command connection and a pub/sub connection"

    asyncio.run(use())
    _wait_for(
        lambda: {c["id"] for c in _named(shared_redis, name)} <= blocking,
        "asyncio.run's end closed the asyncio connections",
    )


def test_aclose_closes_the_running_loops_connections(
    shared_redis: str, named_backend: RedisBackend, name: str
) -> None:
    task = make_tasks(named_backend, "g", 1)[0]

    async def use() -> None:
        await named_backend.aput([task])
        await named_backend.await_outcome(task.id, 0.2)
        await named_backend.aclose()
        await _eventually(lambda: not _named(shared_redis, name), "aclose() closed them")

    asyncio.run(use())


def test_close_from_another_thread_closes_a_running_loops_connections(
    shared_redis: str, named_backend: RedisBackend, name: str
) -> None:
    task = make_tasks(named_backend, "g", 1)[0]
    used, release = threading.Event(), threading.Event()

    async def use() -> None:
        await named_backend.aput([task])
        await named_backend.await_outcome(task.id, 0.2)
        used.set()
        await asyncio.to_thread(release.wait, TIMEOUT)

    thread = threading.Thread(target=asyncio.run, args=(use(),))
    thread.start()
    try:
        assert used.wait(TIMEOUT)
        named_backend.close()  # while the loop still runs, in its own thread
        _wait_for(lambda: not _named(shared_redis, name), "close() closed them")
    finally:
        release.set()
        thread.join(TIMEOUT)


def test_a_backend_used_from_coroutines_still_pickles(
    shared_redis: str, named_backend: RedisBackend
) -> None:
    task = make_tasks(named_backend, "g", 1)[0]
    asyncio.run(named_backend.aput([task]))
    copy = pickle.loads(pickle.dumps(named_backend))
    try:
        outcome = asyncio.run(copy.aget_outcome(task.id))
        assert outcome is not None and outcome.task == task
    finally:
        copy.close()


@pytest.mark.cluster
def test_cluster_waiters_use_one_pubsub_connection_per_shard(cluster: RedisCluster3) -> None:
    prefix = new_prefix()
    producer = RedisBackend(cluster.url, prefix=prefix)
    worker = RedisBackend(cluster.url, prefix=prefix)
    groups = [f"g{i}" for i in range(12)]  # spread over the three shards
    try:
        tasks = [t for g in groups for t in make_tasks(producer, g, 5)]
        assert asyncio.run(producer.aput(tasks)) == [True] * len(tasks)
        claims = [c for g in groups for c in worker.claim(g, "w", 5, 60.0, 3).claims]
        assert len(claims) == len(tasks)

        async def scenario() -> None:
            waiters = [
                asyncio.create_task(producer.await_outcome(t.id, TIMEOUT))
                for t in tasks
                for _ in range(4)
            ]
            loop = asyncio.get_running_loop()
            deadline = loop.time() + TIMEOUT
            listener = producer.async_listener
            while listener is None or listener.subscribed < len(tasks):
                assert loop.time() < deadline, "the waiters never reached the listener"
                await asyncio.sleep(0.02)  # a poll interval: the condition is checked again
                listener = producer.async_listener
            await asyncio.to_thread(lambda: [worker.complete(c, b"ok") for c in claims])
            outcomes = await asyncio.wait_for(asyncio.gather(*waiters), TIMEOUT)
            assert {o.state if o else None for o in outcomes} == {TaskState.SUCCEEDED}
            assert 1 < listener.shards <= 3
            assert listener.connections_opened == listener.shards

        asyncio.run(scenario())
    finally:
        producer.close()
        worker.close()
        delete_prefix(cluster.url, prefix)


def _wait_for(predicate: Callable[[], object], what: str, timeout: float = 10.0) -> None:
    async def wait() -> None:
        await _eventually(predicate, what, timeout)

    asyncio.run(wait())
