"""Direct tests of the Django backend's own guarantees, on every database.

The conformance kit (test_conformance.py) covers the contract; these cover what is
specific to this backend: transactions, the database clock, concurrency between
processes on one database, the PostgreSQL notifications, bounds on kept rows.
"""

from __future__ import annotations

import multiprocessing
import pickle
import threading
import time
from typing import Any

import pytest
import taskkit
from django.db import connections, transaction
from handlers import EchoHandler
from taskkit import CancelResult, Kit, LeaseLost, Task, TaskState
from taskkit_django import DjangoBackend, initiate_on_commit
from taskkit_django.models import TaskRecord


def make_task(i: int | str, group: str = "g", due: float | None = None, **kw: Any) -> Task:
    now = time.time()
    return Task(
        id=f"t{i}",
        group=group,
        name="echo",
        data=b"1",
        due=now if due is None else due,
        created=now,
        **kw,
    )


def wait_until(predicate: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.01)


def test_now_is_the_database_clock(backend: DjangoBackend) -> None:
    assert abs(backend.now() - time.time()) < 5.0
    # A fake clock replaces it, for tests only.
    clock = taskkit.FakeClock(1_000.0)
    assert DjangoBackend(backend.using, clock=clock).now() == 1_000.0


def test_put_joins_the_callers_transaction_both_ways(backend: DjangoBackend) -> None:
    class Rollback(Exception):
        pass

    with pytest.raises(Rollback):
        with transaction.atomic(using=backend.using):
            TaskRecord.objects.using(backend.using)  # the caller's own writes would go here
            assert backend.put([make_task(1)]) == [True]
            raise Rollback
    assert backend.get_outcome("t1") is None
    with transaction.atomic(using=backend.using):
        assert backend.put([make_task(2)]) == [True]
        # Visible inside the transaction, before the commit.
        assert backend.get_outcome("t2") is not None
    assert backend.get_outcome("t2") is not None


def test_initiate_on_commit_follows_the_transaction(backend: DjangoBackend) -> None:
    kit = Kit(backend, EchoHandler())

    class Rollback(Exception):
        pass

    with pytest.raises(Rollback):
        with transaction.atomic(using=backend.using):
            lost = initiate_on_commit(kit, "g", "echo", 1, using=backend.using)
            raise Rollback
    with transaction.atomic(using=backend.using):
        kept = initiate_on_commit(kit, "g", "echo", 2, using=backend.using)
        assert backend.get_outcome(kept.id) is None  # not before the commit
    assert backend.get_outcome(kept.id) is not None
    assert backend.get_outcome(lost.id) is None


def test_put_reports_only_new_ids_and_duplicates_in_a_batch(backend: DjangoBackend) -> None:
    assert backend.put([make_task(1), make_task(1), make_task(2)]) == [True, False, True]
    assert backend.put([make_task(2), make_task(3)]) == [False, True]


def test_expired_record_frees_its_id(backend: DjangoBackend) -> None:
    clock = taskkit.FakeClock(time.time())
    b = DjangoBackend(backend.using, clock=clock)
    b.put([make_task(1, due=clock.time(), ttl=10.0)])
    claim = b.claim("g", "w", 1, 30, 3).claims[0]
    b.complete(claim, b"r")
    assert b.put([make_task(1, due=clock.time())]) == [False]
    clock.advance(11)
    assert b.get_outcome("t1") is None
    assert b.put([make_task(1, due=clock.time())]) == [True]
    assert b.get_outcome("t1").state is TaskState.QUEUED  # type: ignore[union-attr]


def test_long_names_fit(backend: DjangoBackend) -> None:
    group, name = "g" * 128, "n" * 128
    task = Task(
        id="x" * 200, group=group, name=name, data=b"", due=time.time(), created=time.time()
    )
    assert backend.put([task]) == [True]
    claim = backend.claim(group, "w", 1, 30, 3).claims[0]
    assert (claim.task.group, claim.task.name) == (group, name)


