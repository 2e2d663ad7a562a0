"""The PostgreSQL flavour of :class:`~taskkit_django._orm.DjangoBackend`.

What differs from the portable ORM code: puts, claims and a worker's batch of outcomes are
one statement each (with their ``pg_notify`` in the same statement, so a waiter wakes only
once the change is visible), and waits block on ``LISTEN`` (:mod:`taskkit_django._listen`)
instead of backing off.
"""

from __future__ import annotations

import threading
import time
import types
from collections.abc import Iterable, Sequence
from typing import Any, ClassVar

from django.db import connections
from taskkit import Claim, ClaimBatch, Outcome, OutcomeWrite, Task, TaskState
from taskkit.backend import FINISHED_BUCKET, Backend, earliest, outcome_changes

from . import _db, _listen
from ._aio import AsyncPostgresMixin
from ._listen import CHANNEL, OUTCOME_PREFIX, WORK_PREFIX
from ._orm import DjangoBackend
from ._rows import (
    QUEUED,
    RUNNING,
    TASK_FIELDS,
    chunks,
    headers_column,
    outcome_from_row,
    task_from_values,
)
from ._stats import finished_shard

__all__ = ["PostgresBackend"]

#: The whole claim of queued tasks as one statement (so one round trip and one commit, with no
#: transaction held open from the client): lock the first ``limit`` due tasks that nobody
#: else has locked, mark them running under a fresh token each, and report the clock and
#: what is pending next. It claims nothing while a lease of the group has run out: expired
#: leases come first (reclaimed or dead-lettered by the general path, which the caller then
#: takes). The subqueries read the statement's snapshot, taken before the update: the
#: earliest queued due time leaves out what this claim took, and the earliest running lease
#: cannot include it.
_CLAIM_SQL = """
WITH picked AS (
    SELECT id FROM taskkit_task
    WHERE "group" = %(group)s AND state = %(queued)s AND due <= {now}
      AND NOT EXISTS (
          SELECT 1 FROM taskkit_task
          WHERE "group" = %(group)s AND state = %(running)s AND lease_expires <= {now})
    ORDER BY due, created, id
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
), claimed AS (
    UPDATE taskkit_task AS t
    SET state = %(running)s,
        token = md5(random()::text || clock_timestamp()::text || t.id),
        worker_id = %(worker)s,
        lease_expires = {now} + %(lease)s,
        deliveries = t.deliveries + 1
    FROM picked WHERE t.id = picked.id
    RETURNING t.id, t."group", t.name, t.data, t.due, t.created, t.scheduled, t.retry_count,
        t.ttl, t.timeout, t.deliveries, t.headers, t.token, t.lease_expires
)
SELECT s.now, s.queued_min, s.running_min, c.*
FROM (
    SELECT {now} AS now,
        (SELECT MIN(due) FROM taskkit_task
         WHERE "group" = %(group)s AND state = %(queued)s
           AND id NOT IN (SELECT id FROM picked)) AS queued_min,
        (SELECT MIN(lease_expires) FROM taskkit_task
         WHERE "group" = %(group)s AND state = %(running)s) AS running_min
) AS s
LEFT JOIN claimed AS c ON true
"""
#: A batch of outcomes in one statement, each fenced by its own token as the ORM's update is
#: (:meth:`DjangoBackend._apply_outcome`): a finish sets its state, result and error, stamps
#: the clock and the expiry; a retry or defer (``due`` set) queues the task again, a retry
#: counting itself and starting a fresh attempt, a defer handing back this claim's delivery.
#: The rows it changed come back with their notifications (the task's waiters for a finish,
#: the group's claimers for a requeue), sent at commit like every other. The same statement
#: counts the finishes (``finished_counts``): one upsert per (group, state) of the batch into
#: this process's shard of the current bucket, so a count commits with its outcome.
_OUTCOMES_SQL = """
WITH input AS (
    SELECT * FROM unnest(%(ids)s::text[], %(tokens)s::text[], %(states)s::text[],
                         %(results)s::bytea[], %(errors)s::text[],
                         %(dues)s::double precision[], %(retried)s::boolean[])
        AS i(id, token, state, result, error, due, retried)
), done AS (
    UPDATE taskkit_task AS t
    SET state = i.state, result = i.result, error = i.error,
        due = COALESCE(i.due, t.due),
        retry_count = t.retry_count + CASE WHEN i.retried THEN 1 ELSE 0 END,
        deliveries = CASE WHEN i.due IS NULL THEN t.deliveries
                          WHEN i.retried THEN 0 ELSE GREATEST(t.deliveries - 1, 0) END,
        finished = CASE WHEN i.due IS NULL THEN {now} END,
        expires = CASE WHEN i.due IS NULL THEN {now} + t.ttl END,
        cancel_requested = i.due IS NOT NULL AND t.cancel_requested,
        worker_id = NULL, lease_expires = NULL
    FROM input AS i
    WHERE t.id = i.id AND t.token = i.token AND t.state = %(running)s
    RETURNING t.id, t.token, t."group", i.due IS NULL AS finished, t.state, t.finished AS at
), counted AS (
    INSERT INTO taskkit_finished_count AS c ("group", bucket, outcome, shard, n)
    SELECT d."group", floor(d.at / %(bucket)s), d.state, %(shard)s, count(*)
    FROM done AS d WHERE d.finished GROUP BY 1, 2, 3
    ON CONFLICT ("group", bucket, outcome, shard) DO UPDATE SET n = c.n + EXCLUDED.n
)
SELECT id, token,
    pg_notify(%(channel)s, CASE WHEN finished THEN %(outcome)s || id ELSE %(work)s || "group" END)
FROM done
"""

