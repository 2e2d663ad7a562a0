"""Factories for the in-memory backend (the kit's own test subject) and its variants."""

from __future__ import annotations

from typing import ClassVar

from taskkit import Backend, MemoryBackend
from taskkit.clock import Clock


class SharedMemoryFactory:
    """Builds one MemoryBackend per test and hands the same store to every caller.

    :param backend_class: a MemoryBackend subclass (the broken ones, in the self-tests).
    """

    def __init__(self, backend_class: type[MemoryBackend] = MemoryBackend) -> None:
        self.backend_class = backend_class
        self.backend: MemoryBackend | None = None

    def __call__(self, clock: Clock | None = None) -> Backend:
        if self.backend is None:
            self.backend = self.backend_class(clock=clock)
        return self.backend


class RealClockMemoryBackend(MemoryBackend):
    """The in-memory backend on the system clock, declared without a fake clock, so the
    kit's real-time code paths (short leases, waiting for the clock) run too."""

    supports_fake_clock: ClassVar[bool] = False


class RealClockFactory(SharedMemoryFactory):
    def __call__(self) -> Backend:  # type: ignore[override]  # a zero-argument factory
        return super().__call__(None)


# The broken backends' module imports this one's names in the pytester runs.
__all__ = ["RealClockFactory", "RealClockMemoryBackend", "SharedMemoryFactory"]
