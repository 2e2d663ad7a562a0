"""The worker's entry in the registry of live workers (taskkit._fleet), on the in-memory
backend's registry (taskkit._memory_stats, whose figures the kit's FleetStatsTests check)."""

from __future__ import annotations

import logging
import os
import socket
from typing import Any

import pytest
from taskkit import Backend, BackendUnavailable, FakeClock, Kit, MemoryBackend
from taskkit._fleet import MISSED_HEARTBEATS, FleetMembership
from taskkit._health import BackendHealth

from .conftest import wait_until
from .handlers import RecordingHandler

log = logging.getLogger("test")


class Flaky(MemoryBackend):
    """The registry writes fail as told: ``down`` (unreachable) or ``broken`` (a bug)."""

    down = False
    broken = False
    calls: list[str]

    def _maybe_fail(self, call: str) -> None:
        self.__dict__.setdefault("calls", []).append(call)
        if self.down:
            raise BackendUnavailable("down")
        if self.broken:
            raise RuntimeError("a bug")

    def register_worker(self, *args: Any, **kwargs: Any) -> None:
        self._maybe_fail("register")
        super().register_worker(*args, **kwargs)

    def heartbeat_worker(self, *args: Any, **kwargs: Any) -> bool:
        self._maybe_fail("heartbeat")
        return super().heartbeat_worker(*args, **kwargs)


def member(backend: Backend, heartbeat: float = 10.0) -> FleetMembership:
    return FleetMembership(backend, "w1", {"g": 2}, heartbeat, BackendHealth(log, "memory"))


def listed(backend: Backend) -> list[str]:
    return [w.id for w in backend.list_workers()]


def test_a_member_registers_its_host_pid_and_threads_for_missed_heartbeats() -> None:
    clock = FakeClock(1000.0)
    backend = MemoryBackend(clock=clock)
    member(backend, heartbeat=10.0).join()
    [info] = backend.list_workers()
    assert (info.id, info.host, info.pid, dict(info.threads)) == (
        "w1",
        socket.gethostname(),
        os.getpid(),
        {"g": 2},
    )
    assert info.expires == 1000.0 + MISSED_HEARTBEATS * 10.0
    clock.advance(MISSED_HEARTBEATS * 10.0)
    assert listed(backend) == [], "an entry outlives its missed heartbeats"


def test_a_beat_stores_the_claims_held_and_reregisters_a_lost_entry() -> None:
    clock = FakeClock(1000.0)
    backend = MemoryBackend(clock=clock)
    fleet = member(backend)
    fleet.join()
    clock.advance(5.0)
    fleet.beat(3)
    [info] = backend.list_workers()
    assert (info.heartbeat, info.tasks_held, info.started) == (1005.0, 3, 1000.0)
    clock.advance(MISSED_HEARTBEATS * 10.0 + 1)  # a long pause: the entry aged out
    fleet.beat(1)
    [again] = backend.list_workers()
    assert again.started == clock.time(), "a lost entry must be registered anew"
    fleet.leave()
    assert listed(backend) == []


def test_an_outage_is_reported_once_and_the_entry_comes_back(
    caplog: pytest.LogCaptureFixture,
) -> None:
    backend = Flaky()
    backend.down = True
    fleet = member(backend)
    fleet.join()
    fleet.beat(0)
    assert listed(backend) == []
    backend.down = False
    fleet.beat(0)  # not registered yet: this beat registers
    assert listed(backend) == ["w1"]
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and "unreachable" in warnings[0].getMessage()


def test_a_broken_registry_is_reported_once_and_never_raises(
    caplog: pytest.LogCaptureFixture,
) -> None:
    backend = Flaky()
    backend.broken = True
    fleet = member(backend)
    fleet.join()
    for _ in range(3):
        fleet.beat(0)
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and "registering the worker failed" in warnings[0].getMessage()
    assert backend.calls == ["register"] * 4, "each beat tries to register again"


def test_a_backend_without_fleet_stats_runs_workers_and_says_what_it_lacks() -> None:
    class Plain(MemoryBackend):
        supports_fleet_stats = False
        # The base class's defaults, as a backend that never heard of the figures has them.
        list_groups = Backend.list_groups
        list_workers = Backend.list_workers
        register_worker = Backend.register_worker
        heartbeat_worker = Backend.heartbeat_worker
        deregister_worker = Backend.deregister_worker

    backend = Plain()
    fleet = member(backend)
    fleet.join()
    fleet.beat(1)
    fleet.leave()
    with pytest.raises(NotImplementedError, match="does not declare supports_fleet_stats"):
        backend.list_workers()
    kit = Kit(backend, RecordingHandler(), lease_seconds=2.0, control_interval=0.05)
    [handle] = kit.start_processes(1, {"g": 1})
    try:
        assert kit.initiate_task("g", "double", 2).get(timeout=5) == 4
    finally:
        handle.terminate()
        handle.join(10)


def test_a_worker_is_listed_while_it_runs_and_gone_once_it_stops() -> None:
    backend = MemoryBackend()
    kit = Kit(backend, RecordingHandler(), lease_seconds=2.0, control_interval=0.05)
    [handle] = kit.start_processes(1, {"g": 2, "h": 1})
    try:
        [info] = wait_until(backend.list_workers)
        assert dict(info.threads) == {"g": 2, "h": 1}
        assert info.groups == ("g", "h")
    finally:
        handle.terminate()
        handle.join(10)
    assert backend.list_workers() == []
