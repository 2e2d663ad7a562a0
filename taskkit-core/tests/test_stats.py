"""The fleet figures' value objects and argument checks (taskkit._stats); what backends
answer is the kit's FleetStatsTests."""

from __future__ import annotations

import math
from typing import Any

import pytest
from taskkit import FinishedCounts, GroupStats, WorkerInfo
from taskkit.backend import checked_heartbeat, checked_registration, checked_window


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


def test_a_worker_info_names_its_groups_and_heartbeat_age() -> None:
    info = WorkerInfo("w", "h", 1, {"b": 1, "a": 2}, 10.0, 12.0, 40.0, 3)
    assert info.groups == ("a", "b")
    assert info.heartbeat_age(15.0) == 3.0
    assert info.heartbeat_age(11.0) == 0.0, "never negative (a clock read just before it)"
