"""The kit's data: every ``KitConfig`` field is validated (the error names the field), and
``KitParts`` is built as a kit builds its own parts."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from taskkit import ConfigurationError, FakeClock, Kit, KitConfig, MemoryBackend, Task, hookimpl
from taskkit._backend_clock import BackendClock
from taskkit._kitdata import KitParts
from taskkit.plugins import get_plugin_manager

from .handlers import RecordingHandler

NAN = float("nan")
INF = float("inf")

# Values each field refuses. Durations: finite seconds > 0 (grace_period and
# unknown_task_window: >= 0);
# counts and sizes: ints (no bools, no floats).
BAD: dict[str, list[Any]] = {
    "lease_seconds": [0, -1, NAN, INF, "30", True, None],
    "heartbeat_interval": [0, -1, NAN, 30.0, 31.0, "5", True],
    "max_deliveries": [0, -1, 1.5, True, None, "3"],
    "default_timeout": [0, -1, NAN, INF, "600", True],
    "timeout_grace": [0, -1, NAN, INF, "5", True, None],
    "grace_period": [-1, NAN, INF, "30", True, None],
    "max_data_size": [0, -1, 1.5, True, None],
    "max_result_size": [0, -1, 1.5, True, None],
    "max_error_size": [0, 63, 1.5, True, None],
    "max_idle_wait": [0, -1, NAN, INF, "5", True, None],
    "control_interval": [0, -0.5, NAN, INF, "1", True, None],
    "prefetch": [-1, 1.5, True, "2"],
    "unknown_task_window": [-1, NAN, INF, "3600", True, None],
    "loop_block_warning": [0, -1, NAN, INF, "1", True, None],
    "metrics_port": [-1, 65536, 1.5, True, "9100"],
    "metrics_host": ["", "  ", None, 127],
}

# Edge values each field accepts.
GOOD: dict[str, list[Any]] = {
    "lease_seconds": [0.001, 1, 30.0],
    "heartbeat_interval": [None, 0.01, 29.9],
    "max_deliveries": [1, 10],
    "default_timeout": [None, 0.01, 3600],
    "timeout_grace": [0.01, 5],
    "grace_period": [0, 0.0, 60],
    "max_data_size": [1, 10**9],
    "max_result_size": [1, 10**9],
    "max_error_size": [64, 10**6],
    "max_idle_wait": [0.001, 60],
    "control_interval": [0.01, 1, 2.5],
    "prefetch": [None, 0, 8],
    "unknown_task_window": [0, 0.5, 3600.0],
    "loop_block_warning": [0.01, 1, 30.0],
    "metrics_port": [None, 0, 9100, 65535],
    "metrics_host": ["127.0.0.1", "0.0.0.0", "::1", "metrics.internal"],
}


def test_every_field_has_cases() -> None:
    fields = {f.name for f in dataclasses.fields(KitConfig)}
    assert set(BAD) == fields and set(GOOD) == fields


@pytest.mark.parametrize(("field", "value"), [(f, v) for f, values in BAD.items() for v in values])
def test_a_bad_value_is_refused_naming_the_field(field: str, value: Any) -> None:
    with pytest.raises(ConfigurationError, match=rf"KitConfig\.{field} must be") as info:
        KitConfig(**{field: value})
    assert repr(value) in str(info.value)


@pytest.mark.parametrize(("field", "value"), [(f, v) for f, values in GOOD.items() for v in values])
def test_edge_values_are_accepted(field: str, value: Any) -> None:
    assert getattr(KitConfig(**{field: value}), field) == value


def test_kit_options_go_through_the_same_checks() -> None:
    with pytest.raises(ConfigurationError, match=r"KitConfig\.control_interval"):
        Kit(MemoryBackend(), RecordingHandler(), control_interval=0)
    with pytest.raises(ConfigurationError, match=r"KitConfig\.max_idle_wait"):
        Kit(MemoryBackend(), RecordingHandler(), max_idle_wait=0)


def test_heartbeat_must_stay_below_the_lease() -> None:
    with pytest.raises(ConfigurationError, match="lease_seconds"):
        KitConfig(lease_seconds=3, heartbeat_interval=3)
    assert KitConfig(lease_seconds=3, heartbeat_interval=2.9).heartbeat == 2.9


def test_the_defaults_are_valid() -> None:
    config = KitConfig()
    assert config.heartbeat == config.lease_seconds / 3


class Listener:
    def __init__(self) -> None:
        self.started: list[str] = []

    @hookimpl
    def taskkit_task_started(self, task: Task, worker_id: str) -> None:
        self.started.append(worker_id)


def test_kit_parts_are_built_as_a_kit_builds_its_own() -> None:
    listener = Listener()
    backend = MemoryBackend(clock=FakeClock(7.0))
    parts = KitParts.of(backend, RecordingHandler(), KitConfig(), [listener])
    assert parts.plugins == (listener,)
    parts.hook_caller.call(
        "taskkit_task_started", task=Task("t", "g", "n", b"", 0.0, 0.0), worker_id="w1"
    )
    assert listener.started == ["w1"], "the kit-local plugins are called"
    assert parts.backend_now() == 7.0
    assert parts.clock.resync_after == BackendClock.KIT_RESYNC
    plain = KitParts.of(backend, RecordingHandler(), KitConfig())
    assert plain.hook_caller.plugin_manager is get_plugin_manager()
