"""The fleet and queue figures of :class:`~taskkit_django.DjangoBackend`, every flavour.

What each costs (the contract asks every backend to say):

- ``group_stats``: one statement of five scalar subqueries: index range counts per state over
  the group's rows of ``taskkit_claim_idx`` (group, state, due, …) and an indexed ``MIN``.
  A count grows with the group's rows in that state, never with the table; on PostgreSQL
  the counts are index-only once the table is vacuumed.
- ``finished_counts``: every write that finishes tasks also upserts one
  ``taskkit_finished_count`` row per (group, state) it finished, in its own statement on
  PostgreSQL (a CTE of the outcome statement) or its own transaction on the other flavours
  (one ``INSERT … SELECT … ON CONFLICT``/``ON DUPLICATE KEY`` statement), keyed by a bucket of
  ``FINISHED_BUCKET`` seconds of the database clock and a shard per process, so concurrent
  workers do not queue on one row lock. The read sums the window's rows of the unique index
  (at most 361 buckets × shards × states).
- ``list_groups``: PostgreSQL and SQLite walk the group index with a recursive query (one
  probe per group, a loose index scan); MariaDB/MySQL does the same natively for
  ``SELECT DISTINCT``.
- the worker registry: one ``taskkit_worker`` row per live worker; a heartbeat is one
  ``UPDATE`` by primary key. Counter rows older than the longest window and workers that aged
  out are deleted by the heartbeats, at most once a minute per backend instance.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from django.db import connections
from taskkit import FinishedCounts, GroupStats, WorkerInfo
from taskkit.backend import (
    FINISHED_BUCKET,
    MAX_FINISHED_WINDOW,
    checked_heartbeat,
    checked_registration,
    checked_window,
)

from . import _db
from ._rows import DEAD, FINISHED_STATES, QUEUED, RUNNING, app_models, chunks

if TYPE_CHECKING:
    from django.db.models import QuerySet
    from django.db.models.expressions import Combinable
    from taskkit.clock import Clock

__all__ = ["SHARDS", "DjangoStatsMixin", "finished_shard"]

#: Counter rows per (group, bucket, state): writers of different processes use different ones.
SHARDS = 8
#: Seconds between two deletions of stale counter rows and registry entries by one instance.
_SWEEP_EVERY = 60.0


def finished_shard() -> int:
    """The counter shard of this process's finishing writes."""
    return os.getpid() % SHARDS


def _floor_sql(vendor: str, expr: str) -> str:
    """``floor(expr)`` typed as an integer, so a comparison with ``bucket`` stays an index range
    (a float bound would turn it into a filter); SQLite's ``CAST`` truncates, the same for
    times after 1970."""
    if vendor == "sqlite":
        return f"CAST(({expr}) AS INTEGER)"
    if vendor == "mysql":
        return f"CAST(FLOOR({expr}) AS SIGNED)"
    return f"CAST(FLOOR({expr}) AS BIGINT)"


def _loose_scan(vendor: str, table: str, column: str) -> str:
    """The distinct values of ``column``, the first column of an index of ``table``, read
    with one index probe per value."""
    if vendor == "mysql":
        # InnoDB reads DISTINCT on an index's first column with a loose index scan itself.
        return f"SELECT DISTINCT {column} FROM {table}"  # noqa: S608
    return (
        f"WITH RECURSIVE v(name) AS (SELECT MIN({column}) FROM {table} UNION ALL "  # noqa: S608
        f"SELECT (SELECT MIN({column}) FROM {table} WHERE {column} > v.name) FROM v "
        "WHERE v.name IS NOT NULL) SELECT name FROM v WHERE name IS NOT NULL"
    )


