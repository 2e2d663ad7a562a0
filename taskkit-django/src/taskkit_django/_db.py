"""What differs between databases, and the connection hygiene every primitive relies on.

- :func:`now_sql`: the database's clock as epoch seconds, per vendor.
- :func:`write_transaction`: a short transaction that, on SQLite, takes the write lock at its
  start (``BEGIN IMMEDIATE``), so two processes never read the same rows as claimable.
- :func:`run`: runs one primitive with retries: "database is locked" is retried with
  back-off (it never reaches a caller), a broken connection is closed and the primitive runs
  once more on a new one, and what still fails becomes :class:`taskkit.BackendUnavailable`.
- After a ``fork`` the child forgets (without closing) every connection it inherited.
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import threading
import time
import types
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from django.db import DatabaseError, InterfaceError, OperationalError, connections, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from taskkit.errors import BackendUnavailable

log = logging.getLogger("taskkit.django")

T = TypeVar("T")

#: How long a primitive keeps retrying a locked SQLite database before giving up.
LOCKED_RETRY_SECONDS = 300.0

_NOW_SQL = {
    # statement_timestamp() is stable within a statement, so an index can still be used.
    "postgresql": "EXTRACT(EPOCH FROM statement_timestamp())",
    "mysql": "UNIX_TIMESTAMP(NOW(6))",
    # julianday('now') is fixed for the duration of one statement (sqlite >= 3.8.?).
    "sqlite": "((julianday('now') - 2440587.5) * 86400.0)",
}


def vendor(using: str) -> str:
    return str(connections[using].vendor)


def now_sql(using: str) -> str:
    """SQL for the database's current time in epoch seconds."""
    try:
        return _NOW_SQL[vendor(using)]
    except KeyError:
        raise BackendUnavailable(
            f"database {using!r} ({vendor(using)}) is not supported: use SQLite, PostgreSQL "
            "or MariaDB/MySQL"
        ) from None


def db_now(using: str) -> float:
    """Read the database's clock."""
    with connections[using].cursor() as cursor:
        cursor.execute(f"SELECT {now_sql(using)}")
        row = cursor.fetchone()
    return float(row[0])


def pg_execute(using: str, sql: str, params: Any) -> list[tuple[Any, ...]]:
    """Run one statement on PostgreSQL with server-side parameter binding; its rows.

    Django's cursors bind parameters on the client (the values are spliced into the text),
    so every execution is parsed and planned afresh. Here the text stays the same between
    calls, which lets psycopg prepare a hot statement once per connection when the
    connection allows it (``OPTIONS["prepare_threshold"]``; Django turns prepared statements
    off by default for connection poolers). Errors are Django's, as from its own cursors.
    """
    import psycopg  # noqa: PLC0415 - PostgreSQL only

    conn = connections[using]
    conn.ensure_connection()
    with conn.wrap_database_errors, psycopg.Cursor(conn.connection) as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall() if cursor.description is not None else []


# --------------------------------------------------------------------------- transactions


def _begin_immediate(self: BaseDatabaseWrapper) -> None:
    self.cursor().execute("BEGIN IMMEDIATE")


class _SQLiteGate:
    """Queues this process's writers of one SQLite file, and the processes among themselves.

    SQLite's own busy handler polls with growing sleeps, so under steady contention a
    waiting writer can starve for long. Writers here first take a thread lock (one writer
    per process) and then an ``flock`` on a side file, a blocking kernel wait that wakes as
    soon as the holder releases it (and is released if the holder dies). SQLite's lock is then
    free by the time ``BEGIN IMMEDIATE`` runs, except for writers outside taskkit.
    """

    def __init__(self, path: str) -> None:
        self.path = path + ".taskkit-lock"
        self.lock = threading.Lock()
        self._fd: int | None = None
        self._pid = os.getpid()

    def _file(self) -> int:
        if self._fd is None or self._pid != os.getpid():
            # An inherited descriptor would share its lock with the parent: open our own.
            self._pid = os.getpid()
            self.lock = threading.Lock()
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        return self._fd

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        import fcntl  # noqa: PLC0415 - POSIX only, like this gate

        with self.lock:
            fd = self._file()
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)


_gates: dict[str, _SQLiteGate] = {}
_gates_lock = threading.Lock()


def _gate(conn: BaseDatabaseWrapper) -> contextlib.AbstractContextManager[None]:
    name = str(conn.settings_dict.get("NAME") or "")
    if not name or name == ":memory:" or "mode=memory" in name or not hasattr(os, "fork"):
        return contextlib.nullcontext()
    with _gates_lock:
        gate = _gates.get(name)
        if gate is None or gate._pid != os.getpid():
            gate = _gates[name] = _SQLiteGate(name)
    return gate.held()


@contextlib.contextmanager
def write_transaction(using: str) -> Iterator[None]:
    """A transaction for a read-then-write primitive.

    Inside the caller's ``atomic`` block it joins that transaction. On SQLite, an outermost
    transaction passes the writers' gate (:class:`_SQLiteGate`) and starts with
    ``BEGIN IMMEDIATE``: the write lock is taken before anything is read, so a claim never
    works on a snapshot another writer is about to change (and no deferred transaction has to
    upgrade its lock, which SQLite can refuse without waiting). Django >= 5.1 offers
    ``OPTIONS["transaction_mode"]``; doing it per transaction here works on every supported
    Django and leaves the project's other transactions alone.
    """
    conn = connections[using]
    if conn.vendor != "sqlite" or conn.in_atomic_block:
        with transaction.atomic(using=using, savepoint=False):
            yield
        return
    with _gate(conn):
        # An instance attribute shadows the method for this one BEGIN only.
        begin = types.MethodType(_begin_immediate, conn)
        setattr(conn, "_start_transaction_under_autocommit", begin)  # noqa: B010 - typed stubs
        atomic = transaction.atomic(using=using, savepoint=False)
        try:
            atomic.__enter__()
        finally:
            conn.__dict__.pop("_start_transaction_under_autocommit", None)
        try:
            yield
        except BaseException as exc:
            atomic.__exit__(type(exc), exc, exc.__traceback__)  # rolls back
            raise
        else:
            atomic.__exit__(None, None, None)


