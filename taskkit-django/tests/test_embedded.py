"""The embedded mode, the 0.2 import paths and the migrations, each in a fresh interpreter.

Django can be configured once per process, so these run child interpreters.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from conftest import URLS

HERE = Path(__file__).parent


def run_python(code: str, tmp_path: Path, timeout: float = 120.0, **env: str) -> str:
    script = tmp_path / "script.py"
    script.write_text(textwrap.dedent(code))
    proc = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(HERE), **env},
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


@pytest.mark.parametrize("start_method", ["fork", "spawn"])
def test_embedded_sqlite_runs_workers(tmp_path: Path, start_method: str) -> None:
    """``taskkit.make_kit("sqlite:///…")`` with no Django project: settings, migrations,
    worker processes (which rebuild the backend from its URL under spawn)."""
    out = run_python(
        f"""
        import taskkit
        from handlers import EchoHandler

        if __name__ == "__main__":
            kit = taskkit.make_kit("sqlite:///{tmp_path}/demo.sqlite3", EchoHandler(),
                                   lease_seconds=10)
            procs = kit.start_processes(2, {{"g": 2}}, start_method={start_method!r})
            try:
                results = [kit.initiate_task("g", "echo", i) for i in range(20)]
                print(sum(r.get(timeout=60) for r in results))
            finally:
                for p in procs:
                    p.terminate()
                for p in procs:
                    p.join(30)
        """,
        tmp_path,
    )
    assert out.strip() == str(sum(range(20)))


def test_embedded_mode_migrates_once_when_processes_start_together(tmp_path: Path) -> None:
    db = tmp_path / "race.sqlite3"
    code = f"""
        import taskkit
        from handlers import EchoHandler
        kit = taskkit.make_kit("sqlite:///{db}", EchoHandler())
        kit.initiate_task("g", "echo", 1)
        """
    script = tmp_path / "start.py"
    script.write_text(textwrap.dedent(code))
    env = {**os.environ, "PYTHONPATH": str(HERE)}
    procs = [
        subprocess.Popen([sys.executable, str(script)], env=env, stderr=subprocess.PIPE, text=True)
        for _ in range(4)
    ]
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
    out = run_python(
        f"""
        import taskkit
        from handlers import EchoHandler
        kit = taskkit.make_kit("sqlite:///{db}", EchoHandler())
        print(kit.backend.stats("g").queued)
        """,
        tmp_path,
    )
    assert out.strip() == "4"


@pytest.mark.parametrize("alias", ["pg", "mysql"])
def test_embedded_server_urls(tmp_path: Path, alias: str) -> None:
    if alias not in URLS:
        pytest.skip(f"{alias} server not reachable")
    out = run_python(
        f"""
        import taskkit
        from handlers import EchoHandler
        kit = taskkit.make_kit({URLS[alias]!r}, EchoHandler())
        r = kit.initiate_task("embedded", "echo", 7)
        b = kit.backend
        claim = b.claim("embedded", "w", 1, 30, 3).claims[0]
        b.complete(claim, b"7")
        print(type(b).__name__, r.get(timeout=5))
        """,
        tmp_path,
    )
    expected = "PostgresBackend" if alias == "pg" else "DjangoBackend"
    assert out.split() == [expected, "7"]


SETTINGS = """
DATABASES = {{"default": {{"ENGINE": "django.db.backends.sqlite3", "NAME": {db!r}}}}}
INSTALLED_APPS = [{app!r}]
USE_TZ = True
SECRET_KEY = "x"
"""


@pytest.mark.parametrize("app", ["taskkit.contrib.django", "taskkit_django"])
def test_installed_apps_entries_migrate_and_reverse(tmp_path: Path, app: str) -> None:
    """Both INSTALLED_APPS forms find the same migrations (label ``taskkit``), which apply
    and reverse; the 0.2 ``make_kit(handler)`` works on the result."""
    (tmp_path / "proj_settings.py").write_text(
        SETTINGS.format(db=str(tmp_path / "p.sqlite3"), app=app)
    )
    out = run_python(
        """
        import django
        django.setup()
        from django.apps import apps
        from django.core.management import call_command
        from django.db import connection
        from taskkit.impl.django import make_kit
        from handlers import EchoHandler

        print(apps.get_app_config("taskkit").name)
        call_command("migrate", verbosity=0)
        kit = make_kit(EchoHandler())
        r = kit.initiate_task("g", "echo", 1)
        print(kit.backend.get_outcome(r.id).state.value)
        call_command("migrate", "taskkit", "zero", verbosity=0)
        print(sorted(t for t in connection.introspection.table_names() if "taskkit" in t))
        call_command("migrate", "taskkit", verbosity=0)
        print(sorted(t for t in connection.introspection.table_names() if "taskkit" in t))
        call_command("makemigrations", "taskkit", "--check", "--dry-run", verbosity=0)
        """,
        tmp_path,
        DJANGO_SETTINGS_MODULE="proj_settings",
        PYTHONPATH=f"{HERE}{os.pathsep}{tmp_path}",
    )
    lines = out.splitlines()
    assert lines[0] == app
    assert lines[1] == "queued"
    assert lines[2] == "[]"
    assert lines[3] == (
        "['taskkit_control', 'taskkit_finished_count', 'taskkit_schedule_mark', 'taskkit_task', "
        "'taskkit_worker']"
    )


def test_the_headers_migration_keeps_the_tasks_of_an_older_database(tmp_path: Path) -> None:
    """A database made before ``Task.headers`` (migration 0001, a queued row of its own)
    migrates through ``0002_taskrecord_headers``: the row is kept and reads without headers,
    and new tasks store theirs."""
    (tmp_path / "proj_settings.py").write_text(
        SETTINGS.format(db=str(tmp_path / "old.sqlite3"), app="taskkit_django")
    )
    out = run_python(
        """
        import django
        django.setup()
        from django.core.management import call_command
        from django.db import connection
        import taskkit
        from taskkit_django import DjangoBackend

        call_command("migrate", "taskkit", "0001", verbosity=0)
        with connection.cursor() as cursor:  # a task as taskkit-django 1.0a1 wrote it
            cursor.execute(
                'INSERT INTO taskkit_task (id, "group", name, data, state, due, created, '
                "retry_count, ttl, deliveries, cancel_requested) "
                "VALUES ('old', 'g', 'n', x'6e756c6c', 'queued', 1.0, 1.0, 0, 3600.0, 0, 0)"
            )
        call_command("migrate", "taskkit", "0002", verbosity=0)
        backend = DjangoBackend("default")
        print(dict(backend.get_outcome("old").task.headers))
        claim = backend.claim("g", "w", 1, 30, 3).claims[0]
        print(claim.task.id, dict(claim.task.headers))
        kit = taskkit.Kit(backend)
        new = kit.initiate_task("g", "n", 1, headers={"tenant": "acme"})
        print(dict(backend.get_outcome(new.id).task.headers))
        """,
        tmp_path,
        DJANGO_SETTINGS_MODULE="proj_settings",
        PYTHONPATH=f"{HERE}{os.pathsep}{tmp_path}",
    )
    assert out.splitlines() == ["{}", "old {}", "{'tenant': 'acme'}"]


def test_make_kit_picks_the_database_alias(tmp_path: Path) -> None:
    (tmp_path / "proj_settings.py").write_text(
        'DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": "a.db"},\n'
        '             "jobs": {"ENGINE": "django.db.backends.sqlite3", "NAME": "b.db"}}\n'
        'INSTALLED_APPS = ["taskkit.contrib.django"]\nUSE_TZ = True\n'
    )
    out = run_python(
        """
        import django
        django.setup()
        from django.core.management import call_command
        import taskkit
        from taskkit.impl.django import make_kit
        from handlers import EchoHandler
        call_command("migrate", database="jobs", verbosity=0)
        kit = make_kit(EchoHandler(), using="jobs")
        kit.initiate_task("g", "echo", 1)
        print(kit.backend.using, kit.backend.stats("g").queued)
        kit2 = taskkit.make_kit("django://jobs", EchoHandler())
        print(kit2.backend.stats("g").queued)
        """,
        tmp_path,
        DJANGO_SETTINGS_MODULE="proj_settings",
        PYTHONPATH=f"{HERE}{os.pathsep}{tmp_path}",
    )
    assert out.split() == ["jobs", "1", "1"]


def test_missing_distribution_names_the_install_command(tmp_path: Path) -> None:
    out = run_python(
        """
        import sys
        sys.modules["taskkit_django"] = None  # as if taskkit-django were not installed
        for path in ("taskkit.impl.django", "taskkit.contrib.django"):
            try:
                __import__(path)
            except ImportError as exc:
                print("pip install taskkit-django" in str(exc))
        """,
        tmp_path,
    )
    assert out.split() == ["True", "True"]


README_EXAMPLE = """
import time

