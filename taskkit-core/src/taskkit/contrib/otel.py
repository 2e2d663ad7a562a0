"""Tracing with OpenTelemetry: a plugin over taskkit's hooks (``taskkit-core[otel]``).

Enable it on the kit, where the app configures OpenTelemetry (producers and workers alike)::

    import taskkit
    from taskkit.contrib.otel import OpenTelemetryPlugin

    kit = taskkit.make_kit("redis://127.0.0.1:6379/0", plugins=[OpenTelemetryPlugin()])

It records through the global tracer provider (``opentelemetry.trace.set_tracer_provider``,
or the one ``opentelemetry-instrument`` sets up) and carries trace context through the
global propagator (W3C ``traceparent``/``tracestate`` and ``baggage`` unless configured
otherwise). Without an SDK provider it does nothing: each hook returns after one check.

The spans follow OpenTelemetry's messaging semantic conventions (v1.44.0; status
Development), ``messaging.system`` ``"taskkit"``, a task's group as its destination:

* **producer**, for each task a kit stores (``initiate_task``, ``initiate_tasks``, function
  tasks' ``delay``/``initiate`` and the async forms): a ``PRODUCER`` span ``send <group>``
  (operation type ``send``), child of the producer's current span. Its context is injected
  into the task's headers and is the task's creation context. It ends when the
  ``taskkit_task_headers`` hook returns, before the backend write: ending it in
  ``taskkit_task_initiated`` would cover the write, but that hook is not called for a write
  that raises, a batch that a later plugin's headers made invalid, or a task id stored
  before, and such a span would never end. A producer that set trace headers itself keeps
  them (no span, nothing injected); a scheduler's task and an eager one carry none.
* **worker**, for each attempt: a ``CONSUMER`` span ``process <group>`` (operation type
  ``process``) whose parent is the task's creation context (the producer's span: one trace
  from the request that enqueued the task to every attempt that ran it), with a link to
  the same context as the conventions ask; current while the handler runs, so the
  handler's own spans are its children (an ``async def`` task's too). It ends once the
  attempt's outcome is stored (its hook), with events for what became of the attempt:
  ``taskkit.task.retried``, ``taskkit.task.failed``, ``taskkit.task.discarded``,
  ``taskkit.task.dead_lettered``, ``taskkit.task.cancelled``,
  ``taskkit.outcome.rejected`` (a stale claim). An attempt whose outcome comes with no hook
  (a cancel, a hand-back at shutdown, an unknown task held back for another worker, an
  outcome write given up on) ends ``outcome_timeout`` seconds later, or at the worker's
  stop, stamped with the time its handler returned.
* a task buried without an attempt of this worker (it kept killing its workers): a
  ``CLIENT`` span ``dead_letter <group>`` (operation type ``settle``) in the task's trace.

The handler's exception is recorded on the attempt's span (an ``exception`` event, status
``ERROR`` with its message, ``error.type`` its class); ``DiscardTask``, a cancel and an
unknown task are not errors. Task data is never recorded.

Worker processes: a forked worker inherits the app's provider (the SDK's batch processor
restarts its thread after a fork); a ``spawn`` one has it when the module that configures it
is imported there (the kit's module is). Each worker flushes the provider as it stops: a
worker process ends with ``os._exit``, which runs no ``atexit`` flush.
"""

from __future__ import annotations

import contextvars
import functools
import logging
import math
import os
import pickle
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Final

try:
    from opentelemetry import context as otel_context
    from opentelemetry import propagate, trace
    from opentelemetry.trace import Link, SpanKind, Status, StatusCode
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "taskkit.contrib.otel needs opentelemetry-api: pip install 'taskkit-core[otel]'"
    ) from exc

from .. import __version__
from .._health import one_line
from .._validation import validate_headers
from ..errors import ConfigurationError, DiscardTask, InvalidTask, TaskCancelled
from ..hookspecs import hookimpl

if TYPE_CHECKING:
    from opentelemetry.trace import Span, Tracer, TracerProvider

    from .._task import Task

__all__ = ["SCHEMA_URL", "OpenTelemetryPlugin"]

log = logging.getLogger("taskkit.otel")

