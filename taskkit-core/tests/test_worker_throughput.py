"""Prefetch and batched outcome writes: the worker's throughput paths keep every guarantee."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import pytest
from taskkit import (
    Cancelled,
    CancelResult,
    ConfigurationError,
    Kit,
    MemoryBackend,
    OutcomeWrite,
    TaskState,
)

from .conftest import wait_until
from .handlers import RecordingHandler


@contextmanager
def worker(kit: Kit, threads: int) -> Iterator[None]:
    [handle] = kit.start_processes(1, {"g": threads})
    try:
        yield
    finally:
        handle.kill()
        handle.join(10)
        assert not handle.is_alive()


def claimed(backend: MemoryBackend) -> int:
    return backend.stats("g").running


def test_prefetch_claims_ahead_of_busy_threads(backend: MemoryBackend) -> None:
    handler = RecordingHandler()
    kit = Kit(backend, handler, prefetch=2)
    results = [kit.initiate_task("g", "wait_release", i) for i in range(5)]
    with worker(kit, threads=1):
        # One task in the handler, two more claimed and waiting for the thread.
        wait_until(lambda: claimed(backend) == 3 and len(handler.runs) == 1)
        handler.release.set()
        assert [r.get(timeout=5) for r in results] == ["released"] * 5
    assert sorted(tid for tid, _ in handler.runs) == sorted(r.task_id for r in results), (
        "every task runs exactly once"
    )


def test_without_prefetch_a_group_claims_only_what_it_runs(backend: MemoryBackend) -> None:
    handler = RecordingHandler()
    kit = Kit(backend, handler, prefetch=0)
    results = [kit.initiate_task("g", "wait_release", i) for i in range(3)]
    with worker(kit, threads=1):
        wait_until(lambda: len(handler.runs) == 1)
        assert claimed(backend) == 1
        handler.release.set()
        assert [r.get(timeout=5) for r in results] == ["released"] * 3


def test_a_task_cancelled_while_prefetched_never_starts(
    backend: MemoryBackend, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="taskkit.worker")
    handler = RecordingHandler()
    kit = Kit(backend, handler, prefetch=1, lease_seconds=3.0, heartbeat_interval=0.1)
    first = kit.initiate_task("g", "wait_release", 1)
    second = kit.initiate_task("g", "double", 2)
    with worker(kit, threads=1):
        wait_until(lambda: claimed(backend) == 2)  # the second waits in the buffer
        assert second.cancel() is CancelResult.REQUESTED
        # The keeper's next renewal tells the worker; then the thread frees up.
        wait_until(lambda: f"task {second.task_id}: cancel requested" in caplog.text)
        handler.release.set()
        assert first.get(timeout=5) == "released"
        with pytest.raises(Cancelled):
            second.get(timeout=5)
    assert [tid for tid, _ in handler.runs] == [first.task_id], "a cancelled task never ran"


def test_prefetch_must_be_a_count() -> None:
    with pytest.raises(ConfigurationError, match="prefetch"):
        Kit(MemoryBackend(), RecordingHandler(), prefetch=-1)


class FlakyWrites(MemoryBackend):
    """A backend whose first ``failures`` batched writes fail as if the store were down."""

    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures = failures
        self.batches: list[int] = []

    def record_outcomes(self, writes: Sequence[OutcomeWrite]) -> list[bool]:
        self.batches.append(len(writes))
        if self.failures:
            self.failures -= 1
            raise ConnectionError("store unavailable")
        return super().record_outcomes(writes)


def test_outcome_writes_are_retried_until_the_backend_answers() -> None:
    backend = FlakyWrites(failures=2)
    kit = Kit(backend, RecordingHandler())
    with worker(kit, threads=2):
        assert kit.initiate_task("g", "double", 21).get(timeout=10) == 42
    assert backend.batches[:3] == [1, 1, 1], "the same outcome was written until it landed"


def test_an_unwritable_outcome_leaves_the_task_to_its_lease() -> None:
    # lease 0.4 s: the worker gives up after half of it; the task is not lost but runs again.
    backend = FlakyWrites(failures=1000)
    handler = RecordingHandler()
    kit = Kit(backend, handler, lease_seconds=0.4, max_deliveries=10)
    with worker(kit, threads=1):
        result = kit.initiate_task("g", "double", 1)
        wait_until(lambda: len(handler.runs) >= 2, timeout=10)
        outcome = result.outcome()
        assert outcome is not None and outcome.state in (TaskState.RUNNING, TaskState.QUEUED)
