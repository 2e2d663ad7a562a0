"""Error reporting to Sentry: a plugin over taskkit's lifecycle hooks (``taskkit-core[sentry]``).

Enable it on the kit, where the app initialises Sentry::

    import sentry_sdk
    import taskkit
    from taskkit.contrib.sentry import SentryPlugin

    sentry_sdk.init(dsn="https://key@o0.ingest.sentry.io/0")
    kit = taskkit.make_kit("redis://127.0.0.1:6379/0", plugins=[SentryPlugin()])

What is reported, once per attempt (the hooks fire once the outcome is stored, so a stale
worker's attempt, whose outcome the backend refused, reports nothing; its new owner's run
reports the attempt):

* an exception that makes a task retry (level ``warning``) or fail (level ``error``): the
  exception with its stack trace;
* a task failed by the core without an exception of its own (its time limit): a message;
* a dead letter (a task that kept killing its workers, or that no worker knew for
  ``unknown_task_window``): a message.

Not reported: ``DiscardTask``, a cancel, an unknown task while it is held back for a worker
that knows it, a success.

Every event carries the tags ``taskkit.task_id``, ``taskkit.group``, ``taskkit.name``,
``taskkit.attempt`` and ``taskkit.outcome`` (``retried``, ``failed``, ``dead_lettered``), one
``taskkit.header.<name>`` tag per task header (when the tag name fits Sentry's 32 characters),
the transaction ``group/name``, and a ``taskkit`` context (ids, times, worker, headers, the
retry delay or stored error). The plugin adds nothing of the task's data (the stack trace's
local variables, which may show it, are Sentry's own ``include_local_variables`` option).

Each attempt runs in a Sentry isolation scope of its own, breadcrumbs cleared: the events
the handler sends itself (``sentry_sdk.capture_*``, or error logs through Sentry's logging
integration) carry the task's tags, and the attempt's event carries the breadcrumbs and tags
the handler added. The worker's own log records of task outcomes (logger ``taskkit.worker``,
with a ``task_id``) stay breadcrumbs but are not sent as events by Sentry's logging
integration: this plugin reports those outcomes, tagged, and would otherwise be doubled.

Worker processes: a forked worker inherits the app's Sentry client; a ``spawn`` one has the
client when the module that calls ``sentry_sdk.init`` is imported there (the kit's module is),
or when the plugin is given ``init=``. A worker flushes pending events as it stops.
"""

from __future__ import annotations

import contextvars
import functools
import logging
import math
import re
import threading
from collections import OrderedDict
from collections.abc import Generator, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, ClassVar, Final, Literal

try:
    import sentry_sdk
    from sentry_sdk.scope import use_isolation_scope
    from sentry_sdk.utils import event_from_exception
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "taskkit.contrib.sentry needs sentry-sdk: pip install 'taskkit-core[sentry]'"
    ) from exc

from ..errors import ConfigurationError, DiscardTask, TaskCancelled, UnknownTask
from ..hookspecs import hookimpl

if TYPE_CHECKING:
    from collections.abc import Callable

    from sentry_sdk._types import Event, Hint
    from sentry_sdk.scope import Scope

    from .._task import Task

__all__ = ["SentryPlugin"]

_Level = Literal["warning", "error"]

log = logging.getLogger("taskkit.sentry")

#: The logger of the worker's task-outcome records (see ``taskkit._worker``).
WORKER_LOGGER: Final = "taskkit.worker"
#: Sentry's limits: tag keys of at most 32 characters of these, values of at most 200.
_TAG_KEY: Final = re.compile(r"[A-Za-z0-9_.:-]{1,32}")
_TAG_VALUE_LENGTH: Final = 200
#: Exceptions that end an attempt without an error to report.
_NOT_REPORTED: Final = (DiscardTask, TaskCancelled, UnknownTask)
#: Attempt scopes kept between the handler's exception and the outcome's hook. Attempts
#: whose outcome has no hook (a cancel, a hand-back) are dropped oldest first past this.
_MAX_PENDING_ATTEMPTS: Final = 1024

#: The worker id of the task running in this thread or coroutine (set as it starts).
_worker_id: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "taskkit_sentry_worker_id", default=None
)

_process_lock = threading.Lock()
#: Whether this process's global Sentry scope has the outcome-record filter.
_filter_installed = False


