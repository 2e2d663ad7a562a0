"""The fixtures every suite class shares: building backends, time control, settings.

A backend author provides one fixture, ``backend_factory``: a picklable callable that returns
a fresh :class:`taskkit.Backend` on the store of the current test (the same store for every
call within one test). If it accepts a ``clock`` keyword, the kit passes a
:class:`taskkit.FakeClock` for in-process tests and nothing in child processes.
"""

from __future__ import annotations

import inspect
import pickle
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, ClassVar

import pytest
from taskkit import Backend, FakeClock, Kit, TaskHandler

from .helpers import TaskMaker, unique_name, violated, wait_until

__all__ = ["BackendPool", "KitSettings", "KitTestBase", "Timing"]

#: The capability flags of :class:`taskkit.Backend` that the kit knows.
CAPABILITIES = (
    "supports_processes",
    "supports_notifications",
    "supports_fake_clock",
    "supports_transactional_put",
    "clock_is_local",
    "supports_fleet_stats",
)


@dataclass(frozen=True)
class KitSettings:
    """Sizes and deadlines, from ``--taskkit-scale`` and ``--taskkit-timeout``."""

    scale: float = 1.0
    timeout_factor: float = 1.0

    def size(self, n: int, minimum: int = 1) -> int:
        """``n`` scaled, at least ``minimum``."""
        return max(minimum, round(n * self.scale))

    def deadline(self, seconds: float) -> float:
        """``seconds`` stretched by the timeout factor (for slow machines)."""
        return seconds * self.timeout_factor

    @classmethod
    def from_config(cls, config: pytest.Config) -> KitSettings:
        scale = config.getoption("taskkit_scale", default=None)
        factor = config.getoption("taskkit_timeout", default=None)
        return cls(
            scale=1.0 if scale is None else float(scale),
            timeout_factor=1.0 if factor is None else float(factor),
        )


def _accepts_clock(factory: Callable[..., Backend]) -> bool:
    try:
        params = inspect.signature(factory).parameters
    except (TypeError, ValueError):
        return False
    # Only an explicit ``clock`` parameter counts: ``**kwargs`` (a functools.partial of a
    # backend class, say) says nothing about fake-clock support.
    return "clock" in params


class BackendPool:
    """Builds backends from the author's factory for one test, and closes them afterwards.

    :ivar clock: the fake clock the backends follow, or None when they use real time.
    """

    def __init__(
        self, factory: Callable[..., Backend], clock: FakeClock | None, *, real_clock: bool
    ) -> None:
        self.factory = factory
        self._offered = (
            clock if (clock is not None and not real_clock and _accepts_clock(factory)) else None
        )
        self.clock: FakeClock | None = None
        self._built: list[Backend] = []
        self.primary = self.new()
        self._check_clock()

    def new(self) -> Backend:
        """Another backend instance on the same store (its own connections)."""
        backend = self.factory(clock=self._offered) if self._offered is not None else self.factory()
        if not isinstance(backend, Backend):
            raise TypeError(
                f"backend_factory must return a taskkit Backend, not {type(backend).__name__}"
            )
        self._built.append(backend)
        return backend

    @property
    def backend_class(self) -> type[Backend]:
        return type(self.primary)

    def _check_clock(self) -> None:
        if self._offered is None:
            return
        self._offered.advance(1000.0)
        if abs(self.primary.now() - self._offered.time()) < 1e-3:
            self.clock = self._offered
        elif self.backend_class.supports_fake_clock:
            self.close()
            pytest.fail(
                violated(
                    f"{self.backend_class.__name__} declares supports_fake_clock, so the backend "
                    "built by backend_factory(clock=...) must follow that clock",
                    got=f"now() is {self.primary.now() - self._offered.time():+.3f}s off the "
                    "fake clock",
                )
            )

    def close(self) -> None:
        seen: set[int] = set()
        for backend in self._built:
            if id(backend) not in seen:
                seen.add(id(backend))
                backend.close()
        self._built.clear()


