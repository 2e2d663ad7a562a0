"""The example backend's tables, created on first connection."""

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

#: The columns that make up a Task, in the order ``row_to_task`` reads them.
TASK_COLUMNS = "id, grp, name, data, due, created, scheduled, retry_count, ttl, timeout, deliveries"


def create(conn: sqlite3.Connection) -> None:
    """Create the tables (idempotent); WAL mode lets readers run beside one writer."""
    conn.execute("PRAGMA journal_mode=WAL")
    conn.executescript(SCHEMA)
    conn.executescript(_stats.SCHEMA)  # the figures' tables and counting trigger
