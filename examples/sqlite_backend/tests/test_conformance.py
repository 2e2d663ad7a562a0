"""The whole taskkit conformance kit, processes included, on the example backend."""

import functools
from pathlib import Path

import pytest
from taskkit_sqlite_example import SQLiteBackend
from taskkit_testing import BackendTests
from taskkit_testing.stateful import StatefulBackendTests


@pytest.fixture
def backend_factory(tmp_path: Path) -> functools.partial[SQLiteBackend]:
    return functools.partial(SQLiteBackend, tmp_path / "tasks.sqlite3")


class TestSQLiteBackend(BackendTests):
    pass


class TestSQLiteBackendStateful(StatefulBackendTests):
    pass
