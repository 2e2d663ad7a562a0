"""Supervised worker fleets under faults (the PR tier of reliability.md's battery).

Sizes are scaled down to fit CI; the `chaos` nox session runs the full sizes.
"""

from __future__ import annotations

import os
import random
import signal
import time

import pytest
from taskkit import DeadLettered, ResultGetTimedOut, TaskState

from .conftest import Env, wait_until
from .ledger import expected_result, read_ledger, work

SCALE = float(os.environ.get("TASKKIT_SCALE", "1"))


def _n(count: int) -> int:
    """Scale a workload size (the chaos session runs the battery with TASKKIT_SCALE=10)."""
    return max(1, int(count * SCALE))


def _enqueue(env: Env, count: int, sleep_ms: tuple[int, int]) -> list:
    kit = env.kit()
    items = [
        {"group": "work", "name": "work", "data": work(f"payload-{i}", sleep_ms)}
        for i in range(count)
    ]
    results = []
    for start in range(0, count, 200):
        results += kit.initiate_tasks(*items[start : start + 200])
    return results


def _check_all_succeeded(env: Env, results: list, timeout: float) -> None:
    for i, result in enumerate(results):
        assert result.get(timeout=timeout) == expected_result(f"payload-{i}")


def test_baseline_every_task_once(env: Env) -> None:
    env.start_fleet(processes=3, threads=4)
    results = _enqueue(env, _n(600), (0, 5))
    _check_all_succeeded(env, results, timeout=60)
    ledger = read_ledger(env.ledger)
    assert ledger.duplicates == 0
    assert len(ledger.ends) == len(results)
    stats = env.kit().backend.stats("work")
    assert (stats.queued, stats.running) == (0, 0)


def test_sigkilled_workers_lose_nothing(env: Env) -> None:
    fleet = env.start_fleet(processes=3, threads=4)
    results = _enqueue(env, _n(500), (20, 100))
    kills = 0
    rng = random.Random(7)
    for _ in range(_n(5)):
        wait_until(lambda: len(fleet.workers()) == 3, 10)
        victim = rng.choice(fleet.workers())
        os.kill(victim, signal.SIGKILL)
        kills += 1
        # The supervisor replaces the victim: wait for a full fleet again, not for a fixed time.
        wait_until(lambda v=victim: v not in fleet.workers() and len(fleet.workers()) == 3, 10)
    _check_all_succeeded(env, results, timeout=60)
    ledger = read_ledger(env.ledger)
    assert set(ledger.ends) == {r.task_id for r in results}, "every task has an end line"
    assert ledger.duplicates <= kills * 4
    assert "released" in fleet.log() or ledger.duplicates == 0


def test_sigterm_drains_gracefully(env: Env) -> None:
    fleet = env.start_fleet(processes=2, threads=4)
    results = _enqueue(env, 200, (50, 150))
    wait_until(lambda: len(read_ledger(env.ledger).ends) >= 20, 30)
    fleet.process.send_signal(signal.SIGTERM)
    assert fleet.process.wait(15) == 0, fleet.log()
    backend = env.kit().backend
    assert backend.stats("work").running == 0, "in-flight tasks finished or were handed back"
    env.start_fleet(processes=2, threads=4)
    _check_all_succeeded(env, results, timeout=60)
    assert read_ledger(env.ledger).duplicates == 0


def test_second_signal_stops_at_once(env: Env) -> None:
    fleet = env.start_fleet(processes=1, threads=2, grace_period=60.0)
    kit = env.kit()
    slow = kit.initiate_task("work", "work", work("slow", (20_000, 20_000)))
    wait_until(lambda: slow.outcome().state is TaskState.RUNNING, 15)
    started = time.monotonic()
    fleet.process.send_signal(signal.SIGTERM)
    wait_until(lambda: "supervisor: shutting down" in fleet.log(), 10)
    fleet.process.send_signal(signal.SIGTERM)
    fleet.process.wait(15)
    assert time.monotonic() - started < 10
    assert fleet.workers() == []


def test_poison_task_becomes_a_dead_letter(env: Env) -> None:
    # One thread per process: a poison death then takes down no other task's delivery (with
    # more threads, a normal task that shares the dying process three times is rightly
    # dead-lettered too, which is not what this test is about).
    fleet = env.start_fleet(processes=2, threads=1)
    kit = env.kit()
    poison = kit.initiate_task("work", "poison", work("poison"))
    results = _enqueue(env, 100, (0, 5))
    with pytest.raises(DeadLettered, match="worker lost"):
        poison.get(timeout=60)
    _check_all_succeeded(env, results, timeout=60)
    assert read_ledger(env.ledger).starts[poison.task_id] <= 3, fleet.log()[-3000:]
    assert [o.task.id for o in kit.dead_letters("work")] == [poison.task_id]
    assert fleet.process.poll() is None, fleet.log()[-3000:]


@pytest.mark.parametrize("start_method", ["spawn", "forkserver"])
def test_start_methods(env: Env, start_method: str) -> None:
    if env.name != "redis":
        pytest.skip("start methods are backend-independent; checked once on Redis")
    env.start_fleet(processes=1, threads=2, start_method=start_method)
    results = _enqueue(env, 20, (0, 0))
    _check_all_succeeded(env, results, timeout=60)


def test_result_get_honours_its_timeout_without_workers(env: Env) -> None:
    kit = env.kit()
    result = kit.initiate_task("nobody", "work", work("x"))
    for _ in range(5):
        started = time.monotonic()
        with pytest.raises(ResultGetTimedOut):
            result.get(timeout=0.5)
        elapsed = time.monotonic() - started
        assert 0.5 <= elapsed <= 1.0, elapsed


@pytest.mark.parametrize("prefetch", [None, 4], ids=["default", "prefetch"])
def test_paused_worker_cannot_overwrite_newer_outcomes(env: Env, prefetch: int | None) -> None:
    """F3: SIGSTOP a worker past its lease, then SIGCONT: its late writes are fenced off.

    With prefetch forced on, the paused worker also holds claimed tasks it had not started:
    on waking it must hand them back, not run them (or they would run twice as well).
    """
    fleet = env.start_fleet(processes=2, threads=4, prefetch=prefetch)
    kit = env.kit()
    results = _enqueue(env, _n(40), (1500, 2500))
    wait_until(lambda: len(read_ledger(env.ledger).starts) >= 8, 30)
    victim = fleet.workers()[0]
    os.kill(victim, signal.SIGSTOP)
    try:
        stopped_tasks = {
            line.split()[1]
            for path in env.ledger.glob(f"ledger-{victim}.log")
            for line in path.read_text().splitlines()
            if line.startswith("start")
        }
        # Its leases (3 s) expire; the other worker re-runs those tasks and finishes them.
        wait_until(
            lambda: all(kit.get_result(t).ready() for t in stopped_tasks),
            60,
        )
    finally:
        os.kill(victim, signal.SIGCONT)
    _check_all_succeeded(env, results, timeout=90)
    wait_until(lambda: "lease lost" in fleet.log(), 30)
    for result in results:  # the stored outcome belongs to the last lease: still correct
        assert result.outcome().state is TaskState.SUCCEEDED
    # The victim's 4 running tasks run again elsewhere. With prefetch, an outcome written
    # after its executor moved on may also be caught in flight by the stop (the design bound
    # is threads + 2 x prefetch); with 2 s tasks and millisecond writes that is rarely more
    # than one. Running its 4 buffered, unstarted tasks after waking would add 4.
    allowed = 4 if prefetch is None else 4 + 2
    assert read_ledger(env.ledger).duplicates <= allowed
