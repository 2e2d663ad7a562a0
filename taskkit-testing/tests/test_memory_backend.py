"""The kit passes on the in-memory reference backend, with a fake clock and in real time."""

from __future__ import annotations

import pytest
from memory_factories import RealClockFactory, RealClockMemoryBackend, SharedMemoryFactory
from taskkit_testing import BackendTests
from taskkit_testing.stateful import StatefulBackendTests


class TestMemoryBackend(BackendTests):
    @pytest.fixture
    def backend_factory(self) -> SharedMemoryFactory:
        return SharedMemoryFactory()


class TestMemoryBackendRealClock(BackendTests):
    @pytest.fixture
    def backend_factory(self) -> RealClockFactory:
        return RealClockFactory(RealClockMemoryBackend)


class TestMemoryBackendStateful(StatefulBackendTests):
    @pytest.fixture
    def backend_factory(self) -> SharedMemoryFactory:
        return SharedMemoryFactory()


class TestMemoryBackendRealClockStateful(StatefulBackendTests):
    max_examples = 10

    @pytest.fixture
    def backend_factory(self) -> RealClockFactory:
        return RealClockFactory(RealClockMemoryBackend)
