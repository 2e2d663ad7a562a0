"""The embedded mode: taskkit on a database URL, with no Django project.

``taskkit.make_kit("sqlite:///tasks.sqlite3", handler)`` lands here. When Django
settings are not configured yet, they are configured with the ``taskkit`` app and that
database, Django is set up, and the migrations run (idempotently, under a lock, so several
processes starting together are safe). Another URL in the same process becomes another
database alias. When a Django project already configured the settings, a URL may still add
an alias if the ``taskkit`` app is installed; otherwise use ``django://<alias>``.

URLs (SQLite as in SQLAlchemy and dj-database-url: three slashes, then the path)::

    sqlite:///tasks.sqlite3              relative to the current directory
    sqlite:////var/lib/app/tasks.sqlite3 absolute (four slashes)
    postgresql://user:password@host:5432/dbname?sslmode=require   (also postgres://)
    mysql://user:password@host:3306/dbname                       (also mariadb://)

A relative SQLite path is made absolute when the kit is built, so worker processes use the
same file whatever their current directory. ``sqlite:///:memory:`` (or ``sqlite://``) is
refused: such a database lives in one connection, and workers need one they can share.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import threading
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlsplit

from taskkit.errors import ConfigurationError
from taskkit.plugins import redact_url

log = logging.getLogger("taskkit.django")

SQLITE_SCHEMES = ("sqlite",)
POSTGRES_SCHEMES = ("postgresql", "postgres", "pgsql")
MYSQL_SCHEMES = ("mysql", "mariadb")
SCHEMES = SQLITE_SCHEMES + POSTGRES_SCHEMES + MYSQL_SCHEMES

_lock = threading.RLock()
_aliases: dict[str, str] = {}  # url -> alias
_migrated: set[str] = set()
_pid = os.getpid()

#: SQLite busy timeout (seconds): a connection waits this long for the write lock before
#: "database is locked"; the backend then retries with back-off on top.
SQLITE_TIMEOUT = 20.0


def database_settings(url: str) -> dict[str, Any]:
    """The ``DATABASES`` entry for ``url``."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    query = dict(parse_qsl(parts.query))
    if scheme in SQLITE_SCHEMES:
        path = sqlite_path(url)
        if query.get("mode") == "memory":
            raise ConfigurationError(_MEMORY_REFUSED.format(url=redact_url(url)))
        options: dict[str, Any] = {"timeout": float(query.pop("timeout", SQLITE_TIMEOUT))}
        options.update(query)
        return {"ENGINE": "django.db.backends.sqlite3", "NAME": path, "OPTIONS": options}
    if scheme in POSTGRES_SCHEMES:
        _ensure_postgres_driver(scheme)
        engine = "django.db.backends.postgresql"
        default_port = 5432
    elif scheme in MYSQL_SCHEMES:
        _ensure_mysql_driver()
        engine = "django.db.backends.mysql"
        default_port = 3306
        query.setdefault("charset", "utf8mb4")
    else:
        raise ConfigurationError(f"not a database URL: {redact_url(url)!r}")
    name = unquote(parts.path.lstrip("/"))
    if not name:
        raise ConfigurationError(f"{redact_url(url)!r} names no database")
    return {
        "ENGINE": engine,
        "NAME": name,
        "USER": unquote(parts.username or ""),
        "PASSWORD": unquote(parts.password or ""),
        "HOST": parts.hostname or "",
        "PORT": str(parts.port or default_port),
        "OPTIONS": query,
        # Workers hold a connection per thread for as long as they live.
        "CONN_MAX_AGE": None,
        "CONN_HEALTH_CHECKS": True,
    }


_MEMORY_REFUSED = (
    "{url}: an in-memory SQLite database lives inside one connection, so worker threads and "
    "processes cannot share it. Use a file: sqlite:///tasks.sqlite3 (relative to the current "
    "directory) or sqlite:////absolute/path/tasks.sqlite3; for tests in one process, "
    "memory:// (taskkit's in-memory backend)"
)


def sqlite_path(url: str) -> str:
    """The absolute file path of a ``sqlite://`` URL (the SQLAlchemy convention).

    ``sqlite:///tasks.sqlite3`` is relative to the current directory,
    ``sqlite:////var/lib/app/tasks.sqlite3`` absolute.

    :raises ConfigurationError: an in-memory database (``sqlite://``,
        ``sqlite:///:memory:``), or a host part (``sqlite://name/…``), which is ambiguous.
    """
    parts = urlsplit(url)
    shown = redact_url(url)
    if parts.netloc == ":memory:":
        raise ConfigurationError(_MEMORY_REFUSED.format(url=shown))
    if parts.netloc:
        raise ConfigurationError(
            f"{shown}: a SQLite URL has no host part. Write sqlite:///relative/path.sqlite3 "
            "(three slashes: relative to the current directory) or "
            "sqlite:////absolute/path.sqlite3 (four slashes)"
        )
    # Drop the one slash that separates the (empty) host from the path.
    path = unquote(parts.path)[1:]
    if not path or path == ":memory:" or path.startswith("file::memory:"):
        raise ConfigurationError(_MEMORY_REFUSED.format(url=shown))
    return os.path.abspath(path)