class SentryPlugin:
    """Reports task errors and dead letters to Sentry (see the module docstring).

    :param init: keyword arguments for ``sentry_sdk.init``, called in a worker process where
        no Sentry client is active yet (``{}``: the DSN comes from ``SENTRY_DSN``). Without
        it the plugin uses the client the app initialised, and reports nothing (with one
        warning per worker process) where there is none. Must be picklable for ``spawn``.
    :param header_tags: add a ``taskkit.header.<name>`` tag per task header (the headers
        are in the ``taskkit`` context either way).
    :param flush_timeout: seconds a stopping worker waits for pending events to be sent.
    :raises ConfigurationError: a bad argument.
    """

    #: The plugin's name, as logs and the docs call it.
    name: ClassVar[str] = "taskkit.sentry"

    def __init__(
        self,
        *,
        init: Mapping[str, Any] | None = None,
        header_tags: bool = True,
        flush_timeout: float = 2.0,
    ) -> None:
        if init is not None and not isinstance(init, Mapping):
            raise ConfigurationError(
                f"SentryPlugin(init=...) takes sentry_sdk.init's keyword arguments as a "
                f"mapping, not {type(init).__name__}"
            )
        if not isinstance(header_tags, bool):
            raise ConfigurationError(
                f"SentryPlugin(header_tags=...) is a bool, not {header_tags!r}"
            )
        if (
            isinstance(flush_timeout, bool)
            or not isinstance(flush_timeout, (int, float))
            or not math.isfinite(flush_timeout)
            or flush_timeout < 0
        ):
            raise ConfigurationError(
                f"SentryPlugin(flush_timeout=...) is a number of seconds >= 0, not "
                f"{flush_timeout!r}"
            )
        self.init = dict(init) if init is not None else None
        self.header_tags = header_tags
        self.flush_timeout = float(flush_timeout)
        self._attempts = _PendingAttempts()
        self._warned = False

    def __reduce__(self) -> tuple[Any, ...]:
        # Sent to spawn workers: the options only; each process keeps its own attempts.
        options: dict[str, Any] = {
            "init": self.init,
            "header_tags": self.header_tags,
            "flush_timeout": self.flush_timeout,
        }
        return (functools.partial(SentryPlugin, **options), ())

    def __repr__(self) -> str:
        init = "None" if self.init is None else "{...}"  # it may hold the DSN's key
        return f"SentryPlugin(init={init}, header_tags={self.header_tags})"

    # ------------------------------------------------------------------ worker lifecycle

    @hookimpl
    def taskkit_worker_started(self, worker_id: str, groups: list[str]) -> None:
        if not self._active() and not self._warned:
            self._warned = True
            log.warning(
                "worker %s: no Sentry client is active, so task errors are not reported: call "
                "sentry_sdk.init(...) in the module that defines the kit, or pass "
                "SentryPlugin(init={...})",
                worker_id,
            )

    @hookimpl
    def taskkit_worker_stopped(self, worker_id: str) -> None:
        # A worker process ends with os._exit: Sentry's own flush at exit never runs there.
        if sentry_sdk.get_client().is_active():
            sentry_sdk.flush(timeout=self.flush_timeout)

    @hookimpl
    def taskkit_task_started(self, task: Task, worker_id: str) -> None:
        _worker_id.set(worker_id)

    # ------------------------------------------------------------------ the attempt's scope

    @hookimpl(wrapper=True)
    def taskkit_execute_task(
        self, task: Task, call: Callable[[], Any]
    ) -> Generator[None, Any, Any]:
        if not self._active():
            return (yield)
        attempt = self._attempt(task)
        with use_isolation_scope(attempt.scope):
            try:
                return (yield)
            except BaseException as exc:
                if not isinstance(exc, _NOT_REPORTED):
                    self._attempts.put(task, attempt)
                raise

    # ------------------------------------------------------------------ outcomes

    @hookimpl
    def taskkit_task_retried(self, task: Task, exception: BaseException, delay: float) -> None:
        self._report(task, "retried", "warning", exception, {"retry_delay": delay})

    @hookimpl
    def taskkit_task_failed(
        self, task: Task, exception: BaseException | None, message: str
    ) -> None:
        text = None if exception is not None else f"task {task.group}/{task.name} failed: {message}"
        self._report(task, "failed", "error", exception, {"error": message}, text)

    @hookimpl
    def taskkit_task_dead_lettered(self, task: Task, reason: str) -> None:
        text = f"task {task.group}/{task.name} became a dead letter: {reason}"
        self._report(task, "dead_lettered", "error", None, {"reason": reason}, text)

    @hookimpl
    def taskkit_task_discarded(self, task: Task, reason: str) -> None:
        self._attempts.pop(task)  # no event: the scope of a DiscardTask from the retry policy

    # ------------------------------------------------------------------ helpers

    def _active(self) -> bool:
        """Whether this process has an active Sentry client (initialising it from ``init``
        the first time, if given); installs the outcome-record filter once it has."""
        if not sentry_sdk.get_client().is_active():
            if self.init is None:
                return False
            with _process_lock:
                if not sentry_sdk.get_client().is_active():
                    sentry_sdk.init(**self.init)
            if not sentry_sdk.get_client().is_active():
                return False
        _install_record_filter()
        return True

    def _attempt(self, task: Task) -> _Attempt:
        """A scope for one attempt of ``task``, with its tags and context."""
        scope = sentry_sdk.get_isolation_scope().fork()
        # The thread's breadcrumbs are other tasks' (or the worker's own threads').
        scope.clear_breadcrumbs()
        headers = dict(getattr(task, "headers", None) or {})
        scope.set_transaction_name(f"{task.group}/{task.name}", source="task")
        scope.set_tag("taskkit.task_id", task.id)
        scope.set_tag("taskkit.group", task.group)
        scope.set_tag("taskkit.name", task.name)
        scope.set_tag("taskkit.attempt", str(task.retry_count + 1))
        if self.header_tags:
            for name, value in headers.items():
                key = f"taskkit.header.{name}"
                if _TAG_KEY.fullmatch(key):
                    scope.set_tag(key, _tag_value(value))
        context = _task_context(task, headers)
        scope.set_context("taskkit", context)
        return _Attempt(scope, context)

    def _report(
        self,
        task: Task,
        outcome: str,
        level: _Level,
        exception: BaseException | None,
        details: dict[str, Any],
        message: str | None = None,
    ) -> None:
        attempt = self._attempts.pop(task)
        if not self._active():
            return
        if attempt is None:  # no exception went through the handler's scope (a time limit)
            attempt = self._attempt(task)
        # An empty context: Sentry's deduplication remembers the last exception per context,
        # and the worker's own log record of this exception (dropped by the record filter)
        # may have been seen first in this thread's.
        contextvars.Context().run(_capture, attempt, outcome, level, exception, details, message)


