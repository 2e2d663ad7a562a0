"""Clocks: the system clock, and a fake one that tests move by hand."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Protocol, runtime_checkable


@runtime_checkable
class Clock(Protocol):
    """Anything that tells the time in seconds since the epoch."""

    def time(self) -> float:
        """The current time, in seconds since the epoch."""
        ...


class SystemClock:
    """The host's wall clock."""

    def time(self) -> float:
        return time.time()

    def __reduce__(self) -> tuple[type[SystemClock], tuple[()]]:
        return (SystemClock, ())


class FakeClock:
    """A clock that only moves when told to: time travel for due times, leases and schedules.

    Thread-safe. ``FakeClock(start)`` starts at ``start`` seconds since the epoch.
    """

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self._now = float(start)
        self._lock = threading.Lock()

    def time(self) -> float:
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> float:
        """Move forward by ``seconds`` (never backwards); returns the new time."""
        if seconds < 0:
            raise ValueError("a FakeClock never moves backwards; use set() to jump")
        with self._lock:
            self._now += seconds
            return self._now

    def set(self, now: float) -> None:
        """Jump to ``now``, in either direction (to model clock skew)."""
        with self._lock:
            self._now = float(now)


def measure_offset(remote_now: Callable[[], float], samples: int = 3) -> float:
    """Seconds to add to ``time.time()`` to get ``remote_now()``'s clock.

    Takes the sample with the shortest round trip (the first call may include a connection
    handshake), and assumes the remote clock was read half-way through it: the error is at
    most half that round trip.
    """
    best: tuple[float, float] | None = None
    for _ in range(max(1, samples)):
        before = time.time()
        remote = remote_now()
        after = time.time()
        if best is None or after - before < best[0]:
            best = (after - before, remote - (before + after) / 2)
    assert best is not None
    return best[1]
