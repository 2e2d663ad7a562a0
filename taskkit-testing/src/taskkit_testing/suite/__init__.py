"""The conformance suite, one module per topic, and :class:`BackendTests` combining them.

Subclass :class:`BackendTests` for everything, or pick topic classes (``LeaseTests``,
``FencingTests``, ...) to run a part.

The list of topic classes is kept once, as the bases of :class:`BackendTests`; :data:`TOPICS`,
this module's ``__all__`` and the names ``taskkit_testing`` exports derive from it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

# ``X as X``: the explicit re-exports a type checker sees (``__all__`` is computed below).
from .async_producer import AsyncProducerTests as AsyncProducerTests
from .async_tasks import AsyncTaskTests as AsyncTaskTests
from .bad_input import BadInputTests as BadInputTests
from .concurrency import ConcurrencyTests as ConcurrencyTests
from .control import CancelTests as CancelTests
from .control import ControlEventTests as ControlEventTests
from .dead_letters import DeadLetterTests as DeadLetterTests
from .dead_letters import RetryTests as RetryTests
from .deferral import DeferralTests as DeferralTests
from .enqueue import EnqueueTests as EnqueueTests
from .fencing import FencingTests as FencingTests
from .functions import FunctionTaskTests as FunctionTaskTests
from .headers import HeadersTests as HeadersTests
from .leases import LeaseTests as LeaseTests
from .recovery import RecoveryTests as RecoveryTests
from .results import ResultTests as ResultTests
from .results import WaitingTests as WaitingTests
from .runtime import RuntimeTests as RuntimeTests
from .scheduling import SchedulingTests as SchedulingTests
from .serialization import SerializationTests as SerializationTests
from .stats import FleetStatsTests as FleetStatsTests
from .unknown_tasks import UnknownTaskTests as UnknownTaskTests


class BackendTests(
    # pytest collects inherited tests in reverse MRO order: listing the topics backwards
    # runs them in TOPICS order, the quick contract checks before the process tests.
    UnknownTaskTests,
    FleetStatsTests,
    AsyncTaskTests,
    FunctionTaskTests,
    RuntimeTests,
    RecoveryTests,
    ConcurrencyTests,
    BadInputTests,
    SerializationTests,
    SchedulingTests,
    ControlEventTests,
    CancelTests,
    HeadersTests,
    DeferralTests,
    DeadLetterTests,
    RetryTests,
    AsyncProducerTests,
    WaitingTests,
    ResultTests,
    FencingTests,
    LeaseTests,
    EnqueueTests,
):
    """The whole conformance kit. Subclass it and provide a ``backend_factory`` fixture::

    class TestMyBackend(BackendTests):
        @pytest.fixture
        def backend_factory(self, tmp_path):
            return functools.partial(MyBackend, tmp_path / "db")
    """


#: Every topic class, in the order ``BackendTests`` runs them.
TOPICS: tuple[type, ...] = tuple(reversed(BackendTests.__bases__))

if not TYPE_CHECKING:  # a computed __all__; type checkers use the re-exports above
    __all__ = ["TOPICS", "BackendTests", *sorted(topic.__name__ for topic in TOPICS)]
