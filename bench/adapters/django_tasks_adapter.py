"""django-tasks with its database backend (``django-tasks-db``) on PostgreSQL or SQLite.

Django 5.2 with the ``django-tasks`` backport of ``django.tasks`` (on Django 6 the same
backend runs on the built-in framework). The worker is the backend's documented command,
``manage.py db_worker``, run here through ``call_command``. It runs one task at a time, so
"P processes x N threads" becomes P x N db_worker processes: the same number of tasks in
flight as the other systems.

Django's Tasks API has no bulk enqueue, so A-bulk is not run. A result is awaited with
``TaskResult.refresh()`` (the API's way to see a new status) every millisecond.
"""

from __future__ import annotations

import os

import django
from _common import (
    RESULT,
    NotSupported,
    Spec,
    django_database,
    enqueue_sync,
    env_db_url,
    fill_sync,
    poll_until,
    roundtrips_sync,
    run_in_processes,
    tick,
)
from django.conf import settings

TUNED = os.environ.get("BENCH_VARIANT", "tuned") == "tuned"

settings.configure(
    DEBUG=False,
    INSTALLED_APPS=["django_tasks", "django_tasks_db"],
    DATABASES={"default": django_database(env_db_url())},
    TASKS={"default": {"BACKEND": "django_tasks_db.DatabaseBackend", "QUEUES": ["default"]}},
    USE_TZ=True,
    LOGGING_CONFIG=None,
)
django.setup()

from django.core.management import call_command  # noqa: E402 - needs the settings
from django.db import connections  # noqa: E402
from django_tasks import TaskResultStatus, task  # noqa: E402


@task()
def noop() -> int:
    tick()
    return RESULT


class DjangoTasksAdapter:
    def setup(self, spec: Spec) -> None:
        call_command("migrate", verbosity=0, interactive=False)

    def enqueue(self, spec: Spec) -> dict[str, float]:
        if spec.bulk:
            raise NotSupported("Django's Tasks API has no bulk enqueue")
        connections["default"].ensure_connection()
        return enqueue_sync(spec, noop.enqueue, None)

    def fill(self, spec: Spec) -> None:
        fill_sync(spec, noop.enqueue, None)

    def worker(self, spec: Spec) -> None:
        # Forked workers must not share the producer's connection.
        connections.close_all()
        options = ["--no-startup-delay", "--no-reload"]
        if TUNED:
            options += ["--interval", "0.005", "--verbosity", "0"]

        def one() -> None:
            call_command("db_worker", *options)

        run_in_processes(one, spec.procs * spec.threads)

    def roundtrip(self, spec: Spec) -> list[float]:
        def one() -> None:
            result = noop.enqueue()

            def finished() -> bool:
                result.refresh()
                return bool(result.is_finished)

            poll_until(finished)
            if result.status != TaskResultStatus.SUCCESSFUL or result.return_value != RESULT:
                raise RuntimeError(f"task ended {result.status}")

        return roundtrips_sync(one, spec)


ADAPTER = DjangoTasksAdapter()
