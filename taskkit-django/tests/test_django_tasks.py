"""Django's Tasks framework (Django >= 6) on taskkit: enqueue, run by workers, results."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import django
import pytest

pytestmark = pytest.mark.skipif(django.VERSION < (6, 0), reason="django.tasks needs Django >= 6")

HERE = Path(__file__).parent

TASKS_MODULE = """
from django.tasks import task

@task
def add(a, b):
    return a + b

@task(queue_name="mail")
def fail():
    raise RuntimeError("nope")

@task(takes_context=True)
def ctx(context, x):
    return [context.task_result.id, x]
"""

SETTINGS = """
DATABASES = {{"default": {{"ENGINE": "django.db.backends.sqlite3", "NAME": {db!r}}}}}
INSTALLED_APPS = ["taskkit_django", "djapp"]
USE_TZ = True
TASKS = {{"default": {{"BACKEND": "taskkit_django.tasks.TaskkitBackend",
                       "QUEUES": ["default", "mail"]}}}}
"""

SCRIPT = """
import time
import django
django.setup()
from django.core.management import call_command
from django.db import transaction
call_command("migrate", verbosity=0)
from django.tasks import default_task_backend
from django.tasks.exceptions import InvalidTask
import taskkit_django
from taskkit_django.tasks import DjangoTasksHandler
from djapp.tasks import add, ctx, fail

print(default_task_backend.supports_defer, default_task_backend.supports_priority)
try:
    add.using(priority=5).enqueue(1, 2)
except InvalidTask:
    print("priority refused")
try:
    with transaction.atomic():
        lost = add.enqueue(1, 1)
        raise RuntimeError
except RuntimeError:
    pass
kit = taskkit_django.make_kit(DjangoTasksHandler())
procs = kit.start_processes(1, {"default": 2, "mail": 1})
try:
    r, f, c = add.enqueue(2, 3), fail.enqueue(), ctx.enqueue(9)
    deadline = time.monotonic() + 60
    while not all(x.is_finished for x in (r, f, c)) and time.monotonic() < deadline:
        for x in (r, f, c):
            x.refresh()
        time.sleep(0.05)
    print(r.status, r.return_value, f.status, f.errors[0].exception_class_path)
    print(c.return_value == [c.id, 9], add.get_result(r.id).return_value)
    try:
        add.get_result(lost.id)
    except Exception as exc:
        print(type(exc).__name__)
finally:
    for p in procs:
        p.terminate()
"""


def test_tasks_framework_backend(tmp_path: Path) -> None:
    (tmp_path / "djapp").mkdir()
    (tmp_path / "djapp" / "__init__.py").write_text("")
    (tmp_path / "djapp" / "tasks.py").write_text(TASKS_MODULE)
    (tmp_path / "tasks_settings.py").write_text(SETTINGS.format(db=str(tmp_path / "db.sqlite3")))
    (tmp_path / "run.py").write_text(textwrap.dedent(SCRIPT))
    proc = subprocess.run(
        [sys.executable, str(tmp_path / "run.py")],
        env={
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "tasks_settings",
            "PYTHONPATH": f"{tmp_path}{os.pathsep}{HERE}",
        },
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.splitlines() == [
        "True False",
        "priority refused",
        "SUCCESSFUL 5 FAILED taskkit.errors.Failed",
        "True 5",
        "TaskResultDoesNotExist",
    ]
