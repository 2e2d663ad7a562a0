"""A taskkit backend on the standard library's ``sqlite3``: the conformance kit's example.

Several processes on one host share a database file. WAL mode lets readers run beside the
single writer; every state change is one ``BEGIN IMMEDIATE`` transaction, which takes the
write lock up front, so two claimers can never both see a task as free (no double claim).
Every time decision uses this backend's clock (:meth:`now`), never the caller's.
"""

from __future__ import annotations

import json
import logging
import secrets
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from os import PathLike
from typing import Any, ClassVar

from taskkit import (
    Backend,
    CancelResult,
    Claim,
    ClaimBatch,
    ControlEvent,
    ControlKind,
    LeaseStatus,
    Outcome,
    OutcomeWrite,
    QueueStats,
    Task,
    TaskState,
)
from taskkit.backend import (
    OutcomeChange,
    decode_headers,
    earliest,
    encode_headers,
    outcome_changes,
)
from taskkit.clock import Clock, SystemClock

from . import _schema
from ._stats import StatsMixin

__all__ = ["SQLiteBackend"]

log = logging.getLogger(__name__)

_CONTROL_KEPT = 100
_SWEEP_BATCH = 200
_OUTCOME_COLUMNS = f"{_schema.TASK_COLUMNS}, state, result, error, finished"
# The SQL below interpolates only these module constants (column lists), never input.
_SELECT_TASKS = f"SELECT {_schema.TASK_COLUMNS}, state FROM tasks"  # noqa: S608
_SELECT_OUTCOMES = f"SELECT {_OUTCOME_COLUMNS} FROM tasks"  # noqa: S608
_INSERT_TASK = f"INSERT OR IGNORE INTO tasks ({_schema.TASK_COLUMNS}, state)"
#: A running task finishes (state, result, error, the time twice, id): the one statement for
#: every finish, a claim's outcomes (which append their fence) and "worker lost" alike.
_FINISH = (
    "UPDATE tasks SET state = ?, result = ?, error = ?, finished = ?, expires = ? + ttl,"
    " token = NULL, worker_id = NULL, cancel_requested = 0 WHERE id = ? AND state = 'running'"
)


def _task(row: Sequence[Any]) -> Task:
    return Task(
        id=row[0],
        group=row[1],
        name=row[2],
        data=bytes(row[3]),
        due=row[4],
        created=row[5],
        scheduled=row[6],
        retry_count=row[7],
        ttl=row[8],
        timeout=row[9],
        deliveries=row[10],
        headers=decode_headers(row[11]),
    )


def _outcome(row: Sequence[Any]) -> Outcome:
    result = row[13]
    return Outcome(
        task=_task(row),
        state=TaskState(row[12]),
        result=None if result is None else bytes(result),
        error=row[14],
        finished=row[15],
    )