#: A task's record while it lives (an expired record counts as gone), for ``get_outcome``.
#: The column lists here and in ``_CLAIM_SQL`` follow ``_rows.TASK_FIELDS``.
_OUTCOME_SQL = """
SELECT id, "group", name, data, due, created, scheduled, retry_count, ttl, timeout,
    deliveries, headers, state, result, error, finished
FROM taskkit_task WHERE id = %(id)s AND (expires IS NULL OR expires > {now})
"""
_OUTCOME_COLUMNS = (*TASK_FIELDS, "state", "result", "error", "finished")

_CLAIM_COLUMNS = (*TASK_FIELDS, "token", "lease_expires")


class PostgresBackend(AsyncPostgresMixin, DjangoBackend):
    """The PostgreSQL flavour: waits block on ``LISTEN`` instead of backing off."""

    supports_notifications: ClassVar[bool] = True
    for_vendor: ClassVar[str | None] = "postgresql"

    def __init__(self, using: str = "default", **options: Any) -> None:
        super().__init__(using, **options)
        # Per (group, thread): the notification count its last claim saw.
        self._seen: dict[tuple[str, int], int] = {}
        self._listener = _listen.acquire(using)
        self._closed = False

    def _notify(self, payloads: Iterable[str]) -> None:
        payloads = list(payloads)
        if not payloads:
            return
        with connections[self.using].cursor() as cursor:
            cursor.execute(
                "SELECT pg_notify(%s, p) FROM unnest(%s::text[]) AS p", [CHANNEL, payloads]
            )

    def claim(
        self,
        group: str,
        worker_id: str,
        limit: int,
        lease_seconds: float,
        max_deliveries: int,
    ) -> ClaimBatch:
        # Fake clocks take the general path; so do expired leases (reclaim or dead-letter),
        # which the statement reports instead of claiming.
        if self.clock is not None or limit < 1:
            return super().claim(group, worker_id, limit, lease_seconds, max_deliveries)
        self._maybe_sweep()

        def op(replaying: bool) -> ClaimBatch | None:
            self._before_claim(group)
            return self._claim_statement(group, worker_id, limit, lease_seconds)

        batch: ClaimBatch | None = self._run(op)
        if batch is None:
            return super().claim(group, worker_id, limit, lease_seconds, max_deliveries)
        return batch

    def _claim_statement(
        self, group: str, worker_id: str, limit: int, lease_seconds: float
    ) -> ClaimBatch | None:
        """The one-statement claim; None when a lease of the group has run out."""
        params: dict[str, Any] = {
            "group": group,
            "queued": QUEUED,
            "running": RUNNING,
            "limit": limit,
            "worker": worker_id,
            "lease": lease_seconds,
        }
        rows = _db.pg_execute(self.using, _CLAIM_SQL.format(now=_db.now_sql(self.using)), params)
        now, queued_min, running_min = (None if v is None else float(v) for v in rows[0][:3])
        assert now is not None
        # The general path's hint: it then looks for the expired leases at once.
        self._lease_hints[group] = (running_min, now, time.monotonic())
        if running_min is not None and running_min <= now:
            return None
        claims = []
        for row in rows:
            if row[3] is None:  # the LEFT JOIN's empty row: nothing claimed
                continue
            values = dict(zip(_CLAIM_COLUMNS, row[3:]))
            task = task_from_values(values, deliveries=int(values["deliveries"]))
            claims.append(Claim(task, values["token"], float(values["lease_expires"]), worker_id))
        claims.sort(key=lambda c: (c.task.due, c.task.created, c.task.id))
        return ClaimBatch(claims, earliest(queued_min, running_min), [])

    def record_outcomes(self, writes: Sequence[OutcomeWrite]) -> list[bool]:
        changes = outcome_changes(writes)
        applied = [False] * len(writes)
        if not changes:
            return applied
        params: dict[str, Any] = {
            "ids": [c.claim.task.id for c in changes],
            "tokens": [c.claim.token for c in changes],
            "states": [c.state.value for c in changes],
            "results": [c.result for c in changes],
            "errors": [c.error for c in changes],
            "dues": [c.due for c in changes],
            "retried": [c.retried for c in changes],
            "running": RUNNING,
            "channel": CHANNEL,
            "outcome": OUTCOME_PREFIX,
            "work": WORK_PREFIX,
            "bucket": FINISHED_BUCKET,
            "shard": finished_shard(),
        }
        if self.clock is None:
            now = _db.now_sql(self.using)
        else:
            now, params["now"] = "%(now)s", self.clock.time()
        sql = _OUTCOMES_SQL.format(now=now)

        def op(replaying: bool) -> set[tuple[str, str]]:
            done = {(row[0], row[1]) for row in _db.pg_execute(self.using, sql, params)}
            if replaying:
                # The first attempt may have committed before its answer was lost: a write
                # whose row already carries its token and target state was ours.
                for change in changes:
                    key = (change.claim.task.id, change.claim.token)
                    if key not in done and self._replayed(change.claim, change.state):
                        done.add(key)
            return done

        done: set[tuple[str, str]] = self._run(op)
        for change in changes:
            applied[change.index] = (change.claim.task.id, change.claim.token) in done
        if any(c.state is TaskState.DEAD and applied[c.index] for c in changes):
            self._run(lambda _replaying: self._trim_dead_letters())
        return applied

    def _store_new(self, tasks: Sequence[Task]) -> set[str]:
        # Autocommit statements: each insert (of a chunk) also notifies the workers itself.
        return self._insert_over_expired(tasks, self._insert_notify)

    def _insert_notify(self, tasks: Sequence[Task]) -> set[str]:
        """Insert-or-ignore and NOTIFY in one statement per chunk; the ids it stored.

        PostgreSQL delivers identical notifications of one transaction once, so a bulk put
        wakes each group's workers once.
        """
        stored: set[str] = set()
        columns = (
            'id, "group", name, data, state, due, created, scheduled, retry_count, ttl, '
            "timeout, headers, deliveries, cancel_requested"
        )
        row = "(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, 0, false)"
        for chunk in chunks(tasks):
            sql = (
                f"WITH ins AS (INSERT INTO taskkit_task ({columns}) VALUES "  # noqa: S608
                + ", ".join([row] * len(chunk))
                + ' ON CONFLICT (id) DO NOTHING RETURNING id, "group") '
                'SELECT id, pg_notify(%s, %s || "group") FROM ins'
            )
            params: list[Any] = []
            for t in chunk:
                params += [
                    t.id,
                    t.group,
                    t.name,
                    t.data,
                    QUEUED,
                    t.due,
                    t.created,
                    t.scheduled,
                    t.retry_count,
                    t.ttl,
                    t.timeout,
                    headers_column(t),
                ]
            params += [CHANNEL, WORK_PREFIX]
            stored.update(r[0] for r in _db.pg_execute(self.using, sql, params))
        return stored

    def _before_claim(self, group: str) -> None:
        listener = self._listener
        ident = threading.get_ident()
        if listener.ensure_started(wait=0.0 if listener.ready else 2.0):
            self._seen[(group, ident)] = listener.waiters.watch(WORK_PREFIX + group)
            listener.waiters.unwatch(WORK_PREFIX + group)
        else:
            self._seen.pop((group, ident), None)

    def wait_for_work(self, group: str, timeout: float) -> None:
        seen = self._seen.get((group, threading.get_ident()))
        if seen is None or not self._listener.ready:
            time.sleep(max(0.0, min(timeout, 0.05)))
            return
        self._listener.waiters.wait(WORK_PREFIX + group, seen, timeout)

    def interrupt_waits(self) -> None:
        # Every waiter of this process looks again (spurious wake-ups are allowed).
        self._listener.waiters.wake_all()

    def get_outcome(self, task_id: str) -> Outcome | None:
        # The waiting producer's read after its notification: raw SQL saves the ORM's query
        # compilation on the round trip's critical path.
        if self.clock is not None:
            return super().get_outcome(task_id)
        sql = _OUTCOME_SQL.format(now=_db.now_sql(self.using))

        def op(replaying: bool) -> Outcome | None:
            rows = _db.pg_execute(self.using, sql, {"id": task_id})
            if not rows:
                return None
            return outcome_from_row(types.SimpleNamespace(**dict(zip(_OUTCOME_COLUMNS, rows[0]))))

        return self._run(op)  # type: ignore[no-any-return]

    def wait_for_outcome(self, task_id: str, timeout: float) -> Outcome | None:
        listener = self._listener
        if not listener.ensure_started(wait=0.0 if listener.ready else 2.0):
            return Backend.wait_for_outcome(self, task_id, timeout)
        key = OUTCOME_PREFIX + task_id
        deadline = time.monotonic() + timeout
        seen = listener.waiters.watch(key)
        try:
            while True:
                outcome = self.get_outcome(task_id)
                remaining = deadline - time.monotonic()
                if outcome is None or outcome.state.finished or remaining <= 0:
                    return outcome
                if listener.ready:
                    listener.waiters.wait(key, seen, remaining)
                else:
                    time.sleep(min(0.05, remaining))
                seen = listener.waiters.watch(key)
                listener.waiters.unwatch(key)
        finally:
            listener.waiters.unwatch(key)

    def close(self) -> None:
        self._close_async()
        if not self._closed:
            self._closed = True
            _listen.release(self._listener)
        super().close()
