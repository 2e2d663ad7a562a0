"""Clocks: the system clock, the fake clock tests move, and measuring a remote clock."""

from __future__ import annotations

import pickle
import threading
import time

import pytest
from taskkit import FakeClock
from taskkit.clock import Clock, SystemClock, measure_offset


def test_a_fake_clock_moves_only_when_told() -> None:
    clock = FakeClock(100.0)
    assert clock.time() == clock.time() == 100.0
    assert clock.advance(2.5) == 102.5 == clock.time()
    clock.set(50.0)  # backwards too: clock skew
    assert clock.time() == 50.0


def test_a_fake_clock_never_advances_backwards() -> None:
    clock = FakeClock(100.0)
    with pytest.raises(ValueError, match="never moves backwards"):
        clock.advance(-1)
    assert clock.time() == 100.0


def test_a_fake_clock_loses_no_advance_across_threads() -> None:
    clock = FakeClock(0.0)
    threads = [
        threading.Thread(target=lambda: [clock.advance(1) for _ in range(1000)]) for _ in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert clock.time() == 8000.0


def test_the_system_clock_is_the_hosts_and_pickles() -> None:
    before = time.time()
    now = SystemClock().time()
    assert before <= now <= time.time()
    assert isinstance(pickle.loads(pickle.dumps(SystemClock())), SystemClock)
    assert isinstance(SystemClock(), Clock) and isinstance(FakeClock(), Clock)


def test_the_offset_is_the_remote_clock_read_half_way_through_the_round_trip() -> None:
    remote = 1_000_000.0
    before = time.time()
    offset = measure_offset(lambda: remote)
    after = time.time()
    # The read happened somewhere inside [before, after].
    assert remote - after <= offset <= remote - before


def test_the_sample_with_the_shortest_round_trip_wins() -> None:
    # The first and the last answers come late and are stale; the middle one is quick.
    answers = iter([0.0, 5_000.0, 0.0])

    def remote_now() -> float:
        value = next(answers)
        if value == 0.0:  # e.g. a connection handshake: a long round trip
            deadline = time.perf_counter() + 0.15
            while time.perf_counter() < deadline:
                pass
        return value

    before = time.time()
    offset = measure_offset(remote_now, samples=3)
    assert 5_000.0 - time.time() <= offset <= 5_000.0 - before


def test_at_least_one_sample_is_taken() -> None:
    calls: list[int] = []
    measure_offset(lambda: calls.append(1) or 0.0, samples=0)
    assert calls == [1]
