"""``Kit``: the producer API (initiate, results, control) and the entry to the runtime."""

from __future__ import annotations

import logging
import time
import traceback
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, tzinfo
from typing import TYPE_CHECKING, Any

import pluggy

from ._task import DEFAULT_TTL, CancelResult, Outcome, Task, TaskState
from ._validation import (
    DEFAULT_MAX_DATA_SIZE,
    DEFAULT_MAX_ERROR_SIZE,
    DEFAULT_MAX_RESULT_SIZE,
    to_epoch,
    truncate_text,
    validate_name,
    validate_payload,
)
from .backend import Backend
from .clock import measure_offset
from .context import current_task
from .errors import (
    Cancelled,
    ConfigurationError,
    DeadLettered,
    DiscardTask,
    Failed,
    InvalidTask,
    NotFound,
    ResultGetPrevented,
    ResultGetTimedOut,
)
from .handler import TaskHandler
from .plugins import get_plugin_manager, make_plugin_manager, redact_url, registries

if TYPE_CHECKING:
    from multiprocessing.process import BaseProcess

    from .schedule import ScheduleEntriesCompatMapping

__all__ = ["Kit", "KitConfig", "Result", "make_kit"]

log = logging.getLogger("taskkit")

# The longest single backend wait inside Result.get: long waits are split so a dropped
# notification or connection is noticed.
_MAX_WAIT_SLICE = 5.0


@dataclass(frozen=True)
class KitConfig:
    """Tuning knobs. The defaults suit production; tests shrink the intervals.

    :ivar lease_seconds: how long a claim is valid without renewal. A worker that stops
        renewing (killed, paused, cut off) loses its tasks to another worker after this.
    :ivar heartbeat_interval: how often live workers renew their leases (default: a third of
        the lease).
    :ivar max_deliveries: deliveries of one attempt that may end with a lost worker before the
        task becomes a dead letter ("worker lost").
    :ivar default_timeout: the run-time limit of a task that sets none, in seconds (None: no
        limit).
    :ivar timeout_grace: seconds a timed-out handler gets to unwind before its thread counts
        as stuck and the process is recycled.
    :ivar grace_period: seconds a graceful shutdown waits for running tasks before handing
        them back.
    :ivar max_data_size: cap on encoded task data, in bytes.
    :ivar max_result_size: cap on encoded results, in bytes.
    :ivar max_error_size: cap on stored error text, in bytes (longer text is truncated).
    :ivar max_idle_wait: the longest a claimer sleeps between claims when nothing notifies it.
    :ivar control_interval: how often workers look for control events.
    :ivar prefetch: claimed tasks a group may hold ready beyond its busy threads, so its
        threads never wait on a claim's round trip. None (the default): as many as the group
        has threads while its tasks take under 50 ms on average, none otherwise (a long task
        must not hold others that an idle worker could run). 0 turns prefetch off. While
        prefetch is on, executors may also start their next task before the previous outcome
        is stored (up to twice the prefetch per group), so outcomes are written in batches;
        a crash can then make up to ``threads + 2 * prefetch`` tasks of a group run again,
        instead of ``threads``.
    """

    lease_seconds: float = 30.0
    heartbeat_interval: float | None = None
    max_deliveries: int = 3
    default_timeout: float | None = 600.0
    timeout_grace: float = 5.0
    grace_period: float = 30.0
    max_data_size: int = DEFAULT_MAX_DATA_SIZE
    max_result_size: int = DEFAULT_MAX_RESULT_SIZE
    max_error_size: int = DEFAULT_MAX_ERROR_SIZE
    max_idle_wait: float = 5.0
    control_interval: float = 1.0
    prefetch: int | None = None

    def __post_init__(self) -> None:
        if self.lease_seconds <= 0:
            raise ConfigurationError("lease_seconds must be > 0")
        if self.heartbeat_interval is not None and not (
            0 < self.heartbeat_interval < self.lease_seconds
        ):
            raise ConfigurationError("heartbeat_interval must be > 0 and < lease_seconds")
        if self.prefetch is not None and (isinstance(self.prefetch, bool) or self.prefetch < 0):
            raise ConfigurationError("prefetch must be an int >= 0 or None")
        if self.max_deliveries < 1:
            raise ConfigurationError("max_deliveries must be >= 1")
        if self.default_timeout is not None and self.default_timeout <= 0:
            raise ConfigurationError("default_timeout must be > 0 or None")
        for name in ("max_data_size", "max_result_size", "max_error_size"):
            if getattr(self, name) <= 0:
                raise ConfigurationError(f"{name} must be > 0")

    @property
    def heartbeat(self) -> float:
        return self.heartbeat_interval or self.lease_seconds / 3