#: The semantic conventions the spans follow.
SCHEMA_URL: Final = "https://opentelemetry.io/schemas/1.44.0"
_SYSTEM: Final = "taskkit"
#: Exceptions that end an attempt without an error: the handler's way to say so.
_NOT_ERRORS: Final = (DiscardTask, TaskCancelled)
#: Attempts whose spans wait for their outcome's hook at most (the oldest end first).
_MAX_PENDING: Final = 4096
#: Seconds between looks at the global tracer provider while none is set.
_RECHECK: Final = 1.0

#: The worker id of the task running in this thread or coroutine (set as it starts).
_worker_id: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "taskkit_otel_worker_id", default=None
)

_Key = tuple[str, int, int]


class OpenTelemetryPlugin:
    """Traces enqueues and attempts with OpenTelemetry (see the module docstring).

    :param tracer_provider: the provider to record with; default: the global one (one the
        app sets after making the kit is used within a second). A plugin given one cannot
        go to ``spawn`` workers: configure the global provider in the app's module instead.
    :param outcome_timeout: seconds an attempt's span waits for its outcome's hook before
        it ends without one (its end time is then when the handler returned).
    :param flush_timeout: seconds a stopping worker waits for the provider's flush.
    :raises ConfigurationError: a bad argument.
    """

    #: The plugin's name, as logs and the docs call it.
    name: ClassVar[str] = "taskkit.otel"

    def __init__(
        self,
        *,
        tracer_provider: TracerProvider | None = None,
        outcome_timeout: float = 60.0,
        flush_timeout: float = 5.0,
    ) -> None:
        if tracer_provider is not None and not hasattr(tracer_provider, "get_tracer"):
            raise ConfigurationError(
                f"OpenTelemetryPlugin(tracer_provider=...) takes an OpenTelemetry "
                f"TracerProvider, not {type(tracer_provider).__name__}"
            )
        for name, value in (("outcome_timeout", outcome_timeout), ("flush_timeout", flush_timeout)):
            if (
                isinstance(value, bool)
                or not isinstance(value, (int, float))
                or not math.isfinite(value)
                or value < 0
            ):
                raise ConfigurationError(
                    f"OpenTelemetryPlugin({name}=...) is a number of seconds >= 0, not {value!r}"
                )
        self.tracer_provider = tracer_provider
        self.outcome_timeout = float(outcome_timeout)
        self.flush_timeout = float(flush_timeout)
        self._tracer_cache: Tracer | None = None
        self._next_lookup = 0.0
        self._fields_cache: tuple[object, frozenset[str]] = (None, frozenset())
        self._attempts = _Attempts()
        self._warned_headers = False
        _PLUGINS.add(self)

    def __reduce__(self) -> tuple[Any, ...]:
        # Sent to spawn workers: the options only; each process has its own attempts.
        if self.tracer_provider is not None:
            raise pickle.PicklingError(
                "OpenTelemetryPlugin(tracer_provider=...) cannot be sent to a spawn worker: "
                "set the global provider in the module that defines the kit instead"
            )
        options: dict[str, Any] = {
            "outcome_timeout": self.outcome_timeout,
            "flush_timeout": self.flush_timeout,
        }
        return (functools.partial(OpenTelemetryPlugin, **options), ())

    def __repr__(self) -> str:
        provider = "global" if self.tracer_provider is None else "given"
        return f"OpenTelemetryPlugin(tracer_provider={provider})"

    # ------------------------------------------------------------------ producer

    @hookimpl
    def taskkit_task_headers(self, group: str, name: str, headers: dict[str, str]) -> None:
        tracer = self._tracer()
        if tracer is None:
            return
        if not headers.keys().isdisjoint(self._trace_fields()):
            return  # the producer's own creation context: keep it, add no span
        span = tracer.start_span(
            f"send {group}",
            kind=SpanKind.PRODUCER,
            attributes={
                "messaging.system": _SYSTEM,
                "messaging.operation.type": "send",
                "messaging.operation.name": "send",
                "messaging.destination.name": group,
                "messaging.taskkit.task.name": name,
            },
        )
        try:
            carrier: dict[str, str] = {}
            propagate.inject(carrier, context=trace.set_span_in_context(span))
            if headers or not _small(carrier):
                try:
                    validate_headers({**headers, **carrier})
                except InvalidTask as exc:  # PayloadTooLarge too
                    # Tracing must not refuse a task: it goes without trace context.
                    span.set_attribute("messaging.taskkit.context_injected", False)
                    self._warn_headers(group, name, exc)
                    return
            headers.update(carrier)
        finally:
            span.end()

    def _warn_headers(self, group: str, name: str, exc: Exception) -> None:
        if not self._warned_headers:
            self._warned_headers = True
            log.warning(
                "task %s/%s: trace context left out of its headers (%s); further ones are "
                "not logged",
                group,
                name,
                exc,
            )

    # ------------------------------------------------------------------ worker

    @hookimpl
    def taskkit_task_started(self, task: Task, worker_id: str) -> None:
        _worker_id.set(worker_id)

    @hookimpl(wrapper=True)
    def taskkit_execute_task(
        self, task: Task, call: Callable[[], Any]
    ) -> Generator[None, Any, Any]:
        tracer = self._tracer()
        if tracer is None:
            return (yield)
        self._attempts.sweep(self.outcome_timeout)
        headers = getattr(task, "headers", None) or {}
        # Over the current context: a task without trace headers (an eager one, a
        # scheduler's) continues whatever span is current where it runs.
        parent = propagate.extract(headers, context=otel_context.get_current())
        creation = trace.get_current_span(parent).get_span_context()
        worker_id = _worker_id.get()
        attributes: dict[str, str | int] = {
            "messaging.system": _SYSTEM,
            "messaging.operation.type": "process",
            "messaging.operation.name": "process",
            "messaging.destination.name": task.group,
            "messaging.message.id": task.id,
            "messaging.taskkit.task.name": task.name,
            "messaging.taskkit.task.attempt": task.retry_count + 1,
            "messaging.taskkit.message.delivery_count": task.deliveries,
        }
        if worker_id is not None:
            attributes["messaging.client.id"] = worker_id
        span = tracer.start_span(
            f"process {task.group}",
            context=parent,
            kind=SpanKind.CONSUMER,
            attributes=attributes,
            links=[Link(creation)] if creation.is_valid else None,
            record_exception=False,
            set_status_on_exception=False,
        )
        key = _key(task)
        attempt = self._attempts.begin(key, span)
        token = otel_context.attach(trace.set_span_in_context(span, parent))
        final = False
        try:
            return (yield)
        except BaseException as exc:
            if isinstance(exc, TaskCancelled):
                span.add_event("taskkit.task.cancelled")
                span.set_attribute("messaging.taskkit.task.outcome", "cancelled")
                final = True  # a cancel has no outcome hook
            elif not isinstance(exc, _NOT_ERRORS):
                span.record_exception(exc, escaped=True)
                attempt.error(_error_type(exc), one_line(exc))
            raise
        finally:
            otel_context.detach(token)
            self._attempts.exited(key, time.time_ns(), final)

    # ------------------------------------------------------------------ outcomes

    @hookimpl
    def taskkit_task_succeeded(self, task: Task, duration: float) -> None:
        self._settle(task, "succeeded")

    @hookimpl
    def taskkit_task_retried(self, task: Task, exception: BaseException, delay: float) -> None:
        self._settle(
            task, "retried", "taskkit.task.retried", {"messaging.taskkit.retry.delay": delay}
        )

    @hookimpl
    def taskkit_task_failed(
        self, task: Task, exception: BaseException | None, message: str
    ) -> None:
        # The stored error is a traceback when the handler raised: its last line says what.
        lines = message.strip().splitlines()
        error = lines[-1][:500] if lines else "failed"
        if exception is not None:
            self._settle(
                task,
                "failed",
                "taskkit.task.failed",
                {"messaging.taskkit.error": error},
                error=(_error_type(exception), one_line(exception)),
            )
        else:  # the core failed it (a time limit): the handler's exception, if any, stays
            self._settle(
                task,
                "failed",
                "taskkit.task.failed",
                {"messaging.taskkit.error": error},
                fallback_error=("_OTHER", error),
            )

    @hookimpl
    def taskkit_task_discarded(self, task: Task, reason: str) -> None:
        self._settle(
            task, "discarded", "taskkit.task.discarded", {"messaging.taskkit.reason": reason}
        )

    @hookimpl
    def taskkit_task_dead_lettered(self, task: Task, reason: str) -> None:
        event = {"messaging.taskkit.reason": reason}
        error = ("taskkit.dead_letter", reason)
        if self._settle(task, "dead_lettered", "taskkit.task.dead_lettered", event, error=error):
            return
        tracer = self._tracer()
        if tracer is None:
            return
        # Buried without an attempt here (at a claim, or before it started): a span of its
        # own, in the task's trace, so the trace shows where the task ended.
        parent = propagate.extract(getattr(task, "headers", None) or {})
        span = tracer.start_span(
            f"dead_letter {task.group}",
            context=parent,
            kind=SpanKind.CLIENT,
            attributes={
                "messaging.system": _SYSTEM,
                "messaging.operation.type": "settle",
                "messaging.operation.name": "dead_letter",
                "messaging.destination.name": task.group,
                "messaging.message.id": task.id,
                "messaging.taskkit.task.name": task.name,
                "messaging.taskkit.task.attempt": task.retry_count + 1,
                "messaging.taskkit.message.delivery_count": task.deliveries,
                "messaging.taskkit.task.outcome": "dead_lettered",
            },
        )
        span.add_event("taskkit.task.dead_lettered", event)
        _set_error(span, *error)
        span.end()

    @hookimpl
    def taskkit_outcome_rejected(self, task: Task, action: str) -> None:
        self._settle(
            task,
            "rejected",
            "taskkit.outcome.rejected",
            {"messaging.taskkit.outcome.action": action},
            error=("taskkit.stale_claim", f"the backend refused the {action}: the claim was stale"),
        )

    @hookimpl
    def taskkit_worker_stopped(self, worker_id: str) -> None:
        self._attempts.end_all()
        provider = self.tracer_provider or trace.get_tracer_provider()
        force_flush = getattr(provider, "force_flush", None)
        if callable(force_flush):
            force_flush(int(self.flush_timeout * 1000))

    # ------------------------------------------------------------------ helpers

    def _tracer(self) -> Tracer | None:
        """The tracer to record with, or None while no SDK provider is set (nothing to do).

        The global provider can be set once only, so a real one is kept for good. Until one
        is set, the global is looked at again at most every :data:`_RECHECK` seconds: the
        API's lookup reads ``os.environ``, a microsecond per call that a task without
        tracing should not pay several times.
        """
        tracer = self._tracer_cache
        if tracer is not None:
            return tracer
        now = time.monotonic()
        if now < self._next_lookup:
            return None
        provider = self.tracer_provider or trace.get_tracer_provider()
        if isinstance(provider, (trace.ProxyTracerProvider, trace.NoOpTracerProvider)):
            self._next_lookup = now + _RECHECK
            return None
        tracer = provider.get_tracer("taskkit", __version__, schema_url=SCHEMA_URL)
        self._tracer_cache = tracer
        return tracer

    def _trace_fields(self) -> frozenset[str]:
        """The header names the global propagator writes (kept per propagator: the
        composite builds a new set each time it is asked)."""
        textmap = propagate.get_global_textmap()
        seen, fields = self._fields_cache
        if textmap is not seen:
            fields = frozenset(textmap.fields)
            self._fields_cache = (textmap, fields)
        return fields

    def _settle(
        self,
        task: Task,
        outcome: str,
        event: str | None = None,
        attributes: Mapping[str, str | float] | None = None,
        *,
        error: tuple[str, str] | None = None,
        fallback_error: tuple[str, str] | None = None,
    ) -> bool:
        """Record ``outcome`` on the span of ``task``'s attempt and end it (or let the
        handler's end end it, when the handler still runs); False if no span waits.

        ``error`` marks the span failed; ``fallback_error`` only if nothing did before.
        """
        if self._attempts.empty():
            return False  # no span open (the usual case without an SDK): no lock taken
        found = self._attempts.outcome(_key(task))
        if found is None:
            return False
        attempt, running = found
        span = attempt.span
        span.set_attribute("messaging.taskkit.task.outcome", outcome)
        if event is not None:
            span.add_event(event, dict(attributes or {}))
        if error is not None:
            attempt.error(*error)
        elif fallback_error is not None and not attempt.errored:
            attempt.error(*fallback_error)
        if not running:
            span.end()
        return True


