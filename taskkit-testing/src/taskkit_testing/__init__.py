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
    # ``X as X``: explicit re-exports (``__all__`` is computed, see ``__getattr__``).
    from taskkit.clock import FakeClock as FakeClock

    from ._base import BackendPool as BackendPool
    from ._base import KitSettings as KitSettings
    from ._base import KitTestBase as KitTestBase
    from ._base import Timing as Timing
    from .helpers import Ledger as Ledger
    from .helpers import LedgerLine as LedgerLine
    from .helpers import TaskMaker as TaskMaker
    from .helpers import unique_name as unique_name
    from .helpers import violated as violated
    from .helpers import wait_until as wait_until
    from .suite import *  # noqa: F403  (the topic classes, BackendTests, TOPICS)

#: The names exported from modules other than the suite; the suite's names come from
#: ``taskkit_testing.suite.__all__``, derived from ``BackendTests`` (the one list of topics).
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
}


def _suite_names() -> list[str]:
    # Imported on first use only: by then the pytest plugin has registered assertion
    # rewriting for the suite modules.
    suite = importlib.import_module("taskkit_testing.suite")
    return list(suite.__all__)


def _all() -> list[str]:
    return sorted({*_EXPORTS, *_suite_names(), "__version__"})


def __getattr__(name: str) -> Any:
    if name == "__all__":  # ``from taskkit_testing import *``
        return _all()
    module = _EXPORTS.get(name)
    if module is None and (name == "TOPICS" or name.endswith("Tests")):
        module = "taskkit_testing.suite" if name in _suite_names() else None
    if module is None:
        raise AttributeError(f"module 'taskkit_testing' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return _all()