def test_tokens_are_unique_per_task(backend: DjangoBackend) -> None:
    backend.put([make_task(i) for i in range(5)])
    claims = backend.claim("g", "w", 5, 30, 3).claims
    assert len({c.token for c in claims}) == 5


def test_finished_write_with_stale_token_is_rejected(backend: DjangoBackend) -> None:
    clock = taskkit.FakeClock(time.time())
    b = DjangoBackend(backend.using, clock=clock)
    b.put([make_task(1, due=clock.time())])
    first = b.claim("g", "w1", 1, 5, 3).claims[0]
    clock.advance(6)
    second = b.claim("g", "w2", 1, 5, 3).claims[0]
    with pytest.raises(LeaseLost):
        b.complete(first, b"late")
    b.complete(second, b"ok")
    assert b.get_outcome("t1").result == b"ok"  # type: ignore[union-attr]


def test_dead_letters_are_bounded_by_count(backend: DjangoBackend) -> None:
    clock = taskkit.FakeClock(time.time())
    b = DjangoBackend(backend.using, clock=clock, dead_letter_limit=3)
    b.put([make_task(i, due=clock.time()) for i in range(5)])
    b.claim("g", "w", 5, 1, 1)
    clock.advance(2)
    batch = b.claim("g", "w", 5, 1, 1)
    assert len(batch.dead_lettered) == 5
    assert all(o.error == "worker lost" for o in batch.dead_lettered)
    assert len(b.list_dead_letters()) == 3


def test_put_scheduled_is_a_compare_and_set(backend: DjangoBackend) -> None:
    assert backend.get_schedule_mark("s", "k") is None
    assert backend.put_scheduled(make_task("a"), "s", "k", 100.0)
    assert not backend.put_scheduled(make_task("b"), "s", "k", 100.0)  # same point
    assert not backend.put_scheduled(make_task("c"), "s", "k", 50.0)  # a late replica
    assert not backend.put_scheduled(make_task("a"), "s", "k", 200.0)  # the id exists
    assert backend.get_schedule_mark("s", "k") == 100.0  # ... and the mark did not move
    assert backend.get_outcome("c") is None
    # Scheduler names and entry keys are free text of any length.
    long_key = "k:{é}" * 200
    assert backend.put_scheduled(make_task("d"), "s", long_key, 5.0)
    assert backend.get_schedule_mark("s", long_key) == 5.0
    assert backend.get_schedule_mark("s", long_key[:-1]) is None