#: Every plugin of this process, for the reset after a fork.
_PLUGINS: weakref.WeakSet[OpenTelemetryPlugin] = weakref.WeakSet()


def _after_fork() -> None:
    # A forked worker starts with no attempts: the parent's open spans are the parent's to
    # end (ending them here too would export them twice), and its lock may have been held
    # by a thread that does not exist here.
    for plugin in list(_PLUGINS):
        plugin._attempts = _Attempts()


os.register_at_fork(after_in_child=_after_fork)


def _small(carrier: dict[str, str]) -> bool:
    """Whether the propagator's headers alone surely fit the caps (the usual case: a
    ``traceparent``, a ``tracestate`` and a modest ``baggage``), so the full check, a JSON
    encoding, can be skipped."""
    # 1000 characters of at most 4 bytes each, with their JSON quotes, stay under 4 KiB.
    return len(carrier) <= 8 and sum(len(k) + len(v) for k, v in carrier.items()) <= 1000


def _key(task: Task) -> _Key:
    return (task.id, task.retry_count, task.deliveries)


def _error_type(exc: BaseException) -> str:
    cls = type(exc)
    if cls.__module__ == "builtins":
        return cls.__qualname__
    return f"{cls.__module__}.{cls.__qualname__}"


def _set_error(span: Span, error_type: str, description: str) -> None:
    span.set_attribute("error.type", error_type)
    span.set_status(Status(StatusCode.ERROR, description))


