"""The backend's clock, read directly when it is this host's, else through a measured offset."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import ClassVar

from taskkit import FakeClock, MemoryBackend
from taskkit._backend_clock import BackendClock

HOUR = 3600.0


class RemoteClock(MemoryBackend):
    """A backend on another host, whose clock runs an hour ahead; counts its reads."""

    clock_is_local: ClassVar[bool] = False

    def __init__(self) -> None:
        super().__init__()
        self.reads = 0

    def now(self) -> float:
        self.reads += 1
        return time.time() + HOUR


def test_a_local_clock_is_read_directly() -> None:
    clock = FakeClock(42.0)
    backend_clock = BackendClock(MemoryBackend(clock=clock))
    assert backend_clock.now() == 42.0
    clock.advance(1.0)
    assert backend_clock.now() == 43.0, "a local clock needs no offset"


def test_a_remote_clock_is_read_through_the_offset_measured_by_sync() -> None:
    backend = RemoteClock()
    backend_clock = BackendClock(backend)
    backend_clock.sync()
    reads = backend.reads
    assert abs(backend_clock.offset - HOUR) < 60
    for _ in range(10):
        assert abs(backend_clock.now() - (time.time() + HOUR)) < 60
    assert backend.reads == reads, "without resync_after, now() never asks the backend"


def test_with_resync_after_the_offset_is_measured_on_first_use_and_again_when_stale() -> None:
    backend = RemoteClock()
    backend_clock = BackendClock(backend, resync_after=BackendClock.KIT_RESYNC)
    backend_clock.now()
    first = backend.reads
    assert first > 0, "the first read measures the offset"
    backend_clock.now()
    assert backend.reads == first, "a fresh measure is reused"
    backend_clock._synced = time.monotonic() - BackendClock.KIT_RESYNC - 1  # a stale measure
    backend_clock.now()
    assert backend.reads > first


class ThreadRecordingClock(RemoteClock):
    """A remote clock that records which threads read it."""

    def __init__(self) -> None:
        super().__init__()
        self.threads: set[int] = set()

    def now(self) -> float:
        self.threads.add(threading.get_ident())
        return super().now()


def test_anow_never_reads_a_remote_clock_on_the_event_loop() -> None:
    backend = ThreadRecordingClock()
    backend_clock = BackendClock(backend, resync_after=0.0)  # stale at every read

    async def read() -> tuple[int, float, float]:
        loop_thread = threading.get_ident()
        first = await backend_clock.anow()  # the first measure: awaited in a thread
        second = await backend_clock.anow()  # stale: the old offset, refreshed in a thread
        return loop_thread, first, second

    loop_thread, first, second = asyncio.run(read())
    assert backend.reads >= 1
    assert loop_thread not in backend.threads, "the loop thread must never wait on a round trip"
    for value in (first, second):
        assert abs(value - (time.time() + HOUR)) < 60, "anow reads the backend's clock"


def test_anow_reads_a_local_clock_directly() -> None:
    clock = FakeClock(42.0)
    assert asyncio.run(BackendClock(MemoryBackend(clock=clock)).anow()) == 42.0
