"""A database file made by an older version of the example backend is migrated in place."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import taskkit
from taskkit_sqlite_example import SQLiteBackend
from taskkit_sqlite_example._schema import VERSION

# The tasks table as version 0 created it: no headers column, no user_version.
VERSION_0_TASKS = """
CREATE TABLE tasks (
    id TEXT PRIMARY KEY, grp TEXT NOT NULL, name TEXT NOT NULL, data BLOB NOT NULL,
    due REAL NOT NULL, created REAL NOT NULL, scheduled REAL,
    retry_count INTEGER NOT NULL DEFAULT 0, ttl REAL NOT NULL, timeout REAL,
    deliveries INTEGER NOT NULL DEFAULT 0, state TEXT NOT NULL, token TEXT, worker_id TEXT,
    lease_expires REAL, cancel_requested INTEGER NOT NULL DEFAULT 0, result BLOB,
    error TEXT, finished REAL, expires REAL
);
INSERT INTO tasks (id, grp, name, data, due, created, ttl, state)
VALUES ('old', 'g', 'n', x'6e756c6c', 1.0, 1.0, 3600.0, 'queued');
"""


def _columns(path: Path) -> list[str]:
    with sqlite3.connect(path) as conn:
        return [row[1] for row in conn.execute("PRAGMA table_info(tasks)")]


def _version(path: Path) -> int:
    with sqlite3.connect(path) as conn:
        return int(conn.execute("PRAGMA user_version").fetchone()[0])


def test_a_version_0_file_gains_the_headers_column_and_keeps_its_tasks(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    with sqlite3.connect(path) as conn:
        conn.executescript(VERSION_0_TASKS)
    assert "headers" not in _columns(path) and _version(path) == 0

    backend = SQLiteBackend(path)
    try:
        assert "headers" in _columns(path) and _version(path) == VERSION
        old = backend.get_outcome("old")
        assert old is not None and old.task.headers == {}
        claim = backend.claim("g", "w", 1, 30.0, 3).claims[0]
        assert (claim.task.id, dict(claim.task.headers)) == ("old", {})
        new = taskkit.Kit(backend).initiate_task("g", "n", 1, headers={"tenant": "acme"})
        stored = backend.get_outcome(new.id)
        assert stored is not None and stored.task.headers == {"tenant": "acme"}
    finally:
        backend.close()


def test_opening_a_current_file_again_changes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "new.sqlite3"
    SQLiteBackend(path).close()
    assert _version(path) == VERSION
    columns = _columns(path)
    SQLiteBackend(path).close()
    assert _columns(path) == columns and columns.count("headers") == 1
