"""One Django configuration for the whole pytest process, with a database per vendor.

Django settings can be configured once per process, so every test shares them:

- ``default``: a SQLite file with the admin apps (admin and command tests);
- ``sqlite``: another SQLite file for backend tests;
- ``pg``: a PostgreSQL database created for this session on 127.0.0.1:5432 and dropped at
  the end (skipped when the server is not there);
- ``mysql``: the same on MariaDB/MySQL 127.0.0.1:3306.

Each backend test starts from empty taskkit tables (:func:`clean_alias`). Tests that need a
pristine process (the embedded mode, the ``taskkit.contrib.django`` entry, spawn) run a
child interpreter.
"""

from __future__ import annotations

import os
import shutil
import socket
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))

PG_HOST, PG_PORT = "127.0.0.1", 5432
MY_HOST, MY_PORT = "127.0.0.1", 3306

_tmp = Path(tempfile.mkdtemp(prefix="taskkit-django-tests-"))
_session_db = f"tkdj_{os.getpid()}_{uuid.uuid4().hex[:6]}"
#: alias -> URL of the databases this session uses (the URL lets spawned children rebuild).
URLS: dict[str, str] = {}


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return True
    except OSError:
        return False


def _orphaned(name: str) -> bool:
    """A database of an earlier session whose process is gone (killed before cleanup)."""
    parts = name.split("_")
    if len(parts) != 3 or not parts[1].isdigit():
        return False
    try:
        os.kill(int(parts[1]), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def _create_pg() -> bool:
    if not _reachable(PG_HOST, PG_PORT):
        return False
    try:
        import psycopg
    except ImportError:
        return False
    with psycopg.connect(
        host=PG_HOST, port=PG_PORT, user="postgres", dbname="postgres", autocommit=True
    ) as conn:
        names = conn.execute("SELECT datname FROM pg_database WHERE datname LIKE 'tkdj%'")
        for (name,) in names.fetchall():
            if _orphaned(name):
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{_session_db}"')
    return True


def _drop_pg() -> None:
    import psycopg

    with psycopg.connect(
        host=PG_HOST, port=PG_PORT, user="postgres", dbname="postgres", autocommit=True
    ) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{_session_db}" WITH (FORCE)')


def _create_mysql() -> bool:
    if not _reachable(MY_HOST, MY_PORT):
        return False
    try:
        import pymysql
    except ImportError:
        return False
    conn = pymysql.connect(host=MY_HOST, port=MY_PORT, user="root", password="")
    try:
        with conn.cursor() as cur:
            cur.execute("SHOW DATABASES LIKE 'tkdj%'")
            for (name,) in cur.fetchall():
                if _orphaned(name):
                    cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
            cur.execute(f"CREATE DATABASE `{_session_db}` CHARACTER SET utf8mb4")
    finally:
        conn.close()
    return True


def _drop_mysql() -> None:
    import pymysql

    conn = pymysql.connect(host=MY_HOST, port=MY_PORT, user="root", password="")
    try:
        with conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{_session_db}`")
    finally:
        conn.close()


def pytest_configure(config: pytest.Config) -> None:
    # The kit's workloads are sized for a dedicated CI run; three databases at full size
    # would take many minutes here. ``--taskkit-scale 1`` (or TASKKIT_SCALE) restores them.
    if getattr(config.option, "taskkit_scale", None) == 1.0:
        config.option.taskkit_scale = float(os.environ.get("TASKKIT_SCALE", "0.2"))
    import django
    from django.conf import settings
    from taskkit_django._standalone import database_settings

    URLS["default"] = f"sqlite:///{_tmp}/default.sqlite3"
    URLS["sqlite"] = f"sqlite:///{_tmp}/backend.sqlite3"
    if os.environ.get("TASKKIT_SKIP_PG") != "1" and _create_pg():
        URLS["pg"] = f"postgresql://postgres@{PG_HOST}:{PG_PORT}/{_session_db}"
    if os.environ.get("TASKKIT_SKIP_MYSQL") != "1" and _create_mysql():
        URLS["mysql"] = f"mysql://root@{MY_HOST}:{MY_PORT}/{_session_db}"
    databases = {alias: database_settings(url) for alias, url in URLS.items()}
    settings.configure(
        DATABASES=databases,
        INSTALLED_APPS=[
            "django.contrib.contenttypes",
            "django.contrib.auth",
            "django.contrib.sessions",
            "django.contrib.messages",
            "django.contrib.admin",
            "taskkit_django",
        ],
        MIDDLEWARE=[
            "django.contrib.sessions.middleware.SessionMiddleware",
            "django.contrib.auth.middleware.AuthenticationMiddleware",
            "django.contrib.messages.middleware.MessageMiddleware",
        ],
        TEMPLATES=[
            {
                "BACKEND": "django.template.backends.django.DjangoTemplates",
                "APP_DIRS": True,
                "OPTIONS": {
                    "context_processors": [
                        "django.template.context_processors.request",
                        "django.contrib.auth.context_processors.auth",
                        "django.contrib.messages.context_processors.messages",
                    ]
                },
            }
        ],
        ROOT_URLCONF="urls",
        SECRET_KEY="tests-only",
        USE_TZ=True,
        DEFAULT_AUTO_FIELD="django.db.models.BigAutoField",
        TASKKIT={"HANDLER": "handlers.EchoHandler"},
    )
    django.setup()
    from django.core.management import call_command
    from taskkit_django._standalone import migrate

    call_command("migrate", database="default", verbosity=0)
    for alias in URLS:
        if alias != "default":
            migrate(alias)


def pytest_unconfigure(config: pytest.Config) -> None:
    from django.db import connections
    from taskkit_django import _listen

    _listen.stop_all()
    for conn in connections.all(initialized_only=True):
        conn.close()
    if "pg" in URLS:
        _drop_pg()
    if "mysql" in URLS:
        _drop_mysql()
    shutil.rmtree(_tmp, ignore_errors=True)


def clean_alias(alias: str) -> None:
    """Empty the taskkit tables of ``alias``."""
    from taskkit_django.models import (
        ControlRecord,
        FinishedCount,
        ScheduleMark,
        TaskRecord,
        WorkerRecord,
    )

    for model in (TaskRecord, ScheduleMark, ControlRecord, FinishedCount, WorkerRecord):
        model.objects.using(alias).all().delete()


BACKEND_ALIASES = ["sqlite", "pg", "mysql"]


def require(alias: str) -> None:
    if alias not in URLS:
        pytest.skip(f"database server for {alias!r} is not reachable")


@pytest.fixture(params=BACKEND_ALIASES)
def alias(request: pytest.FixtureRequest) -> Iterator[str]:
    """Each database in turn, emptied."""
    require(request.param)
    clean_alias(request.param)
    yield request.param


@pytest.fixture
def backend(alias: str) -> Iterator[Any]:
    from taskkit_django import DjangoBackend

    backend = DjangoBackend(alias, url=None)
    yield backend
    backend.close()


@pytest.fixture
def tmp_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path}/tasks.sqlite3"