class Result:
    """A handle on one task's outcome. ``get`` waits for it without polling the backend hot."""

    def __init__(self, kit: Kit, task_id: str) -> None:
        self._kit = kit
        self.task_id = task_id

    @property
    def id(self) -> str:
        return self.task_id

    def __repr__(self) -> str:
        return f"<Result {self.task_id}>"

    def outcome(self) -> Outcome | None:
        """The backend's current record of the task, or None."""
        return self._kit.backend.get_outcome(self.task_id)

    def ready(self) -> bool:
        """True once the task finished (in any way)."""
        outcome = self.outcome()
        return outcome is not None and outcome.state.finished

    def cancel(self) -> CancelResult:
        """Cancel the task; see :meth:`Kit.cancel`."""
        return self._kit.cancel(self.task_id)

    def get(self, timeout: float | None = None) -> Any:
        """Wait for the task to finish and return its decoded result.

        :param timeout: seconds to wait; 0 looks once; None waits as long as it takes.
        :raises ResultGetTimedOut: the task did not finish in time.
        :raises Failed: it failed (``.message`` holds the traceback text); :class:`Cancelled`
            and :class:`DeadLettered` are subclasses.
        :raises NotFound: no such task, it was discarded, or its record expired.
        :raises ResultGetPrevented: called inside a running handler.
        """
        if current_task() is not None:
            raise ResultGetPrevented(
                "Result.get inside a handler could deadlock the worker pool; "
                "chain the work instead of waiting for it"
            )
        if timeout is not None and timeout < 0:
            raise ValueError("timeout must be >= 0 or None")
        backend = self._kit.backend
        deadline = None if timeout is None else time.monotonic() + timeout
        # wait_for_outcome looks first and returns at once for a finished or unknown task.
        outcome = backend.wait_for_outcome(
            self.task_id, _MAX_WAIT_SLICE if timeout is None else min(timeout, _MAX_WAIT_SLICE)
        )
        while outcome is not None and not outcome.state.finished:
            remaining = _MAX_WAIT_SLICE if deadline is None else deadline - time.monotonic()
            if remaining <= 0:
                raise ResultGetTimedOut(f"task {self.task_id!r} did not finish within {timeout}s")
            outcome = backend.wait_for_outcome(self.task_id, min(remaining, _MAX_WAIT_SLICE))
        if outcome is None:
            raise NotFound(self.task_id)
        return self._kit._decode_outcome(outcome)


class EagerResult(Result):
    """The result of a task run synchronously in the caller (``eager=True``)."""

    def __init__(self, kit: Kit, task: Task, value: Any, error: BaseException | None) -> None:
        super().__init__(kit, task.id)
        self._task = task
        self._value = value
        self._error = error

    def ready(self) -> bool:
        return True

    def get(self, timeout: float | None = None) -> Any:
        if self._error is not None:
            raise self._error
        return self._value


ShouldRestart = Callable[["BaseProcess"], bool]