# --------------------------------------------------------------------------- retries


def _is_locked(exc: BaseException) -> bool:
    text = str(exc).lower()
    return (
        "database is locked" in text
        or "database table is locked" in text
        or (
            # MySQL/MariaDB: lock wait timeout (1205) and deadlock (1213) are safe to retry:
            # the server rolled the statement or transaction back.
            getattr(exc, "args", None) is not None
            and len(exc.args) > 0
            and exc.args[0] in (1205, 1213)
        )
    )


def _is_disconnect(conn: BaseDatabaseWrapper, exc: BaseException) -> bool:
    if isinstance(exc, InterfaceError):
        return True
    if conn.connection is None:
        return True
    try:
        return not conn.is_usable()
    except Exception:
        return True


def run(using: str, fn: Callable[[bool], T]) -> T:
    """Run ``fn(replaying)`` as one primitive, with the retries described in the module doc.

    ``replaying`` is True when ``fn`` runs again after a connection broke: its first run may
    have committed before the answer was lost, so fenced writes accept their own effect.
    Inside the caller's transaction nothing is retried: the error is the caller's.
    """
    conn = connections[using]
    if conn.in_atomic_block:
        return fn(False)
    _forget_inherited_connections()
    _close_if_broken(conn)
    deadline = time.monotonic() + LOCKED_RETRY_SECONDS
    delay = 0.005
    replaying = False
    while True:
        try:
            return fn(replaying)
        except (OperationalError, InterfaceError, DatabaseError) as exc:
            if _is_locked(exc) or _is_locked(exc.__cause__ or exc):
                if time.monotonic() < deadline:
                    time.sleep(delay * (0.5 + random.random()))
                    delay = min(delay * 2, 0.25)
                    continue
                raise BackendUnavailable(f"database {using!r} stayed locked: {exc}") from exc
            if not isinstance(exc, (OperationalError, InterfaceError)):
                raise
            if not _is_disconnect(conn, exc):
                raise
            # A dropped connection (server restart, idle timeout, network): start afresh.
            _close_quietly(conn)
            if replaying:
                raise BackendUnavailable(f"database {using!r} is unreachable: {exc}") from exc
            # DEBUG: during an outage every call of every thread gets here; the worker reports
            # the outage itself once (WARNING) and its end once (INFO).
            log.debug("taskkit: connection to database %r lost; reconnecting", using)
            replaying = True


def _close_if_broken(conn: BaseDatabaseWrapper) -> None:
    """Replace a connection that saw an error and no longer answers.

    Unlike ``close_old_connections`` this ignores ``CONN_MAX_AGE = 0`` (Django's default,
    meant for request/response cycles): a worker thread keeps its connection, instead of
    reconnecting for every primitive.
    """
    if conn.connection is None:
        return
    max_age = conn.settings_dict.get("CONN_MAX_AGE")
    if max_age and conn.close_at is not None and time.monotonic() >= conn.close_at:
        _close_quietly(conn)
    elif conn.errors_occurred:
        if conn.is_usable():
            conn.errors_occurred = False
        else:
            _close_quietly(conn)


def _close_quietly(conn: BaseDatabaseWrapper) -> None:
    try:
        conn.close()
    except Exception:  # the connection is already broken; we only want it gone
        conn.connection = None
    # close() leaves these set when it fails half-way; a fresh connection needs them clear.
    conn.needs_rollback = False
    conn.in_atomic_block = False
    conn.savepoint_ids = []
    conn.closed_in_transaction = False


# --------------------------------------------------------------------------- fork hygiene

_pid = os.getpid()
# Connections inherited from the parent, kept referenced so that garbage collection never
# closes them: closing would send a terminate message on the parent's socket.
_inherited: list[Any] = []


def _forget_inherited_connections() -> None:
    """In a forked child, drop the parent's connections without closing them."""
    global _pid
    if os.getpid() == _pid:
        return
    _pid = os.getpid()
    for conn in connections.all(initialized_only=True):
        if conn.connection is not None:
            _inherited.append(conn.connection)
            conn.connection = None
        conn.in_atomic_block = False
        conn.needs_rollback = False
        conn.savepoint_ids = []


def _close_sqlite_before_fork() -> None:
    """Close this thread's SQLite connections before a fork.

    SQLite keeps per-file state for the whole process (lock bookkeeping, the WAL index
    mapping); a child that inherits it from an open connection fails with "disk I/O error".
    Reopening in the parent costs a file open.
    """
    if os.getpid() != _pid:
        return
    for conn in connections.all(initialized_only=True):
        if conn.vendor == "sqlite" and conn.connection is not None and not conn.in_atomic_block:
            with contextlib.suppress(Exception):
                conn.close()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(
        before=_close_sqlite_before_fork, after_in_child=_forget_inherited_connections
    )
