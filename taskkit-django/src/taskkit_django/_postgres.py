"""The PostgreSQL flavour of :class:`~taskkit_django._orm.DjangoBackend`.

What differs from the portable ORM code: puts, claims and finishes are one statement each
(a put or finish with its ``pg_notify`` in the same statement, so a waiter wakes only once
the change is visible), a worker's batch of outcomes is one statement too, and waits block
on ``LISTEN`` (:mod:`taskkit_django._listen`) instead of backing off.
"""

from __future__ import annotations

import threading
import time
import types
from collections.abc import Iterable, Sequence
from typing import Any, ClassVar

from django.db import connections
from taskkit import Claim, ClaimBatch, Outcome, OutcomeWrite, Task, TaskState
from taskkit.backend import Backend, earliest

from . import _db, _listen
from ._listen import CHANNEL, OUTCOME_PREFIX, WORK_PREFIX
from ._orm import DjangoBackend
from ._rows import QUEUED, RUNNING, chunks, outcome_from_row, task_from_values

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
        t.ttl, t.timeout, t.deliveries, t.token, t.lease_expires
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
#: Many finishes (complete, fail, discard, acknowledge_cancel) in one statement, each fenced by
#: its own token exactly as :meth:`PostgresBackend._finish_row` fences one; the ids it changed
#: come back with their notifications, sent at commit like the single finish's.
_FINISH_MANY_SQL = """
WITH input AS (
    SELECT * FROM unnest(%(ids)s::text[], %(tokens)s::text[], %(states)s::text[],
                         %(results)s::bytea[], %(errors)s::text[])
        AS i(id, token, state, result, error)
), done AS (
    UPDATE taskkit_task AS t
    SET state = i.state, result = i.result, error = i.error, finished = {now},
        expires = {now} + t.ttl, worker_id = NULL, lease_expires = NULL,
        cancel_requested = false
    FROM input AS i
    WHERE t.id = i.id AND t.token = i.token AND t.state = %(running)s
    RETURNING t.id, t.token
)
SELECT id, token, pg_notify(%(channel)s, %(prefix)s || id) FROM done
"""
_FINISHED_BY = {
    "complete": TaskState.SUCCEEDED,
    "fail": TaskState.FAILED,
    "discard": TaskState.DISCARDED,
    "acknowledge_cancel": TaskState.CANCELLED,
}

#: A task's record while it lives (an expired record counts as gone), for ``get_outcome``.
_OUTCOME_SQL = """
SELECT id, "group", name, data, due, created, scheduled, retry_count, ttl, timeout,
    deliveries, state, result, error, finished
FROM taskkit_task WHERE id = %(id)s AND (expires IS NULL OR expires > {now})
"""
_OUTCOME_COLUMNS = (
    "id", "group", "name", "data", "due", "created", "scheduled", "retry_count", "ttl",
    "timeout", "deliveries", "state", "result", "error", "finished",
)

_CLAIM_COLUMNS = (
    "id", "group", "name", "data", "due", "created", "scheduled", "retry_count", "ttl",
    "timeout", "deliveries", "token", "lease_expires",
)


class PostgresBackend(DjangoBackend):
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
        finishes: dict[tuple[str, str], int] = {}
        for i, w in enumerate(writes):
            # A second write for one claim finds the token stale, as it would alone.
            if w.action in _FINISHED_BY:
                finishes.setdefault((w.claim.task.id, w.claim.token), i)
        if self.clock is not None or len(finishes) < 2:
            return super().record_outcomes(writes)
        applied = [False] * len(writes)
        done = self._finish_many([writes[i] for i in finishes.values()])
        for key, i in finishes.items():
            applied[i] = key in done
        others = [i for i, w in enumerate(writes) if w.action not in _FINISHED_BY]
        if others:  # retries: rare, and each its own primitive
            for i, ok in zip(others, super().record_outcomes([writes[i] for i in others])):
                applied[i] = ok
        return applied

    def _finish_many(self, writes: Sequence[OutcomeWrite]) -> set[tuple[str, str]]:
        """Apply finishes in one statement; the (id, token) pairs that were applied."""
        ids, tokens, states, results, errors = [], [], [], [], []
        for w in writes:
            ids.append(w.claim.task.id)
            tokens.append(w.claim.token)
            states.append(_FINISHED_BY[w.action].value)
            value = w.value.encode() if isinstance(w.value, str) else w.value
            results.append(value if w.action == "complete" else None)
            errors.append(None if w.action == "complete" else value.decode())
        params = {"ids": ids, "tokens": tokens, "states": states, "results": results,
                  "errors": errors, "running": RUNNING, "channel": CHANNEL,
                  "prefix": OUTCOME_PREFIX}
        sql = _FINISH_MANY_SQL.format(now=_db.now_sql(self.using))

        def op(replaying: bool) -> set[tuple[str, str]]:
            done = {(row[0], row[1]) for row in _db.pg_execute(self.using, sql, params)}
            if replaying:
                # The first attempt may have committed before its answer was lost: a write
                # whose row already carries its token and target state was ours.
                for w, state in zip(writes, states):
                    key = (w.claim.task.id, w.claim.token)
                    if key not in done and self._tasks().filter(
                        id=key[0], token=key[1], state=state
                    ).exists():
                        done.add(key)
            return done

        return self._run(op)  # type: ignore[no-any-return]

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
            "timeout, deliveries, cancel_requested"
        )
        row = "(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, 0, false)"
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
                ]
            params += [CHANNEL, WORK_PREFIX]
            stored.update(r[0] for r in _db.pg_execute(self.using, sql, params))
        return stored

    def _finish_row(
        self, claim: Claim, state: TaskState, result: bytes | None, error: str | None
    ) -> bool:
        # The update and its NOTIFY in one statement, one round trip, one transaction.
        params: list[Any] = []
        if self.clock is not None:
            now_sql = "%s"
            params.append(self.clock.time())
        else:
            now_sql = _db.now_sql(self.using)
        sql = (
            "WITH done AS (UPDATE taskkit_task SET state = %s, result = %s, error = %s, "  # noqa: S608
            f"finished = {now_sql}, expires = {now_sql} + ttl, worker_id = NULL, "
            "lease_expires = NULL, cancel_requested = false "
            "WHERE id = %s AND token = %s AND state = %s RETURNING id) "
            "SELECT pg_notify(%s, %s || id) FROM done"
        )
        if self.clock is not None:
            params.append(self.clock.time())
        args = [state.value, result, error, *params, claim.task.id, claim.token, RUNNING]
        args += [CHANNEL, OUTCOME_PREFIX]
        return len(_db.pg_execute(self.using, sql, args)) > 0

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
        if not self._closed:
            self._closed = True
            _listen.release(self._listener)
        super().close()