class Timing:
    """Moves time forward on the backend's clock: a fake clock jumps, a real one is waited for.

    Tests use :attr:`short_lease` for leases meant to expire and :attr:`long_lease` for leases
    that must not, so the same test works with and without a fake clock.
    """

    def __init__(self, backend: Backend, clock: FakeClock | None, settings: KitSettings) -> None:
        self.backend = backend
        self.clock = clock
        self.settings = settings

    @property
    def fake(self) -> bool:
        return self.clock is not None

    @property
    def short_lease(self) -> float:
        """A lease a test lets expire."""
        return 30.0 if self.fake else 0.3

    @property
    def long_lease(self) -> float:
        """A lease that outlives the test."""
        return 3600.0

    @property
    def future(self) -> float:
        """A delay that keeps a task in the future while the test looks at it."""
        return 3600.0 if self.fake else self.settings.deadline(0.5)

    def now(self) -> float:
        return self.backend.now()

    def advance_past(self, when: float) -> float:
        """Make the backend's clock pass ``when``; returns the new backend time."""
        if self.clock is not None:
            now = self.clock.time()
            if now <= when:
                self.clock.advance(when - now + 0.001)
            return self.backend.now()
        wait_until(
            lambda: self.backend.now() > when,
            timeout=max(0.0, when - self.backend.now()) + self.settings.deadline(10.0),
            message="the backend's clock did not pass a point in time (is now() moving?)",
        )
        return self.backend.now()

    def pass_seconds(self, seconds: float) -> float:
        return self.advance_past(self.now() + seconds)


class JSONTestHandler(TaskHandler):
    """A handler for the kit's tests: JSON data and results; never run by a worker here."""

    def handle(self, task: Any) -> Any:  # pragma: no cover - the kit drives claims itself
        raise NotImplementedError


class KitTestBase:
    """Base of every suite class: fixtures only.

    :cvar expected_failures: names of tests (``test_x`` or ``test_x[param]``) this backend is
        known to fail; they run as strict xfails, so a fixed gap shows up as XPASS.
    """

    expected_failures: ClassVar[set[str] | frozenset[str]] = frozenset()

    @pytest.fixture
    def kit_settings(self, request: pytest.FixtureRequest) -> KitSettings:
        return KitSettings.from_config(request.config)

    @pytest.fixture
    def fake_clock(self) -> FakeClock:
        # Start at the real time so tasks made by Kit.make_task (which stamps due with the
        # caller's clock) are due on the fake clock too.
        return FakeClock(float(int(time.time())))

    @pytest.fixture
    def backends(
        self,
        request: pytest.FixtureRequest,
        backend_factory: Callable[..., Backend],
        fake_clock: FakeClock,
    ) -> Iterator[BackendPool]:
        real_clock = request.node.get_closest_marker("taskkit_processes") is not None
        pool = BackendPool(backend_factory, fake_clock, real_clock=real_clock)
        for marker in request.node.iter_markers("taskkit_requires"):
            for capability in marker.args:
                if not getattr(pool.backend_class, capability, False):
                    pool.close()
                    pytest.skip(f"{pool.backend_class.__name__} does not declare {capability}")
        try:
            yield pool
        finally:
            pool.close()

    @pytest.fixture
    def backend(self, backends: BackendPool) -> Backend:
        return backends.primary

    @pytest.fixture
    def timing(self, backends: BackendPool, kit_settings: KitSettings) -> Timing:
        return Timing(backends.primary, backends.clock, kit_settings)

    @pytest.fixture
    def group(self) -> str:
        return unique_name("g")

    @pytest.fixture
    def tasks(self, group: str, timing: Timing) -> TaskMaker:
        return TaskMaker(group=group, now=timing.now)

    @pytest.fixture
    def kit(self, backend: Backend) -> Kit:
        return Kit(backend, JSONTestHandler())

    @pytest.fixture
    def picklable_factory(self, backend_factory: Callable[..., Backend]) -> Callable[..., Backend]:
        """The author's factory, checked to survive pickling (for ``spawn``ed children)."""
        try:
            pickle.loads(pickle.dumps(backend_factory))  # noqa: S301 - our own bytes
        except Exception as exc:
            pytest.fail(
                violated(
                    "backend_factory must be picklable so child processes can build the backend "
                    "(a module-level class or functools.partial, no lambdas)",
                    got=exc,
                )
            )
        return backend_factory

    @pytest.fixture
    def backend_transaction(self) -> Callable[[], Any]:
        """Override: a callable returning a context manager around one transaction."""
        pytest.skip(
            "the backend declares supports_transactional_put; define a backend_transaction "
            "fixture returning a callable that opens a transaction (a context manager) to test it"
        )


__all__ += ["JSONTestHandler", "violated"]