@dataclass
class _Attempt:
    span: Span
    #: Whether the span's status says the attempt failed.
    errored: bool = False
    #: When the handler returned (ns since the epoch), once it has.
    ended_at: int | None = None
    #: Whether its outcome's hook came (while the handler still ran).
    settled: bool = False
    #: time.monotonic() at the handler's return, for the outcome timeout.
    exited: float = 0.0

    def error(self, error_type: str, description: str) -> None:
        self.errored = True
        _set_error(self.span, error_type, description)


class _Attempts:
    """The spans of attempts not ended yet, by (task id, retry count, deliveries): running,
    or waiting for their outcome's hook (oldest first)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._running: dict[_Key, _Attempt] = {}
        self._waiting: OrderedDict[_Key, _Attempt] = OrderedDict()

    def empty(self) -> bool:
        # Without the lock: an attempt's own outcome hook runs after its begin() returned.
        return not (self._running or self._waiting)

    def begin(self, key: _Key, span: Span) -> _Attempt:
        attempt = _Attempt(span)
        with self._lock:
            self._running[key] = attempt
        return attempt

    def exited(self, key: _Key, now_ns: int, final: bool) -> None:
        """The handler returned: end the span if its outcome is known (or none will come),
        else keep it for the outcome's hook."""
        evicted: list[_Attempt] = []
        with self._lock:
            attempt = self._running.pop(key, None)
            if attempt is None:
                return
            if not (final or attempt.settled):
                attempt.ended_at, attempt.exited = now_ns, time.monotonic()
                self._waiting[key] = attempt
                while len(self._waiting) > _MAX_PENDING:
                    evicted.append(self._waiting.popitem(last=False)[1])
                attempt = None
        if attempt is not None:
            attempt.span.end(end_time=now_ns)
        for old in evicted:
            old.span.end(end_time=old.ended_at)

    def outcome(self, key: _Key) -> tuple[_Attempt, bool] | None:
        """The span of the attempt whose outcome came, and whether its handler still runs
        (then the handler's end ends it); None: no such attempt waits."""
        with self._lock:
            attempt = self._waiting.pop(key, None)
            if attempt is not None:
                return attempt, False
            attempt = self._running.get(key)
            if attempt is None:
                return None
            attempt.settled = True
            return attempt, True

    def sweep(self, timeout: float) -> None:
        """End the spans that waited ``timeout`` seconds for an outcome hook."""
        limit = time.monotonic() - timeout
        with self._lock:
            expired = []
            while self._waiting:
                key, attempt = next(iter(self._waiting.items()))
                if attempt.exited > limit:
                    break
                expired.append(self._waiting.pop(key))
        for attempt in expired:
            attempt.span.end(end_time=attempt.ended_at)

    def end_all(self) -> None:
        """End every span (the worker stops)."""
        with self._lock:
            waiting, running = list(self._waiting.values()), list(self._running.values())
            self._waiting.clear()
            self._running.clear()
        for attempt in waiting:
            attempt.span.end(end_time=attempt.ended_at)
        for attempt in running:
            attempt.span.end()
