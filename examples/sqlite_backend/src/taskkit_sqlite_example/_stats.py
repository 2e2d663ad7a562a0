"""The example backend's fleet and queue figures (``supports_fleet_stats``).

Finished tasks are counted by a trigger: whichever statement finishes a task (an outcome,
a claim's "worker lost", a cancel), the same transaction adds it to its group's counter of
the current 10-second bucket, so no code path can forget to count. The figures are read
with index range counts; the worker registry is a table with a row per live worker.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Mapping
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, ClassVar

from taskkit import FinishedCounts, GroupStats, WorkerInfo
from taskkit.backend import (
    FINISHED_BUCKET,
    MAX_FINISHED_WINDOW,
    checked_heartbeat,
    checked_registration,
    checked_window,
)

__all__ = ["SCHEMA", "StatsMixin"]

#: Created beside the tasks table (idempotent, so older files gain it as they open).
#: Only the bucket width is interpolated.
SCHEMA = f"""
CREATE TABLE IF NOT EXISTS finished_counts (
    grp     TEXT NOT NULL,
    bucket  INTEGER NOT NULL,  -- finished // {FINISHED_BUCKET:g}
    outcome TEXT NOT NULL,
    n       INTEGER NOT NULL,
    PRIMARY KEY (grp, bucket, outcome)
);
CREATE INDEX IF NOT EXISTS finished_counts_bucket ON finished_counts (bucket);
CREATE TRIGGER IF NOT EXISTS tasks_count_finished AFTER UPDATE OF state ON tasks
WHEN OLD.state IN ('queued', 'running') AND NEW.state NOT IN ('queued', 'running')
    AND NEW.finished IS NOT NULL
BEGIN
    INSERT INTO finished_counts (grp, bucket, outcome, n)
    VALUES (NEW.grp, CAST(NEW.finished / {FINISHED_BUCKET!r} AS INTEGER), NEW.state, 1)
    ON CONFLICT (grp, bucket, outcome) DO UPDATE SET n = n + 1;
END;

CREATE TABLE IF NOT EXISTS workers (
    id          TEXT PRIMARY KEY,
    host        TEXT NOT NULL,
    pid         INTEGER NOT NULL,
    threads     TEXT NOT NULL,  -- JSON: group -> concurrency
    started     REAL NOT NULL,
    heartbeat   REAL NOT NULL,
    expires     REAL NOT NULL,
    tasks_held  INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS workers_expires ON workers (expires);
"""  # noqa: S608

_SWEEP_EVERY = 60.0


class StatsMixin:
    """Mixed into :class:`~taskkit_sqlite_example.SQLiteBackend` before ``Backend``."""

    supports_fleet_stats: ClassVar[bool] = True

    if TYPE_CHECKING:  # provided by SQLiteBackend

        def now(self) -> float: ...
        def _conn(self) -> sqlite3.Connection: ...
        def _write(self) -> AbstractContextManager[sqlite3.Connection]: ...

    def list_groups(self) -> list[str]:
        since = (self.now() - MAX_FINISHED_WINDOW) // FINISHED_BUCKET
        rows = self._conn().execute(
            # One MIN probe of the (grp, ...) index per group: never a pass over the tasks.
            "WITH RECURSIVE g(name) AS (SELECT MIN(grp) FROM tasks UNION ALL"
            " SELECT (SELECT MIN(grp) FROM tasks WHERE grp > g.name) FROM g"
            " WHERE g.name IS NOT NULL)"
            " SELECT name FROM g WHERE name IS NOT NULL"
            " UNION SELECT grp FROM finished_counts WHERE bucket >= ?",
            (since,),
        )
        return sorted(row[0] for row in rows)

    def group_stats(self, group: str) -> GroupStats:
        now = self.now()
        of = "FROM tasks WHERE grp = ? AND state = ?"
        params = [group, "queued", now, group, "queued", now, group, "running"]
        params += [group, "dead", now, group, "queued"]
        row = (
            self._conn()
            .execute(
                f"SELECT (SELECT COUNT(*) {of} AND due <= ?),"
                f" (SELECT COUNT(*) {of} AND due > ?), (SELECT COUNT(*) {of}),"
                f" (SELECT COUNT(*) {of} AND (expires IS NULL OR expires > ?)),"
                f" (SELECT MIN(due) {of})",
                params,
            )
            .fetchone()
        )
        due, later, running, dead, oldest = row
        age = None if oldest is None or oldest > now else now - oldest
        return GroupStats(group, due, later, running, dead, age, now)

    def finished_counts(self, group: str, window: float = 300.0) -> FinishedCounts:
        window = checked_window(window)
        now = self.now()
        first, last = int((now - window) // FINISHED_BUCKET), int(now // FINISHED_BUCKET)
        rows = self._conn().execute(
            "SELECT outcome, SUM(n) FROM finished_counts WHERE grp = ? AND bucket BETWEEN ? AND ?"
            " GROUP BY outcome",
            (group, first, last),
        )
        return FinishedCounts.of(group, first * FINISHED_BUCKET, now, dict(rows.fetchall()))

    def register_worker(
        self,
        worker_id: str,
        host: str,
        pid: int,
        threads: Mapping[str, int],
        expires_after: float,
    ) -> None:
        info = checked_registration(worker_id, host, pid, threads, expires_after)
        now = self.now()
        expires = now + float(expires_after)
        with self._write() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO workers (id, host, pid, threads, started, heartbeat,"
                " expires, tasks_held) VALUES (?, ?, ?, ?, ?, ?, ?, 0)",
                (info.id, info.host, info.pid, json.dumps(dict(info.threads)), now, now, expires),
            )
            self._sweep_figures(conn, now)

    def heartbeat_worker(self, worker_id: str, tasks_held: int, expires_after: float) -> bool:
        after = checked_heartbeat(worker_id, tasks_held, expires_after)
        now = self.now()
        with self._write() as conn:
            renewed = conn.execute(
                "UPDATE workers SET heartbeat = ?, expires = ?, tasks_held = ?"
                " WHERE id = ? AND expires > ?",
                (now, now + after, tasks_held, worker_id, now),
            ).rowcount
            if not renewed:
                conn.execute("DELETE FROM workers WHERE id = ?", (worker_id,))
            self._sweep_figures(conn, now)
        return renewed == 1

    def deregister_worker(self, worker_id: str) -> None:
        with self._write() as conn:
            conn.execute("DELETE FROM workers WHERE id = ?", (worker_id,))

    def list_workers(self) -> list[WorkerInfo]:
        rows = self._conn().execute(
            "SELECT id, host, pid, threads, started, heartbeat, expires, tasks_held FROM workers"
            " WHERE expires > ? ORDER BY started, id",
            (self.now(),),
        )
        return [
            WorkerInfo(wid, host, pid, json.loads(threads), started, beat, expires, held)
            for wid, host, pid, threads, started, beat, expires, held in rows
        ]

    def _sweep_figures(self, conn: sqlite3.Connection, now: float) -> None:
        """Now and then, drop the counters no window reads and the workers that aged out."""
        last = self.__dict__.get("_figures_swept", -_SWEEP_EVERY)
        if time.monotonic() - last < _SWEEP_EVERY:
            return
        self.__dict__["_figures_swept"] = time.monotonic()
        oldest = int((now - MAX_FINISHED_WINDOW) // FINISHED_BUCKET) - 1
        conn.execute("DELETE FROM finished_counts WHERE bucket < ?", (oldest,))
        conn.execute("DELETE FROM workers WHERE expires <= ?", (now,))