def _capture(
    attempt: _Attempt,
    outcome: str,
    level: _Level,
    exception: BaseException | None,
    details: dict[str, Any],
    message: str | None,
) -> None:
    scope = attempt.scope
    scope.set_tag("taskkit.outcome", outcome)
    scope.set_level(level)
    scope.set_context("taskkit", {**attempt.context, "outcome": outcome, **details})
    event: Event
    hint: Hint
    if exception is not None:
        client = sentry_sdk.get_client()
        event, hint = event_from_exception(
            exception,
            client_options=client.options,
            # Unhandled: the task ended with it (a retry is the policy handling it).
            mechanism={"type": "taskkit", "handled": outcome == "retried"},
        )
    else:
        event, hint = {"message": message or outcome}, {}
    with use_isolation_scope(scope):
        sentry_sdk.capture_event(event, hint=hint)


def _task_context(task: Task, headers: dict[str, str]) -> dict[str, Any]:
    return {
        "task_id": task.id,
        "group": task.group,
        "name": task.name,
        "attempt": task.retry_count + 1,
        "deliveries": task.deliveries,
        "created": _iso(task.created),
        "due": _iso(task.due),
        "scheduled": _iso(task.scheduled) if task.scheduled is not None else None,
        "timeout": task.timeout,
        "worker_id": _worker_id.get(),
        "headers": headers,
    }


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, timezone.utc).isoformat(timespec="milliseconds")


def _tag_value(value: object) -> str:
    return " ".join(str(value).split())[:_TAG_VALUE_LENGTH]


def _drop_outcome_records(event: Event, hint: Hint) -> Event | None:
    """Sentry's logging integration sends ERROR records as events; the worker's records of
    task outcomes are reported by the plugin instead (tagged, once per attempt)."""
    record = hint.get("log_record") if hint else None
    if (
        isinstance(record, logging.LogRecord)
        and record.name == WORKER_LOGGER
        and getattr(record, "task_id", None) is not None
    ):
        return None
    return event


def _install_record_filter() -> None:
    global _filter_installed
    if _filter_installed:
        return
    with _process_lock:
        if not _filter_installed:
            sentry_sdk.get_global_scope().add_event_processor(_drop_outcome_records)
            _filter_installed = True


@dataclass(frozen=True)
class _Attempt:
    """The Sentry scope one attempt ran in, and its ``taskkit`` context."""

    scope: Scope
    context: dict[str, Any]


class _PendingAttempts:
    """Attempts by (task id, attempt), from the handler's exception to its outcome's hook."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._attempts: OrderedDict[tuple[str, int], _Attempt] = OrderedDict()

    def put(self, task: Task, attempt: _Attempt) -> None:
        with self._lock:
            self._attempts[(task.id, task.retry_count)] = attempt
            while len(self._attempts) > _MAX_PENDING_ATTEMPTS:
                self._attempts.popitem(last=False)

    def pop(self, task: Task) -> _Attempt | None:
        with self._lock:
            return self._attempts.pop((task.id, task.retry_count), None)
