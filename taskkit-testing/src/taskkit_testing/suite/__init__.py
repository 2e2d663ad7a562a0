"""The conformance suite, one module per topic, and :class:`BackendTests` combining them.

Subclass :class:`BackendTests` for everything, or pick topic classes (``LeaseTests``,
``FencingTests``, ...) to run a part.
"""

from __future__ import annotations

from .bad_input import BadInputTests
from .concurrency import ConcurrencyTests
from .control import CancelTests, ControlEventTests
from .dead_letters import DeadLetterTests, RetryTests
from .enqueue import EnqueueTests
from .fencing import FencingTests
from .leases import LeaseTests
from .recovery import RecoveryTests
from .results import ResultTests, WaitingTests
from .runtime import RuntimeTests
from .scheduling import SchedulingTests
from .serialization import SerializationTests

__all__ = [
    "TOPICS",
    "BackendTests",
    "BadInputTests",
    "CancelTests",
    "ConcurrencyTests",
    "ControlEventTests",
    "DeadLetterTests",
    "EnqueueTests",
    "FencingTests",
    "LeaseTests",
    "RecoveryTests",
    "ResultTests",
    "RetryTests",
    "RuntimeTests",
    "SchedulingTests",
    "SerializationTests",
    "WaitingTests",
]

#: Every topic class, in the order ``BackendTests`` runs them.
TOPICS = (
    EnqueueTests,
    LeaseTests,
    FencingTests,
    ResultTests,
    WaitingTests,
    RetryTests,
    DeadLetterTests,
    CancelTests,
    ControlEventTests,
    SchedulingTests,
    SerializationTests,
    BadInputTests,
    ConcurrencyTests,
    RecoveryTests,
    RuntimeTests,
)


class BackendTests(
    # pytest collects inherited tests in reverse MRO order: listing the topics backwards
    # runs them in TOPICS order, the quick contract checks before the process tests.
    RuntimeTests,
    RecoveryTests,
    ConcurrencyTests,
    BadInputTests,
    SerializationTests,
    SchedulingTests,
    ControlEventTests,
    CancelTests,
    DeadLetterTests,
    RetryTests,
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