class DjangoStatsMixin:
    """Mixed into :class:`~taskkit_django.DjangoBackend` before :class:`taskkit.Backend`."""

    supports_fleet_stats: ClassVar[bool] = True

    if TYPE_CHECKING:  # provided by DjangoBackend
        using: str
        vendor: str
        clock: Clock | None

        def _run(self, fn: Any) -> Any: ...
        def _now_expr(self) -> Combinable: ...
        def _now_value(self) -> float: ...

    # ------------------------------------------------------------------ helpers

    def _now_sql(self, params: list[Any]) -> str:
        """The clock as SQL where it is written: the database's, or a placeholder whose value
        (the fake clock's) is appended to ``params``."""
        if self.clock is None:
            return _db.now_sql(self.using)
        params.append(self.clock.time())
        return "%s"

    def _quote(self, name: str) -> str:
        return str(connections[self.using].ops.quote_name(name))

    def _rows(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        with connections[self.using].cursor() as cursor:
            cursor.execute(sql, params)
            return list(cursor.fetchall())

    def _workers(self) -> QuerySet[Any]:
        workers: QuerySet[Any] = app_models().WorkerRecord.objects.using(self.using)
        return workers

    # ------------------------------------------------------------------ counting finishes

    def _count_finished(self, task_ids: Sequence[str]) -> None:
        """Count the tasks ``task_ids`` that the current transaction just finished, from their
        rows (group, state, ``finished`` on the database's clock): one upsert statement.

        The ORM paths call it inside the transaction of the finishing write (a batch of
        outcomes, a claim's "worker lost" burial, a cancel of a queued task); PostgreSQL's
        outcome statement counts in a CTE of its own instead.
        """
        if not task_ids:
            return
        tasks, group = self._quote("taskkit_task"), self._quote("group")
        bucket = _floor_sql(self.vendor, f"finished / {FINISHED_BUCKET!r}")
        for chunk in chunks(list(task_ids)):
            marks = ", ".join(["%s"] * len(chunk))
            states = ", ".join(["%s"] * len(FINISHED_STATES))
            select = (
                f"SELECT {group}, {bucket}, state, %s, COUNT(*) FROM {tasks} "  # noqa: S608
                f"WHERE id IN ({marks}) AND state IN ({states}) AND finished IS NOT NULL "
                f"GROUP BY {group}, {bucket}, state"
            )
            with connections[self.using].cursor() as cursor:
                cursor.execute(
                    self._add_counts(select), [finished_shard(), *chunk, *FINISHED_STATES]
                )

    def _add_counts(self, select: str) -> str:
        """An upsert adding the rows of ``select`` (group, bucket, outcome, shard, n) to the
        counters."""
        counts, group = self._quote("taskkit_finished_count"), self._quote("group")
        columns = f"{group}, bucket, outcome, shard, n"
        if self.vendor == "mysql":
            return (
                f"INSERT INTO {counts} ({columns}) {select} "
                "ON DUPLICATE KEY UPDATE n = n + VALUES(n)"
            )
        # "WHERE true": SQLite would read the upsert's ON as a join's.
        return (
            f"INSERT INTO {counts} ({columns}) SELECT * FROM ({select}) AS c "  # noqa: S608
            f"WHERE true ON CONFLICT ({group}, bucket, outcome, shard) "
            f"DO UPDATE SET n = {counts}.n + excluded.n"
        )

    # ------------------------------------------------------------------ queue figures

    def list_groups(self) -> list[str]:
        group = self._quote("group")
        # The counters hold only the last hour or so (the heartbeats sweep older buckets), so
        # a group with counters finished tasks recently.
        walks = [
            _loose_scan(self.vendor, self._quote(table), group)
            for table in ("taskkit_task", "taskkit_finished_count")
        ]

        def op(replaying: bool) -> list[str]:
            return sorted({row[0] for walk in walks for row in self._rows(walk, [])})

        groups: list[str] = self._run(op)
        return groups

    def group_stats(self, group: str) -> GroupStats:
        tasks, col = self._quote("taskkit_task"), self._quote("group")
        params: list[Any] = []

        def of(state: str) -> str:
            # Only quoted names and the vendor's clock are interpolated; values are params.
            params.extend([group, state])
            return f"FROM {tasks} WHERE {col} = %s AND state = %s"

        # One statement, so every figure reads the same snapshot at the same clock reading.
        # Each count is an index range (the clock bound is computed once, not per row): the
        # due and the later ones split the group's queued range, read once in all.
        sql = (
            f"SELECT {self._now_sql(params)}, "
            f"(SELECT COUNT(*) {of(QUEUED)} AND due <= {self._now_sql(params)}), "
            f"(SELECT COUNT(*) {of(QUEUED)} AND due > {self._now_sql(params)}), "
            f"(SELECT COUNT(*) {of(RUNNING)}), "
            f"(SELECT COUNT(*) {of(DEAD)} AND (expires IS NULL OR "
            f"expires > {self._now_sql(params)})), "
            f"(SELECT MIN(due) {of(QUEUED)})"
        )

        def op(replaying: bool) -> tuple[Any, ...]:
            return self._rows(sql, params)[0]

        raw_now, due, later, running, dead, oldest = self._run(op)
        at = float(raw_now)
        age = None if oldest is None or float(oldest) > at else at - float(oldest)
        return GroupStats(group, int(due), int(later), int(running), int(dead), age, at)

    def finished_counts(self, group: str, window: float = 300.0) -> FinishedCounts:
        window = checked_window(window)
        counts, col = self._quote("taskkit_finished_count"), self._quote("group")
        params: list[Any] = []
        now = self._now_sql(params)
        first = _floor_sql(self.vendor, "(s.now - %s) / %s")
        last = _floor_sql(self.vendor, "s.now / %s")
        sql = (
            f"SELECT s.now, c.outcome, SUM(c.n) FROM (SELECT {now} AS now) AS s "  # noqa: S608
            f"LEFT JOIN {counts} AS c ON c.{col} = %s AND c.bucket >= {first} "
            f"AND c.bucket <= {last} GROUP BY s.now, c.outcome"
        )
        params += [group, window, FINISHED_BUCKET, FINISHED_BUCKET]

        def op(replaying: bool) -> list[tuple[Any, ...]]:
            return self._rows(sql, params)

        rows = self._run(op)
        at = float(rows[0][0])
        found = {row[1]: int(row[2]) for row in rows if row[1] is not None}
        since = (int((at - window) // FINISHED_BUCKET)) * FINISHED_BUCKET
        return FinishedCounts.of(group, since, at, found)

    # ------------------------------------------------------------------ the worker registry

    def register_worker(
        self,
        worker_id: str,
        host: str,
        pid: int,
        threads: Mapping[str, int],
        expires_after: float,
    ) -> None:
        info = checked_registration(worker_id, host, pid, threads, expires_after)
        record = app_models().WorkerRecord

        def op(replaying: bool) -> None:
            with _db.write_transaction(self.using):
                now = self._now_value()
                self._workers().filter(id=info.id).delete()
                self._workers().bulk_create(
                    [
                        record(
                            id=info.id,
                            host=info.host,
                            pid=info.pid,
                            threads=json.dumps(dict(info.threads), separators=(",", ":")),
                            started=now,
                            heartbeat=now,
                            expires=now + float(expires_after),
                            tasks_held=0,
                        )
                    ]
                )

        self._run(op)
        self._sweep_figures(force=True)

    def heartbeat_worker(self, worker_id: str, tasks_held: int, expires_after: float) -> bool:
        after = checked_heartbeat(worker_id, tasks_held, expires_after)

        def op(replaying: bool) -> bool:
            now = self._now_expr()
            renewed = (
                self._workers()
                .filter(id=worker_id, expires__gt=now)
                .update(heartbeat=now, expires=now + after, tasks_held=tasks_held)
            )
            if not renewed:
                self._workers().filter(id=worker_id).delete()
            return bool(renewed)

        alive = bool(self._run(op))
        self._sweep_figures()
        return alive

    def deregister_worker(self, worker_id: str) -> None:
        self._run(lambda _replaying: self._workers().filter(id=worker_id).delete())

    def list_workers(self) -> list[WorkerInfo]:
        def op(replaying: bool) -> list[WorkerInfo]:
            rows = self._workers().filter(expires__gt=self._now_expr()).order_by("started", "id")
            return [
                WorkerInfo(
                    id=row.id,
                    host=row.host,
                    pid=int(row.pid),
                    threads={str(g): int(n) for g, n in json.loads(row.threads).items()},
                    started=float(row.started),
                    heartbeat=float(row.heartbeat),
                    expires=float(row.expires),
                    tasks_held=int(row.tasks_held),
                )
                for row in rows
            ]

        workers: list[WorkerInfo] = self._run(op)
        return workers

    def _sweep_figures(self, *, force: bool = False) -> None:
        """At most once a minute per instance (a heartbeat calls it; registering forces it):
        fold the shards of every finished bucket into shard 0, so a window reads one row per
        (bucket, state); delete the buckets no window reads any more and the workers that
        aged out."""
        last = self.__dict__.get("_figures_swept", -_SWEEP_EVERY)
        if not force and time.monotonic() - last < _SWEEP_EVERY:
            return
        self.__dict__["_figures_swept"] = time.monotonic()
        counts = app_models().FinishedCount.objects.using(self.using)

        def op(replaying: bool) -> None:
            with _db.write_transaction(self.using):
                now = self._now_value()
                # No write lands in a bucket two behind the clock's: they are complete.
                done = int(now // FINISHED_BUCKET) - 2
                counts.filter(
                    bucket__lt=int((now - MAX_FINISHED_WINDOW) // FINISHED_BUCKET) - 1
                ).delete()
                folding = counts.filter(bucket__lt=done).exclude(shard=0)
                # Locked first: a second sweeper waits, then finds them gone (no double fold).
                if list(folding.select_for_update().order_by("id").values_list("id", flat=True)):
                    self._fold_shards(done)
                    folding.delete()
                self._workers().filter(expires__lte=now).delete()

        self._run(op)

    def _fold_shards(self, before_bucket: int) -> None:
        """Add the shards' counts of the buckets before ``before_bucket`` to their shard 0."""
        counts, group = self._quote("taskkit_finished_count"), self._quote("group")
        select = (
            f"SELECT {group}, bucket, outcome, 0, SUM(n) FROM {counts} "  # noqa: S608
            f"WHERE bucket < %s AND shard <> 0 GROUP BY {group}, bucket, outcome"
        )
        with connections[self.using].cursor() as cursor:
            cursor.execute(self._add_counts(select), [before_bucket])
