"""Clocks: the system clock, and a fake one that tests move by hand."""

from __future__ import annotations

import threading
import time
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