class SQLiteBackend(StatsMixin, Backend):
    """Tasks in one SQLite database file, shared by every process on the host.

    :param path: the database file (created if missing).
    :param clock: the clock for every time decision; a :class:`taskkit.FakeClock` in tests.
    :param busy_timeout: seconds a writer waits for the write lock before giving up.
    :param max_dead_letters: the most dead letters kept; the oldest go first.
    """

    name: ClassVar[str] = "sqlite-example"
    supports_processes: ClassVar[bool] = True
    supports_notifications: ClassVar[bool] = False
    supports_fake_clock: ClassVar[bool] = True

    def __init__(
        self,
        path: str | PathLike[str],
        *,
        clock: Clock | None = None,
        busy_timeout: float = 30.0,
        max_dead_letters: int = 10_000,
    ) -> None:
        self.path = str(path)
        self.clock: Clock = clock or SystemClock()
        self.busy_timeout = busy_timeout
        self.max_dead_letters = max_dead_letters
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._closed = False
        self._setup()

    def __repr__(self) -> str:
        return f"<SQLiteBackend {self.path!r}>"

    # Pickled by configuration, never by connection: worker processes rebuild it.
    def __reduce__(self) -> tuple[Any, ...]:
        if not isinstance(self.clock, SystemClock):
            raise TypeError("a SQLiteBackend on a custom clock cannot be sent to another process")
        return (_rebuild, (self.path, self.busy_timeout, self.max_dead_letters))

    def clone(self) -> SQLiteBackend:
        return SQLiteBackend(
            self.path,
            clock=self.clock,
            busy_timeout=self.busy_timeout,
            max_dead_letters=self.max_dead_letters,
        )

    # ------------------------------------------------------------------ connections

    def _setup(self) -> None:
        deadline = time.monotonic() + self.busy_timeout
        while True:
            try:
                _schema.create(self._conn())
                return
            except sqlite3.OperationalError as exc:
                # Switching to WAL can answer "locked" without waiting while another
                # process creates the schema; it is a one-time race, so retry briefly.
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            if self._closed:
                raise RuntimeError("this SQLiteBackend is closed")
            # isolation_level=None: we issue BEGIN ourselves, so each write is explicit.
            conn = sqlite3.connect(self.path, timeout=self.busy_timeout, isolation_level=None)
            conn.execute("PRAGMA synchronous=NORMAL")  # durable against process crashes in WAL
            self._local.conn = conn
            with self._lock:
                self._connections.append(conn)
        return conn

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction holding the database's write lock from its first statement."""
        conn = self._conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def close(self) -> None:
        with self._lock:
            self._closed = True
            connections, self._connections = self._connections, []
        for conn in connections:
            try:
                conn.close()
            except sqlite3.ProgrammingError:
                pass  # made in another thread that is gone; closing is best effort
        self._local = threading.local()

    # ------------------------------------------------------------------ clock

    def now(self) -> float:
        return self.clock.time()

    # ------------------------------------------------------------------ producers

    def _insert(self, conn: sqlite3.Connection, task: Task, now: float) -> bool:
        # An expired record no longer exists as far as the contract is concerned.
        conn.execute("DELETE FROM tasks WHERE id = ? AND expires <= ?", (task.id, now))
        cur = conn.execute(
            _INSERT_TASK + " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?, 'queued')",
            (
                task.id,
                task.group,
                task.name,
                task.data,
                task.due,
                task.created,
                task.scheduled,
                task.retry_count,
                task.ttl,
                task.timeout,
                encode_headers(task.headers) or None,
            ),
        )
        return cur.rowcount == 1

    def put(self, tasks: Sequence[Task]) -> list[bool]:
        if not tasks:
            return []
        now = self.now()
        with self._write() as conn:
            return [self._insert(conn, task, now) for task in tasks]

    def put_scheduled(self, task: Task, scheduler: str, key: str, point: float) -> bool:
        now = self.now()
        with self._write() as conn:
            row = conn.execute(
                "SELECT point FROM schedule_marks WHERE scheduler = ? AND key = ?",
                (scheduler, key),
            ).fetchone()
            if row is not None and point <= row[0]:
                return False
            if not self._insert(conn, task, now):
                return False
            conn.execute(
                "INSERT INTO schedule_marks (scheduler, key, point) VALUES (?, ?, ?)"
                " ON CONFLICT (scheduler, key) DO UPDATE SET point = excluded.point",
                (scheduler, key, point),
            )
            return True

    def get_schedule_mark(self, scheduler: str, key: str) -> float | None:
        row = (
            self._conn()
            .execute(
                "SELECT point FROM schedule_marks WHERE scheduler = ? AND key = ?", (scheduler, key)
            )
            .fetchone()
        )
        return None if row is None else float(row[0])

    # ------------------------------------------------------------------ workers

    def claim(
        self, group: str, worker_id: str, limit: int, lease_seconds: float, max_deliveries: int
    ) -> ClaimBatch:
        now = self.now()
        claims: list[Claim] = []
        dead: list[Outcome] = []
        with self._write() as conn:
            self._sweep(conn, now)
            while len(claims) < limit:
                want = limit - len(claims)
                candidates = self._claimable(conn, group, now, want)
                dead_before = len(dead)
                for row in candidates:
                    state, deliveries = row[12], row[10]
                    if state == "running" and deliveries >= max_deliveries:
                        dead.append(self._dead_letter(conn, row, now))
                        continue
                    token = secrets.token_hex(16)
                    expires = now + lease_seconds
                    conn.execute(
                        "UPDATE tasks SET state = 'running', token = ?, worker_id = ?,"
                        " lease_expires = ?, deliveries = deliveries + 1 WHERE id = ?",
                        (token, worker_id, expires, row[0]),
                    )
                    task = _task(row).evolve(deliveries=deliveries + 1)
                    claims.append(Claim(task, token, expires, worker_id))
                # Dead-lettered candidates freed slots: look again, else we are done.
                if len(candidates) < want or len(dead) == dead_before:
                    break
            if len(dead) > 0:
                self._trim_dead_letters(conn)
            next_due = self._next_due(conn, group, now, full=len(claims) >= limit)
        for outcome in dead:
            log.warning(
                "task %s (%s/%s) became a dead letter: worker lost",
                outcome.task.id,
                outcome.task.group,
                outcome.task.name,
            )
        return ClaimBatch(claims, next_due, dead)

    def _claimable(
        self, conn: sqlite3.Connection, group: str, now: float, limit: int
    ) -> list[Sequence[Any]]:
        # Two index-ordered queries merged here: a single OR query would sort every
        # queued task of the group on each claim.
        queued = conn.execute(
            _SELECT_TASKS + " WHERE grp = ? AND state = 'queued' AND due <= ?"
            " ORDER BY due, created, id LIMIT ?",
            (group, now, limit),
        ).fetchall()
        expired = conn.execute(
            _SELECT_TASKS + " WHERE grp = ? AND state = 'running' AND lease_expires <= ?"
            " ORDER BY due, created, id LIMIT ?",
            (group, now, limit),
        ).fetchall()
        return sorted(queued + expired, key=lambda r: (r[4], r[5], r[0]))[:limit]

    def _next_due(
        self, conn: sqlite3.Connection, group: str, now: float, *, full: bool
    ) -> float | None:
        if full:
            ready = conn.execute(
                "SELECT 1 FROM tasks WHERE grp = ? AND state = 'queued' AND due <= ?"
                " UNION ALL SELECT 1 FROM tasks WHERE grp = ? AND state = 'running'"
                " AND lease_expires <= ? LIMIT 1",
                (group, now, group, now),
            ).fetchone()
            if ready is not None:
                return now
        row = conn.execute(
            "SELECT (SELECT MIN(due) FROM tasks WHERE grp = ? AND state = 'queued' AND due > ?),"
            " (SELECT MIN(lease_expires) FROM tasks WHERE grp = ? AND state = 'running'"
            " AND lease_expires > ?)",
            (group, now, group, now),
        ).fetchone()
        return earliest(*row)

    def _dead_letter(self, conn: sqlite3.Connection, row: Sequence[Any], now: float) -> Outcome:
        conn.execute(_FINISH, ("dead", None, "worker lost", now, now, row[0]))
        return Outcome(_task(row), TaskState.DEAD, None, "worker lost", now)

    def _trim_dead_letters(self, conn: sqlite3.Connection) -> None:
        conn.execute(
            "DELETE FROM tasks WHERE id IN (SELECT id FROM tasks WHERE state = 'dead'"
            " ORDER BY finished DESC LIMIT -1 OFFSET ?)",
            (self.max_dead_letters,),
        )

    def _sweep(self, conn: sqlite3.Connection, now: float) -> None:
        """Delete a few records whose TTL ran out (reads already treat them as gone)."""
        conn.execute(
            "DELETE FROM tasks WHERE id IN (SELECT id FROM tasks WHERE expires <= ? LIMIT ?)",
            (now, _SWEEP_BATCH),
        )

    def renew(self, claims: Sequence[Claim], lease_seconds: float) -> list[LeaseStatus]:
        if not claims:
            return []
        now = self.now()
        statuses = []
        with self._write() as conn:
            for claim in claims:
                row = conn.execute(
                    "UPDATE tasks SET lease_expires = ? WHERE id = ? AND token = ?"
                    " AND state = 'running' RETURNING cancel_requested",
                    (now + lease_seconds, claim.task.id, claim.token),
                ).fetchone()
                if row is None:
                    statuses.append(LeaseStatus.LOST)
                else:
                    statuses.append(LeaseStatus.CANCEL_REQUESTED if row[0] else LeaseStatus.OK)
        return statuses

    def record_outcomes(self, writes: Sequence[OutcomeWrite]) -> list[bool]:
        changes = outcome_changes(writes)  # checks the whole batch before anything is written
        applied = [False] * len(writes)
        if not changes:
            return applied
        now = self.now()
        with self._write() as conn:
            for change in changes:
                applied[change.index] = self._end_claim_row(conn, change, now)
            if any(c.state is TaskState.DEAD and applied[c.index] for c in changes):
                self._trim_dead_letters(conn)
        return applied

    def _end_claim_row(self, conn: sqlite3.Connection, change: OutcomeChange, now: float) -> bool:
        fence = (change.claim.task.id, change.claim.token)
        if change.due is None:  # a finish: complete, fail, discard, acknowledge_cancel, bury
            cur = conn.execute(
                _FINISH + " AND token = ?",
                (change.state.value, change.result, change.error, now, now, *fence),
            )
        elif change.retried:  # a fresh attempt: the retry counts, the deliveries start again
            cur = conn.execute(
                "UPDATE tasks SET state = 'queued', due = ?, error = ?, retry_count = retry_count"
                " + 1, deliveries = 0, token = NULL, worker_id = NULL, lease_expires = NULL"
                " WHERE id = ? AND token = ? AND state = 'running'",
                (change.due, change.error, *fence),
            )
        else:  # a defer: handed back unrun, so this claim's delivery does not count
            cur = conn.execute(
                "UPDATE tasks SET state = 'queued', due = ?, error = ?,"
                " deliveries = MAX(0, deliveries - 1), token = NULL, worker_id = NULL,"
                " lease_expires = NULL WHERE id = ? AND token = ? AND state = 'running'",
                (change.due, change.error, *fence),
            )
        return cur.rowcount == 1

    def release_worker(self, worker_id: str) -> int:
        now = self.now()
        with self._write() as conn:
            cur = conn.execute(
                "UPDATE tasks SET lease_expires = MIN(lease_expires, ?)"
                " WHERE worker_id = ? AND state = 'running'",
                (now, worker_id),
            )
            return cur.rowcount

    # ------------------------------------------------------------------ results

    def get_outcome(self, task_id: str) -> Outcome | None:
        row = (
            self._conn()
            .execute(
                _SELECT_OUTCOMES + " WHERE id = ? AND (expires IS NULL OR expires > ?)",
                (task_id, self.now()),
            )
            .fetchone()
        )
        return None if row is None else _outcome(row)

    # ------------------------------------------------------------------ control

    def cancel(self, task_id: str, reason: str = "cancelled") -> CancelResult:
        now = self.now()
        with self._write() as conn:
            row = conn.execute(
                "SELECT state FROM tasks WHERE id = ? AND (expires IS NULL OR expires > ?)",
                (task_id, now),
            ).fetchone()
            if row is None:
                return CancelResult.NOT_FOUND
            if row[0] == "queued":
                conn.execute(
                    "UPDATE tasks SET state = 'cancelled', error = ?, finished = ?,"
                    " expires = ? + ttl WHERE id = ?",
                    (reason, now, now, task_id),
                )
                return CancelResult.CANCELLED
            if row[0] == "running":
                conn.execute("UPDATE tasks SET cancel_requested = 1 WHERE id = ?", (task_id,))
                return CancelResult.REQUESTED
            return CancelResult.FINISHED

    def publish_control(self, kind: ControlKind, groups: Sequence[str] | None) -> ControlEvent:
        now = self.now()
        stored = None if groups is None else json.dumps(list(groups))
        with self._write() as conn:
            cur = conn.execute(
                "INSERT INTO control_events (kind, groups, created) VALUES (?, ?, ?)",
                (kind, stored, now),
            )
            seq = int(cur.lastrowid or 0)
            conn.execute("DELETE FROM control_events WHERE seq <= ?", (seq - _CONTROL_KEPT,))
        return ControlEvent(seq, kind, None if groups is None else tuple(groups), now)

    def read_control(self, after_seq: int) -> list[ControlEvent]:
        rows = (
            self._conn()
            .execute(
                "SELECT seq, kind, groups, created FROM control_events WHERE seq > ? ORDER BY seq",
                (after_seq,),
            )
            .fetchall()
        )
        return [
            ControlEvent(seq, kind, None if groups is None else tuple(json.loads(groups)), created)
            for seq, kind, groups, created in rows
        ]

    # ------------------------------------------------------------------ dead letters

    def list_dead_letters(self, group: str | None = None, limit: int = 100) -> list[Outcome]:
        rows = (
            self._conn()
            .execute(
                _SELECT_OUTCOMES + " WHERE state = 'dead'"
                " AND (? IS NULL OR grp = ?) AND (expires IS NULL OR expires > ?)"
                " ORDER BY finished DESC LIMIT ?",
                (group, group, self.now(), limit),
            )
            .fetchall()
        )
        return [_outcome(row) for row in rows]

    def requeue_dead_letter(self, task_id: str) -> bool:
        now = self.now()
        with self._write() as conn:
            cur = conn.execute(
                "UPDATE tasks SET state = 'queued', due = ?, deliveries = 0, error = NULL,"
                " finished = NULL, expires = NULL, token = NULL, worker_id = NULL"
                " WHERE id = ? AND state = 'dead' AND expires > ?",
                (now, task_id, now),
            )
            return cur.rowcount == 1

    # ------------------------------------------------------------------ maintenance

    def stats(self, group: str) -> QueueStats:
        counts = dict(
            self._conn()
            .execute(
                "SELECT state, COUNT(*) FROM tasks WHERE grp = ?"
                " AND state IN ('queued', 'running') GROUP BY state",
                (group,),
            )
            .fetchall()
        )
        return QueueStats(queued=counts.get("queued", 0), running=counts.get("running", 0))

    def purge(self, finished_before: float) -> int:
        with self._write() as conn:
            cur = conn.execute(
                "DELETE FROM tasks WHERE finished IS NOT NULL AND finished < ?", (finished_before,)
            )
            return cur.rowcount


def _rebuild(path: str, busy_timeout: float, max_dead_letters: int) -> SQLiteBackend:
    return SQLiteBackend(path, busy_timeout=busy_timeout, max_dead_letters=max_dead_letters)
