"""``Kit``: the producer API (initiate, results, control) and the entry to the runtime."""

from __future__ import annotations

import logging
import math
import uuid
import warnings
from collections.abc import Callable, Coroutine, Mapping, Sequence
from datetime import datetime, tzinfo
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar, overload

import pluggy

from ._backend_clock import BackendClock
from ._encoding import encode_data
from ._execution import run_eagerly
from ._headers import EMPTY_HEADERS
from ._hooks import HookCaller
from ._kitdata import KitConfig
from ._result import EagerResult, Result
from ._router import TaskRouter
from ._supervisor import Supervisor, start_workers
from ._task import DEFAULT_TTL, CancelResult, Outcome, Task, TaskState
from ._validation import (
    to_epoch,
    validate_headers,
    validate_name,
    validate_payload,
    validate_task_id,
)
from ._worker import WorkerSpec
from .backend import Backend
from .errors import (
    Cancelled,
    ConfigurationError,
    DeadLettered,
    Failed,
    InvalidTask,
    NotFound,
    PayloadTooLarge,
)
from .functions import (
    AsyncTaskFunction,
    TaskDecorator,
    TaskFunction,
    TaskRegistry,
    make_options,
    task_function,
)
from .handler import TaskHandler
from .plugins import redact_url, registries
from .retry import ExceptionTypes, RetryPolicy
from .schedule import normalize_entries

if TYPE_CHECKING:
    from multiprocessing.process import BaseProcess

    from .schedule import ScheduleEntriesCompatMapping

__all__ = ["Kit", "KitConfig", "Result", "make_kit"]

log = logging.getLogger("taskkit")

P = ParamSpec("P")
R = TypeVar("R")


ShouldRestart = Callable[["BaseProcess"], bool]
#: ``polling_interval`` as taskkit 0.2.4 took it: seconds, ``{group: seconds}``, or None.
PollingInterval = float | Mapping[str, float] | None
#: ``helper_services`` as taskkit 0.2.4 took it (deprecated): a flag or ``f(index) -> bool``.
HelperServices = bool | Callable[[int], bool] | None


def _check_polling_interval(value: object) -> None:
    """Refuse what 0.2.4 did not take either: positive seconds, a dict of them, or None."""

    def seconds(v: object) -> bool:
        return (
            isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v > 0
        )

    if value is None or seconds(value):
        return
    if isinstance(value, Mapping) and all(
        isinstance(k, str) and seconds(v) for k, v in value.items()
    ):
        return
    raise ConfigurationError(
        f"polling_interval must be seconds > 0, a {{group: seconds}} dict, or None, not {value!r}"
    )


def _supervisor_interval(method: str, value: PollingInterval) -> float | None:
    """``Kit.start``'s polling_interval: seconds for the supervisor; a 0.2 dict is ignored."""
    _check_polling_interval(value)
    if isinstance(value, Mapping):
        warnings.warn(
            f"{method}(polling_interval={{group: seconds}}) is deprecated and ignored: workers "
            "no longer poll, they wake on new work (a number still sets how often the "
            "supervisor checks its processes)",
            DeprecationWarning,
            stacklevel=3,
        )
        return None
    return None if value is None else float(value)


def _deprecated_helper_services(method: str, value: HelperServices) -> None:
    """Accept 0.2.4's ``helper_services`` (a flag or a callable) and say that it is ignored."""
    if value is None:
        return
    if not (isinstance(value, bool) or callable(value)):
        raise ConfigurationError(
            f"helper_services must be a bool or a callable(index) -> bool, not {value!r}"
        )
    warnings.warn(
        f"{method}(helper_services=...) is deprecated and ignored: every worker process now "
        "recovers abandoned tasks (expired leases are reclaimed when claiming) and finished "
        "records expire by their TTL, so no process needs helper services; remove the argument",
        DeprecationWarning,
        stacklevel=3,
    )


