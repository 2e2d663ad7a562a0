"""Private databases for workload E (the Django backends): PostgreSQL and SQLite.

Every E system gets its own database: on the PostgreSQL server at ``BENCH_PG`` (default
``127.0.0.1:5432``, user ``postgres``, trust auth) one named ``taskkit_bench_<pid>_<n>``; on
SQLite one file in a temp directory. Nothing else on the server is touched: the harness only
creates and drops databases whose names start with its own prefix.

Each system's schema is migrated once, untimed, into a *template* (``..._tpl``); every run
starts from a fresh copy of it (``CREATE DATABASE … TEMPLATE``, or a file copy for SQLite),
so a run never sees the rows of the one before and no system pays for migrations in a
measurement.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import psycopg

log = logging.getLogger("bench.databases")

PG_HOST = os.environ.get("BENCH_PG", "127.0.0.1:5432")


def _pg_admin() -> psycopg.Connection[Any]:
    import psycopg

    host, _, port = PG_HOST.partition(":")
    return psycopg.connect(host=host, port=int(port or 5432), user="postgres", dbname="postgres",
                           autocommit=True, connect_timeout=5)


def postgres_available() -> str | None:
    """None when the PostgreSQL server answers, else why not."""
    try:
        conn = _pg_admin()
    except Exception as exc:
        return f"PostgreSQL at {PG_HOST} is not reachable ({exc})"
    conn.close()
    return None


def server_version_pg() -> str:
    with _pg_admin() as conn:
        row = conn.execute(b"SHOW server_version").fetchone()
    return str(row[0]) if row else "?"


class BenchDatabases:
    """Creates, copies and finally drops the E systems' databases."""

    def __init__(self) -> None:
        self.prefix = f"taskkit_bench_{os.getpid()}"
        self._dir: str | None = None
        self._pg: list[str] = []
        self._conn: psycopg.Connection[Any] | None = None

    # ------------------------------------------------------------------ names

    def _name(self, slot: int, template: bool = False) -> str:
        return f"{self.prefix}_{slot}" + ("_tpl" if template else "")

    def _file(self, slot: int, template: bool = False) -> Path:
        if self._dir is None:
            self._dir = tempfile.mkdtemp(prefix="bench-sqlite-")
        return Path(self._dir) / (f"{slot}" + ("-tpl" if template else "") + ".sqlite3")

    def url(self, kind: str, slot: int, template: bool = False) -> str:
        if kind == "sqlite":
            return f"sqlite:///{self._file(slot, template)}"
        return f"postgresql://postgres@{PG_HOST}/{self._name(slot, template)}"

    # ------------------------------------------------------------------ lifecycle

    def _execute(self, sql: str) -> None:
        if self._conn is None:
            self._conn = _pg_admin()
        self._conn.execute(sql.encode())

    def prepare(self, kind: str, slot: int, migrate: Callable[[str], None]) -> None:
        """Create the slot's template and run ``migrate(template_url)`` on it (untimed)."""
        if kind == "sqlite":
            migrate(self.url(kind, slot, template=True))
            return
        name = self._name(slot, template=True)
        self._execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        self._execute(f'CREATE DATABASE "{name}"')
        self._pg.append(name)
        migrate(self.url(kind, slot, template=True))

    def fresh(self, kind: str, slot: int) -> None:
        """Replace the slot's run database with a copy of its template."""
        if kind == "sqlite":
            target = self._file(slot)
            for suffix in ("", "-wal", "-shm", ".taskkit-lock"):
                Path(str(target) + suffix).unlink(missing_ok=True)
            shutil.copyfile(self._file(slot, template=True), target)
            return
        name = self._name(slot)
        # FORCE ends the connections a killed worker may have left behind.
        self._execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        self._execute(f'CREATE DATABASE "{name}" TEMPLATE "{self._name(slot, template=True)}"')
        if name not in self._pg:
            self._pg.append(name)

    def close(self) -> None:
        for name in reversed(self._pg):
            try:
                self._execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            except Exception:
                log.warning("could not drop database %s", name, exc_info=True)
        self._pg.clear()
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def __enter__(self) -> BenchDatabases:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
