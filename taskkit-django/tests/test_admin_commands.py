"""The admin (read-only, size-capped, two actions) and the management commands."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import clean_alias
from django.contrib.auth.models import User
from django.core.management import call_command
from django.test import Client
from taskkit import FakeClock, Task, TaskState
from taskkit_django import DjangoBackend

HERE = Path(__file__).parent


@pytest.fixture
def default_backend() -> Iterator[DjangoBackend]:
    clean_alias("default")
    backend = DjangoBackend("default")
    yield backend
    clean_alias("default")


@pytest.fixture
def admin_client() -> Client:
    user, _ = User.objects.get_or_create(
        username="admin", defaults={"is_staff": True, "is_superuser": True}
    )
    client = Client()
    client.force_login(user)
    return client


def _task(i: int, group: str = "mail", data: bytes = b'{"to": "a@example.com"}') -> Task:
    now = time.time()
    return Task(id=f"task{i}", group=group, name="send", data=data, due=now, created=now)


URL = "/admin/taskkit/taskrecord/"


def test_changelist_filters_and_searches(
    default_backend: DjangoBackend, admin_client: Client
) -> None:
    default_backend.put([_task(1), _task(2, group="reports")])
    page = admin_client.get(URL)
    assert page.status_code == 200
    assert b"task1" in page.content and b"task2" in page.content
    page = admin_client.get(URL, {"group": "reports"})
    assert b"task2" in page.content and b"task1" not in page.content
    page = admin_client.get(URL, {"state": "queued", "q": "mail"})
    assert b"task1" in page.content and b"task2" not in page.content


def test_detail_is_read_only_and_capped(
    default_backend: DjangoBackend, admin_client: Client
) -> None:
    default_backend.put([_task(1, data=b"x" * 10_000)])
    page = admin_client.get(f"{URL}task1/change/")
    assert page.status_code == 200
    body = page.content.decode()
    assert "x" * 4096 in body and "x" * 4097 not in body
    assert "10000 in all" in body
    assert 'name="_save"' not in body  # nothing to save
    # A forged POST changes nothing.
    admin_client.post(f"{URL}task1/change/", {"state": "succeeded"})
    assert default_backend.get_outcome("task1").state is TaskState.QUEUED  # type: ignore[union-attr]
    assert admin_client.get(f"{URL}add/").status_code == 403


def test_actions_requeue_dead_letters_and_cancel_queued(
    default_backend: DjangoBackend, admin_client: Client
) -> None:
    default_backend.put([_task(1, group="poison"), _task(2), _task(3)])
    clock = FakeClock(time.time())
    timed = DjangoBackend("default", clock=clock)
    claim = timed.claim("poison", "w", 1, 5, 1).claims[0]
    clock.advance(6)  # the worker "died": its lease ran out after its only delivery
    dead = timed.claim("poison", "w", 1, 30, 1).dead_lettered
    assert [o.task.id for o in dead] == [claim.task.id]
    queued = ["task2", "task3"]

    admin_client.post(URL, {"action": "requeue_dead_letters", "_selected_action": [claim.task.id]})
    assert default_backend.get_outcome(claim.task.id).state is TaskState.QUEUED  # type: ignore[union-attr]

    admin_client.post(URL, {"action": "cancel_queued", "_selected_action": queued})
    states = {t: default_backend.get_outcome(t).state for t in queued}  # type: ignore[union-attr]
    assert set(states.values()) == {TaskState.CANCELLED}


def test_purge_command_shows_progress(default_backend: DjangoBackend) -> None:
    default_backend.put([_task(i) for i in range(5)])
    for claim in default_backend.claim("mail", "w", 5, 30, 3).claims:
        default_backend.complete(claim, b"")
    out = io.StringIO()
    call_command("taskkit_purge", "--older-than", "0", "--dry-run", stdout=out)
    assert out.getvalue().startswith("5 finished record(s)")
    out = io.StringIO()
    call_command("taskkit_purge", "--older-than", "0", "--batch-size", "2", stdout=out)
    lines = out.getvalue().splitlines()
    assert lines[:3] == ["deleted 2/5 (40%)", "deleted 4/5 (80%)", "deleted 5/5 (100%)"]
    assert default_backend.count_purgeable(default_backend.now() + 1) == 0
    out = io.StringIO()
    call_command("taskkit_purge", "--older-than", "30d", stdout=out)
    assert out.getvalue().startswith("0 finished")


SETTINGS = """
DATABASES = {{"default": {{"ENGINE": "django.db.backends.sqlite3", "NAME": {db!r}}}}}
INSTALLED_APPS = ["taskkit.contrib.django"]
USE_TZ = True
TASKKIT = {{"HANDLER": "handlers.EchoHandler", "PROCESSES": 2, "THREADS": {{"g": 2}},
           "OPTIONS": {{"lease_seconds": 10}}}}
"""


def test_worker_command_runs_workers_from_settings(tmp_path: Path) -> None:
    (tmp_path / "cmd_settings.py").write_text(SETTINGS.format(db=str(tmp_path / "w.sqlite3")))
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "cmd_settings",
        "PYTHONPATH": f"{HERE}{os.pathsep}{tmp_path}",
    }
    manage = [sys.executable, "-m", "django"]
    subprocess.run([*manage, "migrate", "-v0"], env=env, check=True, cwd=tmp_path, timeout=120)
    worker = subprocess.Popen(
        [*manage, "taskkit_worker"],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        code = textwrap.dedent(
            """
            import django
            django.setup()
            from taskkit.impl.django import make_kit
            from handlers import EchoHandler
            kit = make_kit(EchoHandler())
            print(sum(kit.initiate_task("g", "echo", i).get(timeout=60) for i in range(10)))
            """
        )
        out = subprocess.run(
            [sys.executable, "-c", code],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert out.returncode == 0, out.stderr
        assert out.stdout.strip() == "45"
    finally:
        worker.send_signal(signal.SIGTERM)
        output, _ = worker.communicate(timeout=60)
    assert worker.returncode == 0, output
    assert "taskkit: 2 process(es)" in output
