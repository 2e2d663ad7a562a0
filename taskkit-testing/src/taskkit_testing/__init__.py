"""taskkit-testing: the conformance kit that certifies a taskkit backend.

A backend author's whole conformance file::

    import functools
    import pytest
    from taskkit_testing import BackendTests
    from my_backend import MyBackend

    @pytest.fixture
    def backend_factory(tmp_path):
        return functools.partial(MyBackend, tmp_path / "tasks.db")

    class TestMyBackend(BackendTests):
        pass

Names are imported lazily, so that loading the pytest plugin (this package's ``plugin``
module) registers assertion rewriting before the suite modules are imported.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "1.0.0a1"

if TYPE_CHECKING:
    from taskkit.clock import FakeClock

    from ._base import BackendPool, KitSettings, KitTestBase, Timing
    from .helpers import Ledger, LedgerLine, TaskMaker, unique_name, violated, wait_until
    from .suite import (
        BackendTests,
        BadInputTests,
        CancelTests,
        ConcurrencyTests,
        ControlEventTests,
        DeadLetterTests,
        EnqueueTests,
        FencingTests,
        LeaseTests,
        RecoveryTests,
        ResultTests,
        RetryTests,
        RuntimeTests,
        SchedulingTests,
        SerializationTests,
        WaitingTests,
    )

_EXPORTS = {
    "FakeClock": "taskkit.clock",
    "BackendPool": "taskkit_testing._base",
    "KitSettings": "taskkit_testing._base",
    "KitTestBase": "taskkit_testing._base",
    "Timing": "taskkit_testing._base",
    "Ledger": "taskkit_testing.helpers",
    "LedgerLine": "taskkit_testing.helpers",
    "TaskMaker": "taskkit_testing.helpers",
    "unique_name": "taskkit_testing.helpers",
    "violated": "taskkit_testing.helpers",
    "wait_until": "taskkit_testing.helpers",
    **{
        name: "taskkit_testing.suite"
        for name in (
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
        )
    },
}

__all__ = [
    "BackendPool",
    "BackendTests",
    "BadInputTests",
    "CancelTests",
    "ConcurrencyTests",
    "ControlEventTests",
    "DeadLetterTests",
    "EnqueueTests",
    "FakeClock",
    "FencingTests",
    "KitSettings",
    "KitTestBase",
    "LeaseTests",
    "Ledger",
    "LedgerLine",
    "RecoveryTests",
    "ResultTests",
    "RetryTests",
    "RuntimeTests",
    "SchedulingTests",
    "SerializationTests",
    "TaskMaker",
    "Timing",
    "WaitingTests",
    "__version__",
    "unique_name",
    "violated",
    "wait_until",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'taskkit_testing' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
