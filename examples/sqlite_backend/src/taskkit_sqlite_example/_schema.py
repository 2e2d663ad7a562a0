"""The example backend's tables, created on first connection and migrated in place.

``PRAGMA user_version`` holds the schema version of a database file; :func:`create` brings
an older file up to :data:`VERSION` (each step an ``ALTER TABLE``), so upgrading the code
never needs a new database.
"""

from __future__ import annotations

import sqlite3

from . import _stats

SCHEMA = """
CREATE TABLE IF NOT EXISTS tasks (
    id              TEXT PRIMARY KEY,
    grp             TEXT NOT NULL,
    name            TEXT NOT NULL,
    data            BLOB NOT NULL,
    due             REAL NOT NULL,
    created         REAL NOT NULL,
    scheduled       REAL,
    retry_count     INTEGER NOT NULL DEFAULT 0,
    ttl             REAL NOT NULL,
    timeout         REAL,
    deliveries      INTEGER NOT NULL DEFAULT 0,
    headers         TEXT,  -- JSON (taskkit.backend.encode_headers); NULL for none
    state           TEXT NOT NULL,
    token           TEXT,
    worker_id       TEXT,
    lease_expires   REAL,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    result          BLOB,
    error           TEXT,
    finished        REAL,
    expires         REAL
);
-- Claims read queued tasks in due order and expired leases per group: one index each.
CREATE INDEX IF NOT EXISTS tasks_queued ON tasks (grp, state, due, created, id);
CREATE INDEX IF NOT EXISTS tasks_leases ON tasks (grp, state, lease_expires);
CREATE INDEX IF NOT EXISTS tasks_worker ON tasks (worker_id) WHERE state = 'running';
CREATE INDEX IF NOT EXISTS tasks_expires ON tasks (expires) WHERE expires IS NOT NULL;
CREATE INDEX IF NOT EXISTS tasks_dead ON tasks (state, finished) WHERE state = 'dead';

CREATE TABLE IF NOT EXISTS schedule_marks (
    scheduler   TEXT NOT NULL,
    key         TEXT NOT NULL,
    point       REAL NOT NULL,
    PRIMARY KEY (scheduler, key)
);

CREATE TABLE IF NOT EXISTS control_events (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    kind        TEXT NOT NULL,
    groups      TEXT,
    created     REAL NOT NULL
);
"""

#: The columns that make up a Task, in the order ``backend._task`` reads them.
TASK_COLUMNS = (
    "id, grp, name, data, due, created, scheduled, retry_count, ttl, timeout, deliveries, headers"
)

#: The schema version this code writes. 1: ``tasks.headers`` (version 0 files lack it).
VERSION = 1


def create(conn: sqlite3.Connection) -> None:
    """Create the tables and migrate an older file (idempotent); WAL mode lets readers run
    beside one writer."""
    conn.execute("PRAGMA journal_mode=WAL")
    conn.executescript(SCHEMA)
    conn.executescript(_stats.SCHEMA)  # the figures' tables and counting trigger
    if _version(conn) < VERSION:
        _migrate(conn)


def _version(conn: sqlite3.Connection) -> int:
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


def _migrate(conn: sqlite3.Connection) -> None:
    # Under the write lock, and the version read again: processes starting together on an
    # old file migrate it once.
    conn.execute("BEGIN IMMEDIATE")
    try:
        if _version(conn) < 1:
            # A file made by CREATE TABLE above already has the column; an old one does not.
            columns = {row[1] for row in conn.execute("PRAGMA table_info(tasks)")}
            if "headers" not in columns:
                conn.execute("ALTER TABLE tasks ADD COLUMN headers TEXT")
        conn.execute(f"PRAGMA user_version = {VERSION}")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
