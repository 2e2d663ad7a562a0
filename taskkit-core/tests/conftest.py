from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from taskkit import Kit, MemoryBackend, TaskHandler, make_kit
from taskkit.context import current_task

from .handlers import RecordingHandler


def wait_until(predicate: Callable[[], Any], timeout: float = 5.0, interval: float = 0.01) -> Any:
    """Poll ``predicate`` until it is truthy; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        time.sleep(interval)


@pytest.fixture
def backend() -> MemoryBackend:
    return MemoryBackend()


@pytest.fixture
def handler() -> RecordingHandler:
    return RecordingHandler()


@pytest.fixture
def kit(backend: MemoryBackend, handler: TaskHandler) -> Kit:
    return Kit(backend, handler, lease_seconds=2.0, control_interval=0.05, timeout_grace=0.5)


@pytest.fixture
def running(kit: Kit) -> Iterator[Kit]:
    """The kit with one in-process worker (3 threads for group 'g') running."""
    handles = kit.start_processes(1, {"g": 3})
    yield kit
    for handle in handles:
        handle.kill()
        handle.join(10)
        assert not handle.is_alive()


__all__ = ["current_task", "make_kit", "wait_until"]