import django
django.setup()
from django.core.management import call_command
call_command("migrate", verbosity=0)

from taskkit.impl.django import make_kit
# The README's program: one copy for the core, Redis and Django suites.
from taskkit_testing.readme import Handler, initiate_foo, schedule_entries, worker_options

GROUP_NAME = {group!r}
Handler.group = GROUP_NAME


if __name__ == "__main__":
    kit = make_kit(Handler())
    entries = schedule_entries(Handler(), GROUP_NAME, every_second=True)
    processes = kit.start_processes(
        **worker_options(2, GROUP_NAME, entries), daemon=True
    )
    try:
        print(initiate_foo(kit, GROUP_NAME).get(timeout=60)['doubled'])
        from taskkit_django.models import TaskRecord
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            points = list(TaskRecord.objects.filter(group=GROUP_NAME, name='test3')
                          .values_list('scheduled', flat=True))
            if len(points) >= 3:
                break
            time.sleep(0.1)
        print(len(points) >= 3, len(points) == len(set(points)))
    finally:
        for p in processes:
            p.terminate()
        for p in processes:
            p.join(30)
"""


@pytest.mark.parametrize("alias", ["sqlite", "pg"])
def test_original_readme_django_example(tmp_path: Path, alias: str) -> None:
    """The 0.2 README's Django path, unchanged: two worker processes and schedule entries;
    each schedule point fires once although both processes run the schedulers."""
    if alias == "pg":
        if "pg" not in URLS:
            pytest.skip("PostgreSQL not reachable")
        from taskkit_django._standalone import database_settings

        db = database_settings(URLS["pg"])
    else:
        db = {"ENGINE": "django.db.backends.sqlite3", "NAME": str(tmp_path / "readme.sqlite3")}
    (tmp_path / "readme_settings.py").write_text(
        f"DATABASES = {{'default': {db!r}}}\n"
        "INSTALLED_APPS = ['taskkit.contrib.django']\nUSE_TZ = True\n"
    )
    (tmp_path / "readme.py").write_text(README_EXAMPLE.format(group=f"readme-{alias}"))
    proc = subprocess.run(
        [sys.executable, str(tmp_path / "readme.py")],
        env={
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "readme_settings",
            "PYTHONPATH": f"{HERE}{os.pathsep}{tmp_path}",
        },
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.split() == ["2", "True", "True"]