class Kit:
    """The entry point: initiate tasks, read results, send control events, run workers.

    :param backend: where tasks live.
    :param handler: runs and encodes the tasks no function task claims (the 0.2 way); optional
        when every task is a function (``@kit.task``).
    :param config: tuning knobs (:class:`KitConfig`); keyword options override its fields.
    :param plugins: extra plugin objects for this kit only (picklable if workers use
        ``spawn``): they get the lifecycle and execution hooks; one that implements a
        registration hook is refused (those run once per process, over entry points).
    """

    def __init__(
        self,
        backend: Backend,
        handler: TaskHandler | None = None,
        config: KitConfig | None = None,
        *,
        plugins: Sequence[object] = (),
        **options: Any,
    ) -> None:
        if not isinstance(backend, Backend):
            raise ConfigurationError(
                f"backend must be a taskkit Backend, not {type(backend).__name__}"
            )
        if handler is None:
            handler = TaskHandler()
        if not isinstance(handler, TaskHandler):
            raise ConfigurationError(
                f"handler must be a TaskHandler instance, not {type(handler).__name__}"
            )
        if options:
            fields = {**(config or KitConfig()).__dict__, **options}
            unknown = set(options) - set(KitConfig.__dataclass_fields__)
            if unknown:
                raise ConfigurationError(f"unknown kit option(s): {', '.join(sorted(unknown))}")
            config = KitConfig(**fields)
        self.backend = backend
        self.handler = handler
        #: The function tasks (``@kit.task``) of this kit.
        self.tasks = TaskRegistry()
        #: What the runtime runs tasks through: the function tasks first, then ``handler``.
        self.router: TaskHandler = TaskRouter(handler, self.tasks)
        self.config = config or KitConfig()
        self.plugins = tuple(plugins)
        #: Calls this kit's plugin hooks (the runtime calls them through it too).
        self.hook_caller = HookCaller.for_plugins(self.plugins)
        self.plugin_manager: pluggy.PluginManager = self.hook_caller.plugin_manager
        self._clock = BackendClock(backend, resync_after=BackendClock.KIT_RESYNC)

    def backend_now(self) -> float:
        """The backend's clock, estimated from the local one (re-synced every 30 s).

        Producers stamp ``created`` and the default ``due`` with it, so a host whose clock is
        ahead does not delay its own tasks.
        """
        return self._clock.now()

    async def abackend_now(self) -> float:
        """:meth:`backend_now` for async code: it never blocks the event loop (the offset
        is re-measured in a thread)."""
        return await self._clock.anow()

    def __reduce__(self) -> tuple[Any, ...]:
        return (
            _rebuild_kit,
            (self.backend, self.handler, self.config, self.plugins, list(self.tasks)),
        )

    @property
    def hook(self) -> Any:
        """The plugin hooks (``kit.hook.taskkit_task_initiated(task=...)``)."""
        return self.plugin_manager.hook

    # ------------------------------------------------------------------ producing

    @overload
    def task(  # type: ignore[overload-overlap]
        self, fn: Callable[P, Coroutine[Any, Any, R]], /
    ) -> AsyncTaskFunction[P, R]: ...

    @overload
    def task(self, fn: Callable[P, R], /) -> TaskFunction[P, R]: ...

    @overload
    def task(
        self,
        fn: None = None,
        /,
        *,
        group: str | None = None,
        name: str | None = None,
        timeout: float | None = None,
        ttl: float | None = None,
        retries: int | None = None,
        retry_policy: RetryPolicy | str | None = None,
        retry_on: ExceptionTypes = (Exception,),
        retry_unless: ExceptionTypes = (),
        max_deliveries: int | None = None,
        serializer: str | None = None,
    ) -> TaskDecorator: ...

    def task(
        self,
        fn: Callable[..., Any] | None = None,
        /,
        *,
        group: str | None = None,
        name: str | None = None,
        timeout: float | None = None,
        ttl: float | None = None,
        retries: int | None = None,
        retry_policy: RetryPolicy | str | None = None,
        retry_on: ExceptionTypes = (Exception,),
        retry_unless: ExceptionTypes = (),
        max_deliveries: int | None = None,
        serializer: str | None = None,
    ) -> Any:
        """Register a plain or ``async def`` function as a task of this kit.

        ``@kit.task`` or ``@kit.task(group="mail", retries=5, timeout=30)``. The result is
        typed by the function: ``send.delay(...)`` takes its parameters and returns
        ``Result[R]``; calling ``send(...)`` runs the function inline.

        :param group: the group whose workers run it (default ``"default"``).
        :param name: its name in the group (default: the function's qualified name).
        :param timeout: run-time limit in seconds (default: the kit's ``default_timeout``).
        :param ttl: seconds its finished record and result are kept.
        :param retries: retries after a failure (sets ``max_retries`` of the policy).
        :param retry_policy: a :class:`~taskkit.retry.RetryPolicy` or a registered policy's
            name (default: :class:`~taskkit.retry.ExponentialBackoff`).
        :param retry_on: retry only after these exceptions (a class or a tuple).
        :param retry_unless: never retry after these. Arguments that no longer fit the
            function (its signature changed) fail at once, whatever these say.
        :param max_deliveries: lower the kit's ``max_deliveries`` for this task.
        :param serializer: the registered serializer of its arguments and result (default:
            the handler's, JSON).
        :raises ConfigurationError: a bad option, or another function already has this group
            and name.
        """
        options = make_options(
            timeout=timeout,
            ttl=ttl,
            retries=retries,
            retry_policy=retry_policy,
            retry_on=retry_on,
            retry_unless=retry_unless,
            max_deliveries=max_deliveries,
            serializer=serializer,
        )

        def register(function: Callable[..., Any]) -> Any:
            wrapped = task_function(self, function, group=group, name=name, options=options)
            self.tasks.add(wrapped)
            return wrapped

        return register if fn is None else register(fn)

    def make_task(
        self,
        group: str,
        name: str,
        data: Any,
        due: datetime | float | None = None,
        ttl: float = DEFAULT_TTL,
        *,
        timeout: float | None = None,
        task_id: str | None = None,
        encoded: bool = False,
        now: float | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Task:
        """Validate and encode one task without storing it (``initiate_tasks`` takes these).

        Takes the arguments of :meth:`initiate_task` (``encoded=True``: ``data`` is already
        bytes) and raises the same errors. ``now`` is the backend time to stamp it with
        (default :meth:`backend_now`; async producers pass :meth:`abackend_now`'s). The
        ``taskkit_task_headers`` hook runs later, when the task is stored.
        """
        validate_name("group", group)
        validate_name("task name", name)
        if task_id is not None:
            validate_task_id(task_id)
        checked_headers = EMPTY_HEADERS if headers is None else validate_headers(headers)
        payload = data if encoded else encode_data(self.router, group, name, data)
        payload = validate_payload("task data", payload, self.config.max_data_size)
        if not isinstance(ttl, (int, float)) or ttl <= 0:
            raise InvalidTask(f"ttl must be a positive number of seconds, not {ttl!r}")
        if timeout is not None and (not isinstance(timeout, (int, float)) or timeout <= 0):
            raise InvalidTask(f"timeout must be a positive number of seconds, not {timeout!r}")
        if now is None:
            now = self.backend_now()
        return Task(
            id=task_id or uuid.uuid4().hex,
            group=group,
            name=name,
            data=payload,
            due=to_epoch(due, now),
            created=now,
            ttl=float(ttl),
            timeout=timeout,
            headers=checked_headers,
        )

    def initiate_task(
        self,
        group: str,
        name: str,
        data: Any,
        due: datetime | float | None = None,
        ttl: float = DEFAULT_TTL,
        eager: bool = False,
        *,
        timeout: float | None = None,
        task_id: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Result[Any]:
        """Store a task for the workers of ``group`` and return a handle on its result.

        :param data: encoded with ``handler.encode_data(group, name, data)`` (the handler's
            serializer, JSON by default).
        :param due: run no earlier than this (a datetime, naive meaning local time, or epoch
            seconds); default now.
        :param ttl: seconds the finished record and result are kept.
        :param eager: run the task now, in this thread, as a worker would, and store nothing:
            the ``taskkit_execute_task`` wrapper and the lifecycle hooks run (worker id
            ``"eager"``), ``current_task()`` works, and the result makes the encode/decode
            round trip, so ``get()`` returns or raises what it would for a worker's run. One
            attempt only: a failure is final (no retry), and the time limit is enforced only
            through ``current_task().check()``.
        :param timeout: run-time limit in seconds (default: the kit's ``default_timeout``).
        :param task_id: your own id, for idempotent enqueue: a second initiate with the same
            id stores nothing and returns a handle on the first. Ids follow the rules of
            names (up to 128 printable ASCII characters, single inner spaces, none of
            ``:{}*?[]\\``); UUIDs and ids like ``"welcome-ada"`` pass.
        :param headers: a small ``str -> str`` mapping stored with the task and readable in
            its handler as ``current_task().task.headers`` (trace context, a request id): at
            most 32 entries, names of 1 to 128 printable ASCII characters without spaces,
            printable string values, 4 KiB encoded. Plugins implementing
            ``taskkit_task_headers`` may add to them before the task is stored.
        :raises InvalidTask: bad group, name, task id, due, ttl or headers (the caller's or
            a ``taskkit_task_headers`` plugin's), or data the serializer cannot encode (the
            message names the task and the serializer); nothing was written.
        :raises PayloadTooLarge: the encoded data exceeds ``max_data_size``, or the headers
            4 KiB.
        """
        task = self.make_task(
            group, name, data, due, ttl, timeout=timeout, task_id=task_id, headers=headers
        )
        return self._initiate(task, eager)

    async def ainitiate_task(
        self,
        group: str,
        name: str,
        data: Any,
        due: datetime | float | None = None,
        ttl: float = DEFAULT_TTL,
        *,
        timeout: float | None = None,
        task_id: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Result[Any]:
        """:meth:`initiate_task` for async code: the write does not block the event loop
        (backends with an async client use it; others run the write in a thread).

        Takes the same arguments (no ``eager``) and raises the same errors.
        """
        now = await self.abackend_now()
        task = self.make_task(
            group,
            name,
            data,
            due,
            ttl,
            timeout=timeout,
            task_id=task_id,
            now=now,
            headers=headers,
        )
        return await self._ainitiate(task)

    async def ainitiate_tasks(self, *items: Task | Mapping[str, Any]) -> list[Result[Any]]:
        """:meth:`initiate_tasks` for async code, in one backend round trip (no eager items).

        :raises InvalidTask: an item is refused (nothing is stored); ``item <index>:`` leads.
        """
        now = await self.abackend_now()
        tasks = [self._bulk_task(i, item, now) for i, item in enumerate(items)]
        await self._astore(tasks)
        return [Result(self, task.id) for task in tasks]

    def _initiate(self, task: Task, eager: bool) -> Result[Any]:
        """Store (or run eagerly) one validated task; the producers' common last step."""
        if eager:
            return self._run_eagerly(task)
        self._store([task])
        return Result(self, task.id)

    async def _ainitiate(self, task: Task) -> Result[Any]:
        await self._astore([task])
        return Result(self, task.id)

    def initiate_tasks(
        self, *items: Task | tuple[Task, bool] | Mapping[str, Any]
    ) -> list[Result[Any]]:
        """Store many tasks in one backend round trip.

        Each item is a :class:`Task` (from :meth:`make_task`), a ``(Task, eager)`` pair (as
        in taskkit 0.2), or a dict with ``group``, ``name``, ``data`` and optionally ``due``,
        ``ttl``, ``timeout``, ``task_id``, ``headers`` and ``eager``.

        All items are validated and encoded before anything is written or run: when one is
        refused, no task of the batch is stored and no eager item has run.

        :raises InvalidTask: an item is refused; the message starts with ``item <index>:``.
        :raises PayloadTooLarge: an item's encoded data exceeds ``max_data_size``.
        """
        tasks: list[Task] = []
        eager: dict[int, Task] = {}
        for i, item in enumerate(items):
            try:
                task, run_eagerly_ = self._bulk_item(i, item)
            except PayloadTooLarge:
                raise
            except InvalidTask as exc:
                message = str(exc)
                if not message.startswith(f"item {i}"):
                    raise InvalidTask(f"item {i}: {message}") from exc
                raise
            if run_eagerly_:
                eager[i] = task
            else:
                tasks.append(task)
        self._store(tasks)
        queued = iter(tasks)
        return [
            self._run_eagerly(eager[i]) if i in eager else Result(self, next(queued).id)
            for i in range(len(items))
        ]

    def _bulk_item(self, i: int, item: object, now: float | None = None) -> tuple[Task, bool]:
        """One item of :meth:`initiate_tasks`, validated: the task and whether it is eager."""
        if (
            isinstance(item, tuple)
            and len(item) == 2
            and isinstance(item[0], Task)
            and isinstance(item[1], bool)
        ):
            return self._checked_task(item[0]), item[1]
        if isinstance(item, Task):
            return self._checked_task(item), False
        if not isinstance(item, Mapping):
            raise InvalidTask(
                f"item {i} must be a Task, a (Task, eager) pair or a dict, "
                f"not {type(item).__name__}"
            )
        spec = dict(item)
        missing = {"group", "name", "data"} - spec.keys()
        if missing:
            raise InvalidTask(f"item {i} lacks {', '.join(sorted(missing))}")
        unknown = spec.keys() - {
            "group",
            "name",
            "data",
            "due",
            "ttl",
            "eager",
            "timeout",
            "task_id",
            "headers",
        }
        if unknown:
            raise InvalidTask(f"item {i} has unknown key(s) {', '.join(sorted(unknown))}")
        run_eagerly_ = bool(spec.pop("eager", False))
        return self.make_task(**spec, now=now), run_eagerly_

    def _bulk_task(self, i: int, item: object, now: float) -> Task:
        """One item of :meth:`ainitiate_tasks`: as for :meth:`initiate_tasks`, never eager."""
        try:
            task, eager = self._bulk_item(i, item, now)
        except PayloadTooLarge:
            raise
        except InvalidTask as exc:
            message = str(exc)
            if not message.startswith(f"item {i}"):
                raise InvalidTask(f"item {i}: {message}") from exc
            raise
        if eager:
            raise InvalidTask(f"item {i}: ainitiate_tasks runs nothing eagerly")
        return task

    def _checked_task(self, task: Task) -> Task:
        validate_name("group", task.group)
        validate_name("task name", task.name)
        validate_task_id(task.id)
        validate_payload("task data", task.data, self.config.max_data_size)
        validate_headers(task.headers)
        return task

    def _store(self, tasks: list[Task]) -> None:
        """Put validated tasks and report the ones newly stored to the plugins."""
        if not tasks:
            return
        tasks = self._plugin_headers(tasks)
        stored = self.backend.put(tasks)
        if not self.hook_caller.listened("taskkit_task_initiated"):
            return  # no plugin listens: skip a hook call per task (bulk enqueue)
        for task, was_stored in zip(tasks, stored):
            if was_stored:
                self.hook_caller.call("taskkit_task_initiated", task=task)

    async def _astore(self, tasks: list[Task]) -> None:
        """:meth:`_store` through the backend's async ``aput``."""
        if not tasks:
            return
        tasks = self._plugin_headers(tasks)
        stored = await self.backend.aput(tasks)
        if not self.hook_caller.listened("taskkit_task_initiated"):
            return
        for task, was_stored in zip(tasks, stored):
            if was_stored:
                self.hook_caller.call("taskkit_task_initiated", task=task)

    def _plugin_headers(self, tasks: list[Task]) -> list[Task]:
        """``tasks`` with the headers ``taskkit_task_headers`` plugins set, checked, before
        anything of the batch is written.

        :raises InvalidTask: a plugin set bad headers (nothing is stored).
        """
        if not self.hook_caller.listened("taskkit_task_headers"):
            return tasks  # no plugin listens: no copy, no call per task
        return [self._hooked(task) for task in tasks]

    def _hooked(self, task: Task) -> Task:
        headers = dict(task.headers)
        try:
            self.hook.taskkit_task_headers(group=task.group, name=task.name, headers=headers)
        except Exception:
            # As for the lifecycle hooks, a broken plugin must not stop producers: the task
            # is stored with the headers its producer gave.
            log.exception(
                "taskkit plugin hook taskkit_task_headers raised; task %s keeps its headers",
                task.id,
            )
            return task
        if headers == task.headers:
            return task
        where = f"task {task.group}/{task.name} {task.id}: the taskkit_task_headers hook"
        try:
            checked = validate_headers(headers)
        except PayloadTooLarge as exc:
            raise PayloadTooLarge(f"{where} made the headers", exc.size, exc.limit) from exc
        except InvalidTask as exc:
            raise InvalidTask(f"{where} set bad headers: {exc}") from exc
        return task.evolve(headers=checked)

    def _run_eagerly(self, task: Task) -> EagerResult[Any]:
        return EagerResult(self, run_eagerly(self, task))

    # ------------------------------------------------------------------ results and control

    def get_result(self, task_id: str) -> Result[Any]:
        """A handle on the result of the task ``task_id``."""
        return Result(self, task_id)

    def cancel(self, task_id: str) -> CancelResult:
        """Cancel a task: a queued one at once; a running one is interrupted by its worker.

        A running handler is stopped with :class:`taskkit.TaskCancelled` raised in its thread
        at the next heartbeat (handlers can also poll ``current_task().check()``).
        """
        return self.backend.cancel(task_id)

    def send_shutdown_event(self, groups: Sequence[str] | None = None) -> None:
        """Ask every running worker (of ``groups``, or all) to shut down gracefully."""
        self.backend.publish_control("shutdown", _groups(groups))

    def send_pause_event(self, groups: Sequence[str] | None = None) -> None:
        """Ask workers (of ``groups``, or all) to stop claiming until resumed."""
        self.backend.publish_control("pause", _groups(groups))

    def send_resume_event(self, groups: Sequence[str] | None = None) -> None:
        """Undo a pause."""
        self.backend.publish_control("resume", _groups(groups))

    def dead_letters(self, group: str | None = None, limit: int = 100) -> list[Outcome]:
        """Dead-lettered tasks, newest first."""
        return self.backend.list_dead_letters(group, limit)

    def requeue_dead_letter(self, task_id: str) -> bool:
        """Put a dead letter back in its queue (an explicit operator action)."""
        return self.backend.requeue_dead_letter(task_id)

    def _decode_outcome(self, outcome: Outcome) -> Any:
        task = outcome.task
        state = outcome.state
        if state is TaskState.SUCCEEDED:
            return self.router.decode_result(task, outcome.result or b"")
        if state is TaskState.DISCARDED:
            raise NotFound(task.id, f"discarded: {outcome.error or ''}".rstrip(": "))
        message = outcome.error or state.value
        if state is TaskState.CANCELLED:
            raise Cancelled(task, message)
        if state is TaskState.DEAD:
            raise DeadLettered(task, message)
        raise Failed(task, message)

    # ------------------------------------------------------------------ running

    def start(
        self,
        num_processes: int,
        num_worker_threads_per_group: Mapping[str, int],
        schedule_entries: ScheduleEntriesCompatMapping | None = None,
        tzinfo: tzinfo | None = None,
        polling_interval: PollingInterval = None,
        helper_services: HelperServices = None,
        should_restart: ShouldRestart | None = None,
        *,
        start_method: str | None = None,
    ) -> None:
        """Run worker processes under a supervisor until SIGTERM/SIGINT or a shutdown event.

        The supervisor restarts a process that dies and first expires the dead process's
        leases, so its tasks run again at once. The
        first SIGTERM/SIGINT shuts down gracefully (running tasks get ``grace_period``
        seconds, then are handed back); a second one stops at once.

        The positional order is taskkit 0.2.4's.

        :param num_processes: worker processes to run.
        :param num_worker_threads_per_group: ``{group: threads}`` per process.
        :param schedule_entries: ``{scheduler_name: [entries]}`` run in every process (each
            point fires once however many replicas run).
        :param tzinfo: the time zone of schedules that set none (default: UTC).
        :param polling_interval: how often the supervisor checks its processes besides
            being woken by their exit (seconds, default 1). *Deprecated form:* a
            ``{group: seconds}`` dict (0.2's per-group worker polling) is accepted and
            ignored with a :class:`DeprecationWarning`: workers no longer poll, they wake on
            new work.
        :param helper_services: *deprecated, ignored* (a :class:`DeprecationWarning` says
            so). In 0.2 it chose which processes ran the services that restored abandoned
            tasks and purged dead workers (``True``, ``False``, or ``callable(index) ->
            bool``); now every worker does that work as part of claiming (expired leases
            are reclaimed, records expire by their TTL), so there is nothing to choose.
        :param should_restart: ``should_restart(process) -> bool``, asked about each live
            process every ``polling_interval`` seconds (0.2's meaning): True stops that process
            gracefully and starts a new one (e.g. to shed a process that grew too large). A
            dead process is always replaced, whatever it answers.
        :param start_method: ``fork``, ``spawn`` or ``forkserver`` (default: the platform's).
        :raises ConfigurationError: a bad argument (checked before any process starts).
        """
        interval = _supervisor_interval("Kit.start", polling_interval)
        _deprecated_helper_services("Kit.start", helper_services)
        Supervisor(
            self,
            self._worker_spec(
                num_processes, num_worker_threads_per_group, schedule_entries, tzinfo
            ),
            start_method=start_method,
            polling_interval=interval,
            should_restart=should_restart,
        ).run()

    def start_processes(
        self,
        num_processes: int,
        num_worker_threads_per_group: Mapping[str, int],
        schedule_entries: ScheduleEntriesCompatMapping | None = None,
        tzinfo: tzinfo | None = None,
        polling_interval: PollingInterval = None,
        helper_services: HelperServices = None,
        daemon: bool = True,
        *,
        start_method: str | None = None,
    ) -> list[Any]:
        """Start worker processes (schedulers included) and return them, without supervising.

        Nothing replaces a process that dies or recycles itself: use :meth:`start` (or the
        ``taskkit worker`` command) for that. With a single-process backend (the in-memory
        one) the workers run as threads of this process and the returned handles behave like
        processes (``is_alive``, ``join``, ``terminate``). The positional order is taskkit
        0.2.4's.

        :param polling_interval: *deprecated, ignored* (a :class:`DeprecationWarning` says
            so): 0.2's worker polling interval (seconds, or ``{group: seconds}``); workers no
            longer poll, they wake on new work, and there is no supervisor to tune.
        :param helper_services: *deprecated, ignored*, as for :meth:`start`.
        :param daemon: make the processes daemonic (they die with this process).
        :param start_method: ``fork``, ``spawn`` or ``forkserver`` (default: the platform's).
        :raises ConfigurationError: a bad argument (checked before any process starts).
        """
        _check_polling_interval(polling_interval)
        if polling_interval is not None:
            warnings.warn(
                "Kit.start_processes(polling_interval=...) is deprecated and ignored: workers "
                "no longer poll, they wake on new work; remove the argument",
                DeprecationWarning,
                stacklevel=2,
            )
        _deprecated_helper_services("Kit.start_processes", helper_services)
        spec = self._worker_spec(
            num_processes, num_worker_threads_per_group, schedule_entries, tzinfo
        )
        return start_workers(self, spec, daemon=daemon, start_method=start_method)

    def _worker_spec(
        self,
        num_processes: int,
        threads: Mapping[str, int],
        schedule_entries: ScheduleEntriesCompatMapping | None,
        tz: tzinfo | None,
    ) -> WorkerSpec:
        if not isinstance(num_processes, int) or num_processes < 1:
            raise ConfigurationError("num_processes must be an int >= 1")
        if not threads and not schedule_entries:
            raise ConfigurationError("give num_worker_threads_per_group, schedule_entries or both")
        groups: dict[str, int] = {}
        for group, count in (threads or {}).items():
            validate_name("group", group)
            if not isinstance(count, int) or count < 1:
                raise ConfigurationError(f"group {group!r}: thread count must be an int >= 1")
            groups[group] = count
        entries = normalize_entries(schedule_entries or {}, self.router, self.config.max_data_size)
        return WorkerSpec(num_processes, groups, entries, tz)


def _groups(groups: Sequence[str] | None) -> list[str] | None:
    if groups is None:
        return None
    if isinstance(groups, str):
        groups = [groups]
    return [validate_name("group", g) for g in groups]


def _rebuild_kit(
    backend: Backend,
    handler: TaskHandler,
    config: KitConfig,
    plugins: tuple[object, ...],
    tasks: Sequence[Any] = (),
) -> Kit:
    kit = Kit(backend, handler, config, plugins=plugins)
    for task in tasks:
        if task.kit is None:  # registered by a call and rebuilt around its function
            task.kit = kit
        kit.tasks.add(task)
    return kit


def make_kit(
    url_or_backend: str | Backend, handler: TaskHandler | None = None, **options: Any
) -> Kit:
    """Build a kit from a backend URL (``memory://``, ``redis://host/0``, ...) or a backend.

    ``handler`` is optional: a kit whose tasks are all functions (``@kit.task``) needs none.

    Options named like :class:`KitConfig` fields tune the kit; the rest go to the backend's
    factory.

    :raises ConfigurationError: unknown URL scheme (naming the distribution to install when
        it is one of ours), or a bad option.
    """
    kit_options = {k: v for k, v in options.items() if k in KitConfig.__dataclass_fields__}
    plugins = options.pop("plugins", ())
    backend_options = {k: v for k, v in options.items() if k not in kit_options and k != "plugins"}
    if isinstance(url_or_backend, Backend):
        if backend_options:
            raise ConfigurationError(f"unknown kit option(s): {', '.join(sorted(backend_options))}")
        backend = url_or_backend
    elif isinstance(url_or_backend, str):
        factory = registries().backends.for_url(url_or_backend)
        try:
            backend = factory(url_or_backend, **backend_options)
        except TypeError as exc:
            raise ConfigurationError(
                f"bad options for backend {redact_url(url_or_backend)!r}: {exc}"
            ) from exc
    else:
        raise ConfigurationError(
            f"make_kit takes a backend URL or a Backend, not {type(url_or_backend).__name__}"
        )
    return Kit(backend, handler, plugins=plugins, **kit_options)
