"""The hook reference: every hook taskkit calls, with its parameters and meaning.

Plugins implement these with :data:`taskkit.hookimpl` and register through the ``taskkit``
entry-point group (``[project.entry-points.taskkit] mybackend = "my_pkg.plugin"``). The
built-in parts (the in-memory backend, the serializers, the retry policies, the ``cron``
schedule kind) register through the same hooks as third-party ones; ``RegularSchedule`` is no
schedule kind, as it is built from fields rather than from an expression. Unknown
``taskkit_*`` implementations fail at load time.

The registration hooks run once per process, over the entry-point plugins; a plugin given to
one kit only (``Kit(..., plugins=[...])``) may implement the lifecycle and execution hooks,
and one that implements a registration hook is refused with a
:class:`~taskkit.errors.ConfigurationError`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from ._task import Task
    from .backend import Backend
    from .registries import (
        BackendRegistry,
        RetryPolicyRegistry,
        ScheduleRegistry,
        SerializerRegistry,
    )

#: The pluggy project name, and the entry-point group plugins register under.
NAME = "taskkit"

#: Marks the hook specifications below.
hookspec = pluggy.HookspecMarker(NAME)
#: Marks hook implementations: ``@hookimpl def taskkit_register_backends(registry): ...``
hookimpl = pluggy.HookimplMarker(NAME)

#: The hooks that fill the process-wide registries (never called on a kit-local plugin).
REGISTRATION_HOOKS = (
    "taskkit_register_backends",
    "taskkit_register_serializers",
    "taskkit_register_retry_policies",
    "taskkit_register_schedules",
)

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
def taskkit_task_headers(group: str, name: str, headers: dict[str, str]) -> None:
    """A producer is about to store a task of ``group``/``name``: add to its ``headers``
    (inject trace context, say) by changing the dict in place.

    Called in the producer's thread (or coroutine, for ``ainitiate_*``), once per task and
    before anything of its batch is written, for every task a kit stores: ``initiate_task``,
    ``initiate_tasks``, function tasks' ``delay``/``initiate`` and their async forms. Not
    called for an ``eager=True`` task (it is stored nowhere) or a scheduler's task, and never
    called at all while no plugin implements it. The result is checked like the producer's
    own headers: a plugin that leaves bad ones makes the enqueue raise
    :class:`~taskkit.errors.InvalidTask` (nothing is stored). A plugin that raises is
    logged, and the task keeps the headers its producer gave.

    :param group: the task's group.
    :param name: the task's name.
    :param headers: the headers so far (the producer's, then earlier plugins' changes); may
        be added to, changed or emptied. Stored as the task's :attr:`~taskkit.Task.headers`.

    .. versionadded:: 1.0
    """


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
    :param worker_id: the worker process's id (``"eager"`` for a task run with ``eager=True``).

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
    """``task`` was discarded (the handler raised ``DiscardTask``).

    A name that no function or handler knows is not discarded: the worker holds it back
    (:class:`~taskkit.UnknownTask`) and buries it after ``KitConfig.unknown_task_window``,
    which :func:`taskkit_task_dead_lettered` reports.

    :param task: the task.
    :param reason: why.

    .. versionadded:: 1.0
    """


@hookspec
def taskkit_task_dead_lettered(task: Task, reason: str) -> None:
    """``task`` became a dead letter: it exhausted its deliveries (it kept killing workers;
    the kit's ``max_deliveries`` or a function task's own), or no worker knew its name for
    ``unknown_task_window`` seconds (reason ``"unknown task: ..."``).

    :param task: the task.
    :param reason: why.

    .. versionadded:: 1.0
    """


@hookspec
def taskkit_task_reclaimed(task: Task, worker_id: str) -> None:
    """A worker claimed ``task`` again after an earlier delivery of the same attempt ended
    without an outcome: its worker died (the supervisor expired its leases) or lost its lease
    (paused, cut off from the backend, or stuck past ``lease_seconds``).

    Called on the claiming worker's claimer thread, before the task starts (it may still be
    handed back unrun). A task reclaimed once too often is not delivered: it becomes a dead
    letter, which :func:`taskkit_task_dead_lettered` reports instead.

    :param task: the claimed task (``deliveries`` is 2 or more: this delivery included).
    :param worker_id: the id of the worker process that claimed it.

    .. versionadded:: 1.0
    """


@hookspec
def taskkit_outcome_rejected(task: Task, action: str) -> None:
    """The backend refused a worker's outcome for ``task``: the worker's claim was stale (its
    lease had expired and another worker reclaimed the task, or the task was finished by
    then). Nothing was changed; the task's current owner decides its outcome.

    Called on the thread that wrote the outcome (often the worker's recorder thread).

    :param task: the task as this worker ran it.
    :param action: the refused outcome: ``"complete"``, ``"retry"``, ``"fail"``,
        ``"discard"``, ``"acknowledge_cancel"``, ``"defer"`` or ``"bury"``.

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


# --------------------------------------------------------------------------- supervision


@hookspec
def taskkit_supervisor_started(supervisor_id: str, groups: list[str], backend: Backend) -> None:
    """A supervisor (``Kit.start``, ``taskkit worker``) is about to start its worker
    processes, or, for a single-process backend, its one worker in this process.

    Called in the supervisor's process before any worker starts, so what a plugin sets up
    here (a metrics endpoint, a directory its workers write to) is inherited by the workers
    it supervises: forked ones copy the plugin object, ``spawn`` ones unpickle it.

    :param supervisor_id: the supervisor's id (host, process id and a random part).
    :param groups: the groups its workers serve.
    :param backend: the kit's backend. A plugin that calls it from a thread of its own
        should call a ``backend.clone()`` when the backend supports processes: some (Django)
        open a connection per thread.

    .. versionadded:: 1.0
    """


@hookspec
def taskkit_supervisor_stopped(supervisor_id: str) -> None:
    """A supervisor's workers have all stopped (or were killed) and it is about to return.

    :param supervisor_id: the supervisor's id, as given to :func:`taskkit_supervisor_started`.

    .. versionadded:: 1.0
    """


@hookspec
def taskkit_worker_restarted(worker_id: str, replaced: str, exit_code: int | None) -> None:
    """The supervisor started worker process ``worker_id`` in place of ``replaced``, which
    died, recycled itself (a stuck task) or was stopped because ``should_restart`` asked.

    Called in the supervisor's process, once the replacement has started; the leases of
    ``replaced`` were expired before.

    :param worker_id: the new worker process's id.
    :param replaced: the id of the worker process it replaces.
    :param exit_code: how ``replaced`` ended: its exit status, or minus the signal that
        killed it (``-9`` for SIGKILL).

    .. versionadded:: 1.0
    """


# --------------------------------------------------------------------------- schedules


@hookspec
def taskkit_schedule_fired(scheduler: str, entry: str, task: Task, lag: float) -> None:
    """A schedule point fired: this replica stored ``task`` for it (each point fires on one
    replica only, so this is called once per point across the fleet).

    Called on the scheduler's thread of a worker process, after
    :func:`taskkit_task_initiated`.

    :param scheduler: the scheduler name (the key of ``schedule_entries``).
    :param entry: the entry's key.
    :param task: the stored task (``scheduled`` is the point).
    :param lag: seconds from the point to its firing, on the backend's clock: how late the
        schedulers are (a point caught up after downtime shows the downtime).

    .. versionadded:: 1.0
    """


# --------------------------------------------------------------------------- execution


@hookspec(firstresult=True)
def taskkit_execute_task(task: Task, call: Callable[[], Any]) -> Any:
    """Run the handler for ``task``: wrap this hook to time, trace or meter every execution.

    Implement it with ``@hookimpl(wrapper=True)`` and ``yield``: the value sent back is the
    handler's return value, and exceptions propagate through the ``yield``. The innermost
    implementation (taskkit's own) calls ``call()``.

    For an ``async def`` task the wrappers run on the worker's event-loop thread and resume
    once the coroutine has finished: the value sent back is the awaited result (and its
    exception is raised through the ``yield``), so a wrapper times the whole run.

    :param task: the task being run.
    :param call: runs the handler and returns its value.
    :return: the handler's return value.

    .. versionadded:: 1.0
    """
