"""The supervisor: restart back-off, lease release of dead workers, recycling, start-up checks.

The back-off runs on the supervisor's own clock (``Supervisor(monotonic=...)``), here a
:class:`~taskkit.FakeClock` moved by hand, and a dead worker is an object shaped like an
exited ``multiprocessing.Process``: no test waits out a back-off or forks a process (the
integration suite supervises real processes).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from typing import Any

import pytest
from taskkit import BackendUnavailable, ConfigurationError, FakeClock, Kit, MemoryBackend
from taskkit._supervisor import (
    Supervisor,
    ThreadWorkerHandle,
    _context,
    _Slot,
    new_worker_id,
    start_workers,
)
from taskkit._worker import EXIT_OK, WorkerSpec

from .handlers import RecordingHandler

SPEC = WorkerSpec(num_processes=1, threads={"g": 1}, schedule_entries={}, tzinfo=None)


class ExitedProcess:
    """What the supervisor reads off a worker process that has exited."""

    def __init__(self, worker_id: str, exitcode: int) -> None:
        self.worker_id = worker_id
        self.exitcode = exitcode

    def is_alive(self) -> bool:
        return False


class LiveProcess:
    """What the supervisor reads off a running worker process, and the stop it may send."""

    def __init__(self, worker_id: str) -> None:
        self.worker_id = worker_id
        self.exitcode: int | None = None
        self.terminated = False

    def is_alive(self) -> bool:
        return True

    def terminate(self) -> None:
        self.terminated = True


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(1000.0)


def _supervisor(backend: MemoryBackend, clock: FakeClock, **options: Any) -> Iterator[Supervisor]:
    supervisor = Supervisor(Kit(backend, RecordingHandler()), SPEC, monotonic=clock.time, **options)
    yield supervisor
    # run() closes its wake-up pipe; these supervisors never run.
    os.close(supervisor._wake_r)
    os.close(supervisor._wake_w)


@pytest.fixture
def supervisor(backend: MemoryBackend, clock: FakeClock) -> Iterator[Supervisor]:
    yield from _supervisor(backend, clock)


def _dies(supervisor: Supervisor, slot: _Slot, clock: FakeClock, after: float) -> float:
    """Let the slot's worker die ``after`` seconds after it started; return the delay before
    the supervisor restarts it, and restart it then (as ``_supervise`` does)."""
    clock.set(slot.started + after)
    slot.process = ExitedProcess(slot.process.worker_id, exitcode=1)
    supervisor._handle_death(slot)
    assert slot.restart_at is not None and not slot.done, "a dead worker is always replaced"
    delay = slot.restart_at - clock.time()
    clock.set(slot.restart_at)
    slot.restart_at = None
    slot.started = clock.time()
    return delay


def test_a_worker_that_keeps_dying_at_start_is_restarted_ever_later_up_to_30_seconds(
    supervisor: Supervisor, clock: FakeClock
) -> None:
    slot = _Slot(ExitedProcess("w", 1), started=clock.time())
    delays = [_dies(supervisor, slot, clock, after=0.25) for _ in range(9)]
    assert delays == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0]


def test_a_worker_that_ran_two_seconds_before_dying_is_restarted_at_once(
    supervisor: Supervisor, clock: FakeClock
) -> None:
    slot = _Slot(ExitedProcess("w", 1), started=clock.time())
    assert [_dies(supervisor, slot, clock, after=0.5) for _ in range(3)] == [0.5, 1.0, 2.0]
    # It ran long enough to count as healthy: the back-off starts over.
    assert _dies(supervisor, slot, clock, after=2.0) == 0.0
    assert slot.failures == 0
    assert _dies(supervisor, slot, clock, after=1.75) == 0.5


def test_a_dead_workers_leases_are_released_so_its_tasks_run_again_at_once(
    supervisor: Supervisor, backend: MemoryBackend, clock: FakeClock
) -> None:
    kit = Kit(backend, RecordingHandler())
    task = kit.initiate_task("g", "double", 1)
    [claim] = backend.claim("g", "w-dead", 1, 3600.0, 3).claims
    assert backend.claim("g", "w-other", 1, 3600.0, 3).claims == []  # held by the lease
    _dies(supervisor, _Slot(ExitedProcess("w-dead", -9), started=clock.time()), clock, after=5)
    [again] = backend.claim("g", "w-other", 1, 3600.0, 3).claims
    assert again.task.id == task.id == claim.task.id
    assert again.task.deliveries == 2, "the lost delivery stays counted"


def test_a_failed_release_is_logged_and_the_worker_still_restarts(
    clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    class Unreachable(MemoryBackend):
        def release_worker(self, worker_id: str) -> int:
            raise BackendUnavailable("connection refused")

    for supervisor in _supervisor(Unreachable(), clock):
        slot = _Slot(ExitedProcess("w", 1), started=clock.time())
        with caplog.at_level(logging.ERROR, logger="taskkit.supervisor"):
            assert _dies(supervisor, slot, clock, after=0.25) == 0.5
    assert "could not release the leases of w" in caplog.text


def test_a_worker_that_exits_after_a_shutdown_request_is_not_restarted(
    supervisor: Supervisor, clock: FakeClock
) -> None:
    slot = _Slot(ExitedProcess("w", EXIT_OK), started=clock.time())
    supervisor._handle_death(slot)
    assert slot.done and slot.restart_at is None


def test_a_recycled_worker_is_replaced_at_once_although_it_exited_cleanly(
    supervisor: Supervisor, clock: FakeClock
) -> None:
    slot = _Slot(ExitedProcess("w", EXIT_OK), started=clock.time(), failures=4, recycling=True)
    supervisor._handle_death(slot)
    assert not slot.done and not slot.recycling
    assert slot.restart_at == clock.time() and slot.failures == 0


def test_should_restart_stops_the_live_workers_it_picks(
    backend: MemoryBackend, clock: FakeClock
) -> None:
    for supervisor in _supervisor(backend, clock, should_restart=lambda p: p.worker_id == "big"):
        big, small, gone = LiveProcess("big"), LiveProcess("small"), ExitedProcess("big", 1)
        slots = [_Slot(big, 0.0), _Slot(small, 0.0), _Slot(gone, 0.0)]
        supervisor._recycle_if_asked(slots)
        assert big.terminated and slots[0].recycling
        assert not small.terminated and not slots[1].recycling
        assert not slots[2].recycling, "a dead process is replaced anyway, never recycled"
        # Asked once: a process already stopping for a restart is not stopped again.
        big.terminated = False
        supervisor._recycle_if_asked(slots)
        assert not big.terminated


def test_a_raising_should_restart_is_logged_and_the_worker_keeps_running(
    backend: MemoryBackend, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(process: Any) -> bool:
        raise RuntimeError("cannot read the process size")

    for supervisor in _supervisor(backend, clock, should_restart=broken):
        live = LiveProcess("w")
        with caplog.at_level(logging.ERROR, logger="taskkit.supervisor"):
            supervisor._recycle_if_asked([_Slot(live, 0.0)])
        assert not live.terminated
    assert "should_restart raised" in caplog.text


def test_an_unavailable_start_method_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match=r"start method 'teleport' .*available: "):
        _context("teleport")


def test_worker_ids_name_the_host_and_process_and_are_unique() -> None:
    ids = {new_worker_id() for _ in range(100)}
    assert len(ids) == 100
    assert all(f"-{os.getpid()}-" in worker_id for worker_id in ids)


def test_a_single_process_backend_gets_thread_workers_and_one_start_up_check(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class Cautious(MemoryBackend):
        def check(self) -> list[str]:
            return ["the clock of this backend drifts"]

    backend = Cautious()
    kit = Kit(backend, RecordingHandler())
    spec = WorkerSpec(num_processes=2, threads={"g": 1}, schedule_entries={}, tzinfo=None)
    with caplog.at_level(logging.WARNING):
        handles = start_workers(kit, spec, daemon=True, start_method=None)
        try:
            assert [type(h) for h in handles] == [ThreadWorkerHandle, ThreadWorkerHandle]
            assert kit.initiate_task("g", "double", 4).get(timeout=10) == 8
        finally:
            for handle in handles:
                handle.kill()
            for handle in handles:
                handle.join(10)
    assert [h.is_alive() for h in handles] == [False, False]
    assert caplog.text.count("the clock of this backend drifts") == 1, "once, not per worker"