class Kit:
    """The entry point: initiate tasks, read results, send control events, run workers.

    :param backend: where tasks live.
    :param handler: runs and encodes tasks.
    :param config: tuning knobs (:class:`KitConfig`); keyword options override its fields.
    :param plugins: extra plugin objects for this kit only (picklable if workers use
        ``spawn``): they get the lifecycle and execution hooks; one that implements a
        registration hook is refused (those run once per process, over entry points).
    """

    def __init__(
        self,
        backend: Backend,
        handler: TaskHandler,
        config: KitConfig | None = None,
        *,
        plugins: Sequence[object] = (),
        **options: Any,
    ) -> None:
        if not isinstance(backend, Backend):
            raise ConfigurationError(
                f"backend must be a taskkit Backend, not {type(backend).__name__}"
            )
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
        self.config = config or KitConfig()
        self.plugins = tuple(plugins)
        self._clock_offset = 0.0
        self._clock_synced: float | None = None
        self.plugin_manager: pluggy.PluginManager = (
            make_plugin_manager(plugins=self.plugins) if self.plugins else get_plugin_manager()
        )

    def backend_now(self) -> float:
        """The backend's clock, estimated from the local one (re-synced every 30 s).

        Producers stamp ``created`` and the default ``due`` with it, so a host whose clock is
        ahead does not delay its own tasks.
        """
        if self.backend.clock_is_local:
            return self.backend.now()
        if self._clock_synced is None or time.monotonic() - self._clock_synced > 30.0:
            self._clock_offset = measure_offset(self.backend.now)
            self._clock_synced = time.monotonic()
        return time.time() + self._clock_offset

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild_kit, (self.backend, self.handler, self.config, self.plugins))

    @property
    def hook(self) -> Any:
        """The plugin hooks (``kit.hook.taskkit_task_initiated(task=...)``)."""
        return self.plugin_manager.hook

    # ------------------------------------------------------------------ producing

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
    ) -> Task:
        """Validate and encode one task without storing it (``initiate_tasks`` takes these)."""
        validate_name("group", group)
        validate_name("task name", name)
        payload = data if encoded else self.handler.encode_data(group, name, data)
        payload = validate_payload("task data", payload, self.config.max_data_size)
        if not isinstance(ttl, (int, float)) or ttl <= 0:
            raise InvalidTask(f"ttl must be a positive number of seconds, not {ttl!r}")
        if timeout is not None and (not isinstance(timeout, (int, float)) or timeout <= 0):
            raise InvalidTask(f"timeout must be a positive number of seconds, not {timeout!r}")
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
    ) -> Result:
        """Store a task for the workers of ``group`` and return a handle on its result.

        :param data: encoded with ``handler.encode_data(group, name, data)``.
        :param due: run no earlier than this (a datetime, naive meaning local time, or epoch
            seconds); default now.
        :param ttl: seconds the finished record and result are kept.
        :param eager: run the handler now, in this thread, and store nothing.
        :param timeout: run-time limit in seconds (default: the kit's ``default_timeout``).
        :param task_id: your own id, for idempotent enqueue: a second initiate with the same
            id stores nothing and returns a handle on the first.
        :raises InvalidTask: bad group, name, data type, due or ttl; nothing was written.
        :raises PayloadTooLarge: the encoded data exceeds ``max_data_size``.
        """
        task = self.make_task(group, name, data, due, ttl, timeout=timeout, task_id=task_id)
        if eager:
            return self._run_eagerly(task)
        self._store([task])
        return Result(self, task.id)

    def initiate_tasks(self, *items: Task | Mapping[str, Any]) -> list[Result]:
        """Store many tasks in one backend round trip.

        Each item is a :class:`Task` (from :meth:`make_task`) or a dict with ``group``,
        ``name``, ``data`` and optionally ``due``, ``ttl``, ``timeout``, ``task_id`` and
        ``eager``. All items are validated before anything is written.
        """
        tasks: list[Task] = []
        eager: dict[int, Task] = {}
        for i, item in enumerate(items):
            if isinstance(item, Task):
                validate_name("group", item.group)
                validate_name("task name", item.name)
                validate_payload("task data", item.data, self.config.max_data_size)
                tasks.append(item)
                continue
            if not isinstance(item, Mapping):
                raise InvalidTask(f"item {i} must be a Task or a dict, not {type(item).__name__}")
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
            }
            if unknown:
                raise InvalidTask(f"item {i} has unknown key(s) {', '.join(sorted(unknown))}")
            run_eagerly = bool(spec.pop("eager", False))
            task = self.make_task(**spec)
            if run_eagerly:
                eager[i] = task
            else:
                tasks.append(task)
        self._store(tasks)
        queued = iter(tasks)
        return [
            self._run_eagerly(eager[i]) if i in eager else Result(self, next(queued).id)
            for i in range(len(items))
        ]

    def _store(self, tasks: list[Task]) -> None:
        """Put validated tasks and report the ones newly stored to the plugins."""
        if not tasks:
            return
        stored = self.backend.put(tasks)
        if not self.hook.taskkit_task_initiated.get_hookimpls():
            return  # no plugin listens: skip a hook call per task (bulk enqueue)
        for task, was_stored in zip(tasks, stored):
            if was_stored:
                self._call_hook("taskkit_task_initiated", task=task)

    def _run_eagerly(self, task: Task) -> EagerResult:
        try:
            value = self.handler.handle(task)
            self.handler.decode_result(task, self.handler.encode_result(task, value))
        except DiscardTask:
            return EagerResult(self, task, None, NotFound(task.id, "discarded"))
        except Exception as exc:
            message = truncate_text(traceback.format_exc(), self.config.max_error_size)
            failed = Failed(task, message)
            failed.__cause__ = exc
            return EagerResult(self, task, None, failed)
        return EagerResult(self, task, value, None)

    # ------------------------------------------------------------------ results and control

    def get_result(self, task_id: str) -> Result:
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
            return self.handler.decode_result(task, outcome.result or b"")
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
        polling_interval: float | None = None,
        should_restart: ShouldRestart | None = None,
        *,
        start_method: str | None = None,
    ) -> None:
        """Run worker processes under a supervisor until SIGTERM/SIGINT or a shutdown event.

        The supervisor restarts a process that dies (unless ``should_restart(process)`` says
        no) and first expires the dead process's leases, so its tasks run again at once. The
        first SIGTERM/SIGINT shuts down gracefully (running tasks get ``grace_period``
        seconds, then are handed back); a second one stops at once.

        :param num_processes: worker processes to run.
        :param num_worker_threads_per_group: ``{group: threads}`` per process.
        :param schedule_entries: ``{scheduler_name: [entries]}`` run in every process (each
            point fires once however many replicas run).
        :param tzinfo: the time zone of schedules that set none (default: UTC).
        :param polling_interval: how often the supervisor checks its processes besides
            being woken by their exit (seconds, default 1).
        :param should_restart: decides whether a dead process is replaced.
        :param start_method: ``fork``, ``spawn`` or ``forkserver`` (default: the platform's).
        """
        from ._supervisor import Supervisor  # noqa: PLC0415

        Supervisor(
            self,
            self._worker_spec(
                num_processes, num_worker_threads_per_group, schedule_entries, tzinfo
            ),
            start_method=start_method,
            polling_interval=polling_interval,
            should_restart=should_restart,
        ).run()

    def start_processes(
        self,
        num_processes: int,
        num_worker_threads_per_group: Mapping[str, int],
        schedule_entries: ScheduleEntriesCompatMapping | None = None,
        tzinfo: tzinfo | None = None,
        daemon: bool = True,
        *,
        start_method: str | None = None,
    ) -> list[Any]:
        """Start worker processes (schedulers included) and return them, without supervising.

        With a single-process backend (the in-memory one) the workers run as threads of this
        process and the returned handles behave like processes (``is_alive``, ``join``,
        ``terminate``).
        """
        from ._supervisor import start_workers  # noqa: PLC0415

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
    ) -> Any:
        from ._worker import WorkerSpec  # noqa: PLC0415
        from .schedule import normalize_entries  # noqa: PLC0415

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
        entries = normalize_entries(schedule_entries or {}, self.handler, self.config.max_data_size)
        return WorkerSpec(num_processes, groups, entries, tz)

    def _call_hook(self, name: str, **kwargs: Any) -> None:
        """Call a lifecycle hook; a plugin's error is logged, never breaks the task."""
        try:
            getattr(self.hook, name)(**kwargs)
        except Exception:
            log.exception("taskkit plugin hook %s raised", name)


def _groups(groups: Sequence[str] | None) -> list[str] | None:
    if groups is None:
        return None
    if isinstance(groups, str):
        groups = [groups]
    return [validate_name("group", g) for g in groups]


def _rebuild_kit(
    backend: Backend, handler: TaskHandler, config: KitConfig, plugins: tuple[object, ...]
) -> Kit:
    return Kit(backend, handler, config, plugins=plugins)


def make_kit(url_or_backend: str | Backend, handler: TaskHandler, **options: Any) -> Kit:
    """Build a kit from a backend URL (``memory://``, ``redis://host/0``, ...) or a backend.

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
