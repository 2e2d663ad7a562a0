"""The asyncio primitives of the Django backend.

The kit's ``AsyncProducerTests`` (test_conformance.py) checks the contract on every
database; these check what this backend adds: ``aput`` joins the caller's transaction under
``async_to_sync``, and on PostgreSQL every waiter of a loop shares one ``LISTEN`` connection
that reconnects without missing a finish.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from conftest import URLS, clean_alias, require
from django.db import connections, transaction
from taskkit import Task, TaskState
from taskkit_django import DjangoBackend
from taskkit_django.backend import PostgresBackend

TIMEOUT = 30.0


def make_task(group: str = "g") -> Task:
    now = time.time()
    return Task(id=uuid.uuid4().hex, group=group, name="echo", data=b"1", due=now, created=now)


async def _eventually(predicate: Callable[[], object], what: str, timeout: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"not reached within {timeout:g}s: {what}")
        await asyncio.sleep(0.02)  # a poll interval: the condition is checked again


def test_aput_joins_the_callers_transaction_under_async_to_sync(backend: DjangoBackend) -> None:
    class Rollback(Exception):
        pass

    rolled_back, kept = make_task(), make_task()
    with pytest.raises(Rollback):
        with transaction.atomic(using=backend.using):
            assert async_to_sync(backend.aput)([rolled_back]) == [True]
            raise Rollback
    assert backend.get_outcome(rolled_back.id) is None
    with transaction.atomic(using=backend.using):
        assert async_to_sync(backend.aput)([kept]) == [True]
    assert backend.get_outcome(kept.id) is not None


@pytest.fixture
def pg() -> Iterator[tuple[PostgresBackend, PostgresBackend]]:
    require("pg")
    clean_alias("pg")
    producer, worker = DjangoBackend("pg", url=URLS["pg"]), DjangoBackend("pg", url=URLS["pg"])
    assert isinstance(producer, PostgresBackend) and isinstance(worker, PostgresBackend)
    yield producer, worker
    producer.close()
    worker.close()


def _listening_pids() -> set[int]:
    """Server processes of this database whose last statement was our LISTEN."""
    with connections["pg"].cursor() as cursor:
        cursor.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
            "AND query = 'LISTEN taskkit'"
        )
        return {row[0] for row in cursor.fetchall()}


@pytest.mark.postgresql
def test_every_waiter_of_a_loop_shares_one_listen_connection(
    pg: tuple[PostgresBackend, PostgresBackend],
) -> None:
    producer, worker = pg
    tasks = [make_task() for _ in range(20)]
    producer.put(tasks)
    claims = worker.claim("g", "w", 20, 60.0, 3).claims
    assert len(claims) == 20
    before = _listening_pids()

    async def scenario() -> None:
        waiters = [
            asyncio.create_task(producer.await_outcome(tasks[i % 20].id, TIMEOUT))
            for i in range(200)
        ]
        await _eventually(
            lambda: producer.async_listener is not None and producer.async_listener.ready,
            "the LISTEN connection is up",
        )
        listener = producer.async_listener
        assert listener is not None and listener.backend_pid is not None
        during = await asyncio.to_thread(_listening_pids)
        assert during - before == {listener.backend_pid}
        await asyncio.to_thread(lambda: [worker.complete(c, b"ok") for c in claims])
        outcomes = await asyncio.wait_for(asyncio.gather(*waiters), TIMEOUT)
        assert {o.state if o else None for o in outcomes} == {TaskState.SUCCEEDED}
        assert listener.connections_opened == 1

    asyncio.run(scenario())


@pytest.mark.postgresql
def test_a_terminated_listen_connection_reconnects_and_misses_nothing(
    pg: tuple[PostgresBackend, PostgresBackend], caplog: pytest.LogCaptureFixture
) -> None:
    producer, worker = pg
    task = make_task()
    producer.put([task])
    claim = worker.claim("g", "w", 1, 60.0, 3).claims[0]

    async def scenario() -> None:
        waiter = asyncio.create_task(producer.await_outcome(task.id, TIMEOUT))
        await _eventually(
            lambda: producer.async_listener is not None and producer.async_listener.ready,
            "the LISTEN connection is up",
        )
        listener = producer.async_listener
        assert listener is not None
        pid = listener.backend_pid

        def terminate_then_finish() -> None:
            with connections["pg"].cursor() as cursor:
                cursor.execute("SELECT pg_terminate_backend(%s)", [pid])
            # Most likely before the listener is back: its NOTIFY is not heard, and the
            # waiter must look again once LISTEN is back.
            worker.complete(claim, b"done")

        await asyncio.to_thread(terminate_then_finish)
        outcome = await asyncio.wait_for(waiter, TIMEOUT / 2)
        assert outcome is not None and outcome.state is TaskState.SUCCEEDED
        await _eventually(lambda: listener.connections_opened == 2, "LISTEN is back")

    with caplog.at_level(logging.INFO, logger="taskkit.django"):
        asyncio.run(scenario())
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and "lost" in warnings[0].getMessage()


@pytest.mark.postgresql
def test_the_loops_end_closes_its_listen_connection(
    pg: tuple[PostgresBackend, PostgresBackend],
) -> None:
    producer, _ = pg
    task = make_task()
    producer.put([task])
    pids: list[Any] = []

    async def wait_once() -> None:
        await producer.await_outcome(task.id, 0.2)
        listener = producer.async_listener
        assert listener is not None
        pids.append(listener.backend_pid)

    asyncio.run(wait_once())
    deadline = time.monotonic() + 10.0
    while pids[0] in _listening_pids():  # closed when asyncio.run ended its loop
        assert time.monotonic() < deadline, "the LISTEN connection outlived its loop"
        time.sleep(0.02)  # a poll interval: the condition is checked again
