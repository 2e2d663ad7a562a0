"""The worker's entry in the registry of live workers (taskkit._fleet), and the figures'
argument checks (taskkit._stats); the figures themselves are the kit's FleetStatsTests."""

from __future__ import annotations

import logging
import math
import os
import socket
from typing import Any

import pytest
from taskkit import (
    Backend,
    BackendUnavailable,
    FakeClock,
    FinishedCounts,
    GroupStats,
    Kit,
    MemoryBackend,
)
from taskkit._fleet import MISSED_HEARTBEATS, FleetMembership
from taskkit._health import BackendHealth
from taskkit.backend import checked_heartbeat, checked_registration, checked_window

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


# --------------------------------------------------------------------------- argument checks


@pytest.mark.parametrize("window", [0, -5, math.nan, math.inf, 3600.5])
def test_a_window_out_of_range_is_a_value_error(window: float) -> None:
    with pytest.raises(ValueError, match="window"):
        checked_window(window)


@pytest.mark.parametrize("window", ["60", None, True])
def test_a_window_that_is_no_number_is_a_type_error(window: Any) -> None:
    with pytest.raises(TypeError):
        checked_window(window)


def test_registration_checks_each_argument() -> None:
    info = checked_registration("w", "h", 7, {"b": 1, "a": 2}, 30)
    assert (info.id, info.host, info.pid, list(info.threads)) == ("w", "h", 7, ["a", "b"])
    for bad in [
        ("w\n", "h", 1, {}, 30),
        ("x" * 256, "h", 1, {}, 30),
        ("w", "h\t", 1, {}, 30),
        ("w", "h", True, {}, 30),
        ("w", "h", 1, {"g": True}, 30),
        ("w", "h", 1, {}, -1),
    ]:
        with pytest.raises(ValueError):
            checked_registration(*bad)
    with pytest.raises(TypeError):
        checked_registration("w", "h", 1, [("g", 1)], 30)
    with pytest.raises(TypeError):
        checked_heartbeat("w", 1, "30")
    assert checked_heartbeat("w", 0, 5) == 5.0


def test_the_value_objects_derive_their_totals() -> None:
    stats = GroupStats("g", 2, 3, 1, 0, None, 10.0)
    assert stats.waiting == 5
    counts = FinishedCounts.of("g", 0.0, 60.0, {"succeeded": 4, "dead": 1, "retried": 9})
    assert counts.as_dict() == {
        "succeeded": 4,
        "failed": 0,
        "discarded": 0,
        "dead": 1,
        "cancelled": 0,
    }
    assert counts.total == 5
