"""The example backend is found through its ``taskkit`` entry point, by URL."""

from __future__ import annotations

from pathlib import Path

import pytest
import taskkit
from taskkit.plugins import registries
from taskkit_sqlite_example import SQLiteBackend


class Handler(taskkit.TaskHandler):
    def handle(self, task: taskkit.Task) -> object:
        return None


def test_the_entry_point_registers_the_scheme() -> None:
    assert "sqlite-example" in registries().backends.schemes()


def test_make_kit_builds_the_backend_from_a_url(tmp_path: Path) -> None:
    path = tmp_path / "tasks.sqlite3"
    kit = taskkit.make_kit(f"sqlite-example:///{path}", Handler(), busy_timeout=5.0)
    assert isinstance(kit.backend, SQLiteBackend)
    assert kit.backend.path == str(path) and kit.backend.busy_timeout == 5.0
    result = kit.initiate_task("mail", "send", {"to": "a@example.com"})
    assert kit.backend.get_outcome(result.id) is not None
    kit.backend.close()


def test_a_url_without_a_path_is_refused() -> None:
    with pytest.raises(taskkit.ConfigurationError, match="path to the database file"):
        taskkit.make_kit("sqlite-example://", Handler())