def test_put_scheduled_from_racing_threads_fires_once(backend: DjangoBackend) -> None:
    results: list[bool] = []
    barrier = threading.Barrier(4)

    def fire(n: int) -> None:
        b = backend.clone()
        barrier.wait()
        try:
            results.append(b.put_scheduled(make_task(f"race{n}"), "s", "race", 10.0))
        finally:
            connections[b.using].close()

    threads = [threading.Thread(target=fire, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [False, False, False, True]


def test_cancel(backend: DjangoBackend) -> None:
    backend.put([make_task(1), make_task(2)])
    claim = backend.claim("g", "w", 1, 30, 3).claims[0]
    other = "t2" if claim.task.id == "t1" else "t1"
    assert backend.cancel(other) is CancelResult.CANCELLED
    assert backend.cancel(claim.task.id) is CancelResult.REQUESTED
    assert backend.cancel("nope") is CancelResult.NOT_FOUND


def test_purge_in_batches(backend: DjangoBackend) -> None:
    backend.put([make_task(i) for i in range(7)])
    for claim in backend.claim("g", "w", 7, 30, 3).claims:
        backend.complete(claim, b"")
    later = backend.now() + 1
    assert backend.count_purgeable(later) == 7
    assert list(backend.purge_batches(later, batch_size=3)) == [3, 3, 1]
    assert backend.count_purgeable(later) == 0


def test_pickles_by_configuration(backend: DjangoBackend) -> None:
    data = pickle.dumps(backend)
    assert b"sqlite3" not in data and len(data) < 1000
    copy = pickle.loads(data)
    assert copy.using == backend.using and copy is not backend


def _claim_all(alias: str, out: Any) -> None:
    backend = DjangoBackend(alias)
    got: list[str] = []
    misses = 0
    while misses < 30:
        batch = backend.claim("g", f"w-{multiprocessing.current_process().pid}", 3, 60, 3)
        if not batch.claims:
            misses += 1
            time.sleep(0.005)
            continue
        misses = 0
        for claim in batch.claims:
            got.append(claim.task.id)
            backend.complete(claim, b"")
    out.put(got)


def test_processes_never_double_claim(backend: DjangoBackend) -> None:
    """Forked processes on one database: every task claimed exactly once, no lock error."""
    n = 150
    backend.put([make_task(i) for i in range(n)])
    ctx = multiprocessing.get_context("fork")
    out = ctx.Queue()
    procs = [ctx.Process(target=_claim_all, args=(backend.using, out)) for _ in range(3)]
    for p in procs:
        p.start()
    claimed = [tid for _ in procs for tid in out.get(timeout=120)]
    for p in procs:
        p.join(30)
        assert p.exitcode == 0
    assert sorted(claimed) == sorted(f"t{i}" for i in range(n))


def test_wait_for_work_wakes_on_put(backend: DjangoBackend) -> None:
    """PostgreSQL: by NOTIFY; SQLite: by data_version; MariaDB: a short back-off."""
    backend.claim("g", "w", 1, 30, 3)  # records what this thread has seen
    producer = backend.clone()

    def put_later() -> None:
        time.sleep(0.2)
        producer.put([make_task(1)])
        connections[producer.using].close()

    threading.Thread(target=put_later).start()
    started = time.monotonic()
    while not backend.claim("g", "w", 1, 30, 3).claims:
        backend.wait_for_work("g", 5.0)
        assert time.monotonic() - started < 4.0
    assert time.monotonic() - started < 2.0


def test_wait_for_outcome_returns_when_finished(backend: DjangoBackend) -> None:
    backend.put([make_task(1)])
    claim = backend.claim("g", "w", 1, 30, 3).claims[0]
    worker = backend.clone()

    def finish_later() -> None:
        time.sleep(0.2)
        worker.complete(claim, b"done")
        connections[worker.using].close()

    threading.Thread(target=finish_later).start()
    started = time.monotonic()
    outcome = backend.wait_for_outcome("t1", 5.0)
    assert outcome is not None and outcome.state is TaskState.SUCCEEDED
    assert time.monotonic() - started < 2.0


def test_a_broken_connection_is_replaced(backend: DjangoBackend) -> None:
    """The server dropping our connection (restart, idle kill) costs nothing but a reconnect."""
    if backend.vendor == "sqlite":
        pytest.skip("no server connection to lose")
    backend.put([make_task(1)])
    conn = connections[backend.using]
    conn.ensure_connection()
    with conn.cursor() as cursor:
        if backend.vendor == "postgresql":
            cursor.execute("SELECT pg_backend_pid()")
            pid = cursor.fetchone()[0]
        else:
            cursor.execute("SELECT CONNECTION_ID()")
            pid = cursor.fetchone()[0]
    with _other_cursor(backend.using) as c:
        if backend.vendor == "postgresql":
            c.execute("SELECT pg_terminate_backend(%s)", [pid])
        else:
            c.execute(f"KILL {int(pid)}")
    assert backend.get_outcome("t1") is not None


class _other_cursor:
    """A cursor on a separate connection to the same database."""

    def __init__(self, alias: str) -> None:
        self.wrapper = connections.create_connection(alias)

    def __enter__(self) -> Any:
        self.cursor = self.wrapper.cursor()
        return self.cursor

    def __exit__(self, *exc: Any) -> None:
        self.cursor.close()
        self.wrapper.close()
