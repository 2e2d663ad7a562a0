"""The hook reference: every hook taskkit calls, with its parameters and meaning.

Plugins implement these with :data:`taskkit.hookimpl` and register through the ``taskkit``
entry-point group (``[project.entry-points.taskkit] mybackend = "my_pkg.plugin"``). The
built-in parts (the in-memory backend, JSON, the retry policies, ``RegularSchedule``) register
through the same hooks as third-party ones. Unknown ``taskkit_*`` implementations fail at load
time.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from ._task import Task
    from .plugins import (
        BackendRegistry,
        RetryPolicyRegistry,
        ScheduleRegistry,
        SerializerRegistry,
    )

NAME = "taskkit"

hookspec = pluggy.HookspecMarker(NAME)

# --------------------------------------------------------------------------- registration


@hookspec
def taskkit_register_backends(registry: BackendRegistry) -> None:
    """Register backend factories by name and URL scheme.

    :param registry: call ``registry.add(name, factory, schemes=(...))``; ``factory(url,
        **options)`` returns a :class:`taskkit.backend.Backend`.

    .. versionadded:: 1.0
    """


@hookspec
def taskkit_register_serializers(registry: SerializerRegistry) -> None:
    """Register serializers by name.

    :param registry: call ``registry.add(name, factory)``; ``factory(**options)`` returns an
        object with ``dumps(value) -> bytes`` and ``loads(bytes) -> value``.

    .. versionadded:: 1.0
    """


@hookspec
def taskkit_register_retry_policies(registry: RetryPolicyRegistry) -> None:
    """Register retry policies by name.

    :param registry: call ``registry.add(name, factory)``; ``factory(**options)`` returns a
        :class:`taskkit.retry.RetryPolicy`.

    .. versionadded:: 1.0
    """


@hookspec
def taskkit_register_schedules(registry: ScheduleRegistry) -> None:
    """Register schedule kinds by name (``"cron"``, ...).

    :param registry: call ``registry.add(name, factory)``; ``factory(expression, tzinfo)``
        returns a :class:`taskkit.schedule.Schedule`, and raises ``ValueError`` for a bad
        expression.

    .. versionadded:: 1.0
    """


# --------------------------------------------------------------------------- task lifecycle


@hookspec
def taskkit_task_initiated(task: Task) -> None:
    """A producer stored ``task`` (called once per task actually stored).

    :param task: the stored task.

    .. versionadded:: 1.0
    """


@hookspec
def taskkit_task_started(task: Task, worker_id: str) -> None:
    """A worker is about to run ``task``.

    :param task: the claimed task (``deliveries`` counts this delivery).
    :param worker_id: the worker process's id.

    .. versionadded:: 1.0
    """


@hookspec
def taskkit_task_succeeded(task: Task, duration: float) -> None:
    """``task``'s handler returned and its result was stored.

    :param task: the task.
    :param duration: seconds the handler ran.

    .. versionadded:: 1.0
    """


@hookspec
def taskkit_task_retried(task: Task, exception: BaseException, delay: float) -> None:
    """``task`` failed and was re-queued to run again after ``delay`` seconds.

    :param task: the task as it ran (``retry_count`` before the increment).
    :param exception: what the handler raised.
    :param delay: seconds until the next attempt.

    .. versionadded:: 1.0
    """


@hookspec
def taskkit_task_failed(task: Task, exception: BaseException | None, message: str) -> None:
    """``task`` failed for good (no retry left, a timeout, or a result too large).

    :param task: the task.
    :param exception: what the handler raised, or None when the core failed it.
    :param message: the stored error text.

    .. versionadded:: 1.0
    """


@hookspec
def taskkit_task_discarded(task: Task, reason: str) -> None:
    """``task`` was discarded (``DiscardTask``, an unknown name, an undecodable record).

    :param task: the task.
    :param reason: why.

    .. versionadded:: 1.0
    """


@hookspec
def taskkit_task_dead_lettered(task: Task, reason: str) -> None:
    """``task`` became a dead letter (it exhausted its deliveries, e.g. kept killing workers).

    :param task: the task.
    :param reason: why.

    .. versionadded:: 1.0
    """


@hookspec
def taskkit_worker_started(worker_id: str, groups: list[str]) -> None:
    """A worker process started and is about to claim work for ``groups``.

    :param worker_id: the worker process's id.
    :param groups: the groups it serves.

    .. versionadded:: 1.0
    """


@hookspec
def taskkit_worker_stopped(worker_id: str) -> None:
    """A worker process finished its shutdown.

    :param worker_id: the worker process's id.

    .. versionadded:: 1.0
    """


@hookspec(firstresult=True)
def taskkit_execute_task(task: Task, call: Callable[[], Any]) -> Any:
    """Run the handler for ``task``: wrap this hook to time, trace or meter every execution.

    Implement it with ``@hookimpl(wrapper=True)`` and ``yield``: the value sent back is the
    handler's return value, and exceptions propagate through the ``yield``. The innermost
    implementation (taskkit's own) calls ``call()``.

    :param task: the task being run.
    :param call: runs the handler and returns its value.
    :return: the handler's return value.

    .. versionadded:: 1.0
    """