def canonical_url(url: str) -> str:
    """``url`` with a relative SQLite path made absolute (other URLs unchanged).

    The embedded backend pickles its URL; a worker process started with ``spawn`` from
    another directory must still find the same file.
    """
    if urlsplit(url).scheme.lower() not in SQLITE_SCHEMES:
        return url
    query = url.partition("?")[2]
    absolute = "sqlite:///" + quote(sqlite_path(url))
    return f"{absolute}?{query}" if query else absolute


def _ensure_postgres_driver(scheme: str) -> None:
    """psycopg 3 must be importable (the PostgreSQL backend binds parameters with it)."""
    try:
        import psycopg  # noqa: F401, PLC0415
    except ImportError:
        raise ConfigurationError(
            f"{scheme}:// needs the psycopg 3 driver: pip install 'taskkit-django[postgresql]' "
            "(or pip install 'psycopg[binary]')"
        ) from None


def _ensure_mysql_driver() -> None:
    """Use mysqlclient when installed, else PyMySQL in its place."""
    try:
        import MySQLdb  # noqa: F401, PLC0415
    except ImportError:
        try:
            import pymysql  # noqa: PLC0415
        except ImportError:
            raise ConfigurationError(
                "mysql:// needs a driver: pip install mysqlclient (or pymysql)"
            ) from None
        pymysql.install_as_MySQLdb()


def configure(url: str) -> str:
    """Make ``url``'s database usable through Django; returns its alias. Idempotent."""
    from django.conf import settings  # noqa: PLC0415

    with _lock:
        _forget_after_fork()
        if url in _aliases:
            return _aliases[url]
        db = database_settings(url)
        if not settings.configured:
            alias = "default"
            settings.configure(
                DATABASES={alias: db},
                INSTALLED_APPS=["taskkit_django"],
                USE_TZ=True,
                TIME_ZONE="UTC",
                DEFAULT_AUTO_FIELD="django.db.models.BigAutoField",
                LOGGING_CONFIG=None,
            )
        else:
            alias = _add_alias(url, db)
        import django  # noqa: PLC0415
        from django.apps import apps  # noqa: PLC0415

        if not apps.ready:
            django.setup(set_prefix=False)
        if not (apps.is_installed("taskkit_django") or apps.is_installed("taskkit.contrib.django")):
            raise ConfigurationError(
                "Django is configured without the taskkit app: add 'taskkit_django' to "
                "INSTALLED_APPS, or use django://<alias> with a database of your project"
            )
        migrate(alias)
        _aliases[url] = alias
        return alias


def _add_alias(url: str, db: dict[str, Any]) -> str:
    """Register another database in an already configured process."""
    from django.conf import settings  # noqa: PLC0415
    from django.db import connections  # noqa: PLC0415

    alias = "taskkit_" + hashlib.sha256(url.encode()).hexdigest()[:12]
    for existing, entry in connections.settings.items():
        if _same_database(entry, db):
            return str(existing)
    default = connections.settings["default"]
    filled = connections.configure_settings({"default": default, alias: db})[alias]
    connections.settings[alias] = filled
    settings.DATABASES[alias] = filled
    return alias


def _same_database(a: dict[str, Any], b: dict[str, Any]) -> bool:
    keys = ("ENGINE", "NAME", "HOST", "PORT", "USER")
    return all(str(a.get(k) or "") == str(b.get(k) or "") for k in keys)


def _forget_after_fork() -> None:
    global _pid
    if os.getpid() != _pid:
        _pid = os.getpid()
        # Migrations ran in the parent; aliases stay valid, the configured settings too.


# --------------------------------------------------------------------------- migrations


def migrate(alias: str) -> None:
    """Apply the ``taskkit`` migrations to ``alias`` once per process, under a lock."""
    if alias in _migrated:
        return
    from django.core.management import call_command  # noqa: PLC0415
    from django.db import connections  # noqa: PLC0415

    conn = connections[alias]
    with _migration_lock(alias):
        if conn.vendor == "sqlite":
            with conn.cursor() as cursor:
                # WAL: readers never block the writer; the mode is stored in the file.
                cursor.execute("PRAGMA journal_mode=WAL")
        call_command("migrate", "taskkit", database=alias, verbosity=0, interactive=False)
    _migrated.add(alias)


@contextlib.contextmanager
def _migration_lock(alias: str) -> Iterator[None]:
    """Serialise migrations of one database across processes."""
    from django.db import connections  # noqa: PLC0415

    conn = connections[alias]
    if conn.vendor == "sqlite":
        import fcntl  # noqa: PLC0415

        path = str(conn.settings_dict["NAME"]) + ".migrate-lock"
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        with open(path, "a+b") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)
        return
    if conn.vendor == "postgresql":
        with conn.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_lock(hashtext('taskkit migrate'))")
        try:
            yield
        finally:
            with conn.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(hashtext('taskkit migrate'))")
        return
    if conn.vendor == "mysql":
        with conn.cursor() as cursor:
            cursor.execute("SELECT GET_LOCK('taskkit_migrate', 300)")
        try:
            yield
        finally:
            with conn.cursor() as cursor:
                cursor.execute("SELECT RELEASE_LOCK('taskkit_migrate')")
        return
    yield
