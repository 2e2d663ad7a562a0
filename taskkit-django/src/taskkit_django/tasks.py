"""A backend for Django's Tasks framework (Django >= 6): ``@task`` functions run by taskkit.

::

    TASKS = {
        "default": {
            "BACKEND": "taskkit_django.tasks.TaskkitBackend",
            "QUEUES": ["default", "mail"],        # each queue is a taskkit group
            "OPTIONS": {"DATABASE": "default"},   # the alias with the taskkit tables
        }
    }
    TASKKIT = {"HANDLER": "taskkit_django.tasks.DjangoTasksHandler",
               "THREADS": {"default": 4, "mail": 2}}

``my_task.enqueue(...)`` stores a taskkit task (group = the queue name, name = the
function's module path) and ``manage.py taskkit_worker`` runs it. Inside
``transaction.atomic()`` the enqueue joins the transaction, like ``initiate_task``.

Capabilities, declared honestly: ``run_after`` is supported (it becomes the due time),
results can be read from any process, priorities are not (taskkit runs tasks in due
order), coroutine functions are (run with ``async_to_sync``).

Only functions decorated with ``@task`` inside an installed app are ever run: the stored
module path is checked against ``INSTALLED_APPS`` before anything is imported, and what it
names must be a Django ``Task``. Errors come back as text with the exception class path
``taskkit.errors.Failed``: no class named in stored data is ever imported.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

import django
from django.apps import apps

if django.VERSION < (6, 0):  # pragma: no cover - depends on the installed Django
    raise ImportError("taskkit_django.tasks needs Django >= 6.0 (django.tasks)")

from django.tasks.backends.base import BaseTaskBackend
from django.tasks.base import Task as DjangoTask
from django.tasks.base import TaskContext, TaskError, TaskResult, TaskResultStatus
from django.tasks.exceptions import InvalidTask, TaskResultDoesNotExist
from django.utils.json import normalize_json
from django.utils.module_loading import import_string
from taskkit import Outcome, TaskHandler, TaskState
from taskkit import Task as KitTask
from taskkit.errors import InvalidTask as KitInvalidTask

__all__ = ["DjangoTasksHandler", "TaskkitBackend"]

_STATUS = {
    TaskState.QUEUED: TaskResultStatus.READY,
    TaskState.RUNNING: TaskResultStatus.RUNNING,
    TaskState.SUCCEEDED: TaskResultStatus.SUCCESSFUL,
}
#: The exception class path reported for every failure (never one read from storage).
FAILED_CLASS_PATH = "taskkit.errors.Failed"


def resolve_task(module_path: str) -> DjangoTask[Any, Any]:
    """The ``@task`` named by ``module_path``, if it lives in an installed app."""
    if not any(module_path.startswith(config.name + ".") for config in apps.get_app_configs()):
        raise LookupError(f"{module_path!r} is not inside an installed app")
    found = import_string(module_path)
    if not isinstance(found, DjangoTask):
        raise LookupError(f"{module_path!r} is not a Django @task")
    return found


def _dt(epoch: float | None) -> datetime | None:
    return None if epoch is None else datetime.fromtimestamp(epoch, timezone.utc)


class DjangoTasksHandler(TaskHandler):
    """Runs Django ``@task`` functions stored by :class:`TaskkitBackend` (JSON in, JSON out)."""

    def handle(self, task: KitTask) -> Any:
        payload = json.loads(task.data)
        try:
            django_task = resolve_task(task.name)
        except (LookupError, ImportError) as exc:
            from taskkit import DiscardTask  # noqa: PLC0415

            raise DiscardTask(str(exc)) from exc
        args, kwargs = payload.get("args", []), payload.get("kwargs", {})
        if django_task.takes_context:
            result = _result(django_task, task, TaskResultStatus.RUNNING, args, kwargs)
            return django_task.call(TaskContext(task_result=result), *args, **kwargs)
        return django_task.call(*args, **kwargs)

    def get_retry_interval(self, task: KitTask, exception: Exception) -> float | None:
        # Django's Tasks API has no retry policy: a failure is final, as with its own backends.
        return None

    def encode_result(self, task: KitTask, result: Any) -> bytes:
        return json.dumps(normalize_json(result)).encode()


def _result(
    django_task: DjangoTask[Any, Any],
    kit_task: KitTask,
    status: Any,
    args: list[Any],
    kwargs: dict[str, Any],
    outcome: Outcome | None = None,
) -> TaskResult[Any, Any]:
    finished = outcome.finished if outcome is not None else None
    result: TaskResult[Any, Any] = TaskResult(
        task=django_task,
        id=kit_task.id,
        status=status,
        enqueued_at=_dt(kit_task.created),
        started_at=None,
        last_attempted_at=None,
        finished_at=_dt(finished),
        args=args,
        kwargs=kwargs,
        backend=django_task.backend,
        errors=[],
        worker_ids=[],
    )
    return result


class TaskkitBackend(BaseTaskBackend):
    """Django's ``TASKS`` backend on taskkit's Django ORM backend."""

    supports_defer = True
    supports_async_task = True
    supports_get_result = True
    supports_priority = False

    def __init__(self, alias: str, params: dict[str, Any]) -> None:
        super().__init__(alias, params)
        self.database = str(self.options.get("DATABASE", "default"))
        self._kit: Any = None

    @property
    def kit(self) -> Any:
        if self._kit is None:
            from ._kit import make_kit  # noqa: PLC0415

            self._kit = make_kit(DjangoTasksHandler(), using=self.database)
        return self._kit

    def enqueue(self, task: DjangoTask[Any, Any], args: Any, kwargs: Any) -> TaskResult[Any, Any]:
        self.validate_task(task)
        args, kwargs = normalize_json(list(args)), normalize_json(dict(kwargs))
        data = json.dumps({"args": args, "kwargs": kwargs}).encode()
        try:
            kit_task = self.kit.make_task(
                task.queue_name, task.module_path, data, task.run_after, encoded=True
            )
        except KitInvalidTask as exc:
            raise InvalidTask(str(exc)) from exc
        self.kit.initiate_tasks(kit_task)
        result = _result(task, kit_task, TaskResultStatus.READY, args, kwargs)
        from django.tasks.signals import task_enqueued  # noqa: PLC0415

        task_enqueued.send(type(self), task_result=result)
        return result

    def get_result(self, result_id: str) -> TaskResult[Any, Any]:
        outcome = self.kit.backend.get_outcome(result_id)
        if outcome is None:
            raise TaskResultDoesNotExist(result_id)
        try:
            django_task = resolve_task(outcome.task.name)
        except (LookupError, ImportError) as exc:
            raise TaskResultDoesNotExist(f"{result_id}: {exc}") from exc
        payload = json.loads(outcome.task.data)
        status = _STATUS.get(outcome.state, TaskResultStatus.FAILED)
        result = _result(
            django_task,
            outcome.task,
            status,
            payload.get("args", []),
            payload.get("kwargs", {}),
            outcome,
        )
        if status == TaskResultStatus.SUCCESSFUL and outcome.result is not None:
            object.__setattr__(result, "_return_value", json.loads(outcome.result))
        elif status == TaskResultStatus.FAILED:
            result.errors.append(
                TaskError(
                    exception_class_path=FAILED_CLASS_PATH,
                    traceback=outcome.error or outcome.state.value,
                )
            )
        return result

    def check(self, **kwargs: Any) -> list[Any]:
        from django.core import checks  # noqa: PLC0415

        if not apps.is_installed("taskkit_django") and not apps.is_installed(
            "taskkit.contrib.django"
        ):
            return [
                checks.Error(
                    "TaskkitBackend needs 'taskkit_django' in INSTALLED_APPS",
                    id="taskkit.E001",
                )
            ]
        return []
