"""The OpenTelemetry plugin (``taskkit.contrib.otel``) on in-process workers (memory backend).

Spans are read from the SDK's ``InMemorySpanExporter`` behind a provider given to the plugin
(the global provider can be set once per process, so these tests leave it alone; the one
test of the global lookup runs in a process of its own). Across real worker processes on
Redis and PostgreSQL: ``integration/test_otel.py``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import pickle
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from taskkit import (
    BackendUnavailable,
    ConfigurationError,
    DiscardTask,
    Failed,
    Kit,
    MemoryBackend,
    Task,
    TaskHandler,
    TaskState,
    current_task,
)

pytest.importorskip("opentelemetry.sdk")

from opentelemetry import baggage, trace
from opentelemetry import context as otel_context
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
    InMemorySpanExporter,
)
from opentelemetry.trace import SpanKind, StatusCode
from taskkit.contrib import otel
from taskkit.contrib.otel import OpenTelemetryPlugin

from .conftest import wait_until


class Spans:
    """A provider whose finished spans are kept; counts its flushes."""

    def __init__(self) -> None:
        self.exporter = InMemorySpanExporter()
        self.provider = TracerProvider()
        self.provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.flushes = 0
        original = self.provider.force_flush

        def force_flush(timeout_millis: int = 30000) -> bool:
            self.flushes += 1
            return original(timeout_millis)

        self.provider.force_flush = force_flush  # type: ignore[method-assign]

    def finished(self, name: str | None = None) -> list[ReadableSpan]:
        spans = list(self.exporter.get_finished_spans())
        return [s for s in spans if name is None or s.name == name]

    def of(self, task_id: str) -> list[ReadableSpan]:
        return [
            s
            for s in self.finished()
            if (s.attributes or {}).get("messaging.message.id") == task_id
        ]

    def app_span(self, name: str = "request") -> Any:
        return self.provider.get_tracer("app").start_as_current_span(name)


@pytest.fixture
def spans() -> Iterator[Spans]:
    recorded = Spans()
    yield recorded
    recorded.provider.shutdown()


released = threading.Event()
first_delivery_started = threading.Event()


class Handler(TaskHandler):
    def __init__(self, provider: TracerProvider | None = None) -> None:
        self.provider = provider

    def handle(self, task: Task) -> Any:
        if task.name == "ok":
            return dict(task.headers)
        if task.name == "child":  # the handler's own span, under whatever span is current
            assert self.provider is not None
            with self.provider.get_tracer("app").start_as_current_span("handler work"):
                return "fine"
        if task.name in ("flaky", "broken"):  # flaky: retried twice, then failed
            raise ValueError(f"no luck on attempt {task.retry_count + 1}")
        if task.name == "discard":
            raise DiscardTask("not wanted")
        if task.name == "until-cancelled":
            context = current_task()
            assert context is not None
            while True:
                context.check()
                threading.Event().wait(0.01)
        if task.name == "too-slow":  # in Python between waits: the time limit interrupts it
            for _ in range(3000):
                threading.Event().wait(0.01)
        if task.name == "stale":
            if task.deliveries == 1:
                first_delivery_started.set()
                released.wait(10)
                raise RuntimeError("from the stale delivery")
            raise RuntimeError("from the current delivery")
        return super().handle(task)  # UnknownTask

    def get_retry_interval(self, task: Task, exception: Exception) -> float | None:
        if task.name == "flaky" and task.retry_count < 2:
            return 0.01
        return None


@dataclass
class Running:
    kit: Kit
    handles: list[Any] = field(default_factory=list)

    @property
    def backend(self) -> MemoryBackend:
        backend = self.kit.backend
        assert isinstance(backend, MemoryBackend)
        return backend

    def state(self, task_id: str) -> TaskState | None:
        outcome = self.backend.get_outcome(task_id)
        return outcome.state if outcome else None

    def start(self, threads: int = 3) -> Running:
        self.handles = self.kit.start_processes(1, {"g": threads})
        return self

    def stop(self) -> None:
        for handle in self.handles:
            handle.kill()
        for handle in self.handles:
            handle.join(10)


def _kit(spans: Spans, backend: MemoryBackend | None = None, **options: Any) -> Kit:
    plugin_options = {
        k: options.pop(k) for k in ("outcome_timeout", "flush_timeout") if k in options
    }
    return Kit(
        backend or MemoryBackend(),
        Handler(spans.provider),
        plugins=[OpenTelemetryPlugin(tracer_provider=spans.provider, **plugin_options)],
        lease_seconds=2.0,
        control_interval=0.05,
        timeout_grace=0.5,
        **options,
    )


@pytest.fixture
def running(spans: Spans) -> Iterator[Running]:
    run = Running(_kit(spans)).start()
    yield run
    run.stop()


def _ids(span: Any) -> tuple[int, int]:
    assert span.context is not None
    return span.context.trace_id, span.context.span_id


def _parent(span: ReadableSpan) -> tuple[int, int] | None:
    return (span.parent.trace_id, span.parent.span_id) if span.parent else None


def _traceparent(span: ReadableSpan) -> str:
    assert span.context is not None
    trace_id, span_id = _ids(span)
    return f"00-{trace_id:032x}-{span_id:016x}-{span.context.trace_flags:02x}"


def _attrs(span: ReadableSpan) -> dict[str, Any]:
    return dict(span.attributes or {})


def _events(span: ReadableSpan) -> list[str]:
    return [e.name for e in span.events]


def _attempt_spans(spans: Spans, task_id: str, count: int) -> list[ReadableSpan]:
    found = wait_until(lambda: len(spans.of(task_id)) >= count and spans.of(task_id))
    return sorted(found, key=lambda s: _attrs(s)["messaging.taskkit.task.attempt"])


# --------------------------------------------------------------------------- producer


def test_the_enqueue_is_a_send_span_whose_context_the_task_carries(
    spans: Spans, running: Running
) -> None:
    with spans.app_span() as request:
        result = running.kit.initiate_task("g", "ok", None)
    (send,) = spans.finished("send g")  # ended by the time initiate_task returned
    assert send.kind is SpanKind.PRODUCER
    assert _parent(send) == _ids(request)
    assert _attrs(send) == {
        "messaging.system": "taskkit",
        "messaging.operation.type": "send",
        "messaging.operation.name": "send",
        "messaging.destination.name": "g",
        "messaging.taskkit.task.name": "ok",
    }
    assert send.status.status_code is StatusCode.UNSET
    headers = result.get(timeout=10)  # the handler returns the headers it sees
    assert headers["traceparent"] == _traceparent(send)


def test_a_batch_gives_each_task_its_own_send_span(spans: Spans, running: Running) -> None:
    results = running.kit.initiate_tasks(
        *({"group": "g", "name": "ok", "data": n} for n in range(3))
    )
    sends = spans.finished("send g")
    assert len(sends) == 3 and len({_ids(s) for s in sends}) == 3
    seen = {r.get(timeout=10)["traceparent"] for r in results}
    assert seen == {_traceparent(s) for s in sends}


def test_a_producers_own_trace_headers_are_kept_and_no_span_is_made(
    spans: Spans, running: Running
) -> None:
    own = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    result = running.kit.initiate_task("g", "ok", None, headers={"traceparent": own})
    assert result.get(timeout=10) == {"traceparent": own}
    assert spans.finished("send g") == []
    (process,) = _attempt_spans(spans, result.task_id, 1)
    assert _parent(process) == (0x0AF7651916CD43DD8448EB211C80319C, 0xB7AD6B7169203331)


class RefusingBackend(MemoryBackend):
    def put(self, tasks: Any) -> Any:
        raise BackendUnavailable("the store is down")


def test_a_failed_write_leaves_no_span_open(spans: Spans) -> None:
    kit = _kit(spans, RefusingBackend())
    with pytest.raises(BackendUnavailable):
        kit.initiate_task("g", "ok", None)
    # The span ended with the hook, before the write: nothing waits for a hook that the
    # failed write never calls.
    (send,) = spans.finished("send g")
    assert send.end_time is not None


def test_headers_that_would_pass_the_cap_go_without_trace_context(
    spans: Spans, running: Running, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="taskkit.otel")
    big = {"blob": "x" * 4050}  # fits the 4 KiB cap alone, not with a traceparent
    first = running.kit.initiate_task("g", "ok", None, headers=big)
    second = running.kit.initiate_task("g", "ok", None, headers=big)
    assert first.get(timeout=10) == big and second.get(timeout=10) == big  # stored anyway
    sends = spans.finished("send g")
    assert [_attrs(s)["messaging.taskkit.context_injected"] for s in sends] == [False, False]
    warnings = [r for r in caplog.records if r.name == "taskkit.otel"]
    assert len(warnings) == 1 and "trace context left out" in warnings[0].getMessage()


def test_baggage_travels_unless_it_would_pass_the_cap(spans: Spans, running: Running) -> None:
    small = otel_context.attach(baggage.set_baggage("tenant", "acme"))
    try:
        with_baggage = running.kit.initiate_task("g", "ok", None)
    finally:
        otel_context.detach(small)
    assert with_baggage.get(timeout=10)["baggage"] == "tenant=acme"
    big = otel_context.get_current()
    for n in range(3):  # under the baggage propagator's own limits, over the headers' 4 KiB
        big = baggage.set_baggage(f"blob{n}", "y" * 1500, context=big)
    large = otel_context.attach(big)
    try:
        without = running.kit.initiate_task("g", "ok", None)  # stored, without trace headers
    finally:
        otel_context.detach(large)
    assert without.get(timeout=10) == {}


def test_an_eager_task_continues_the_producers_current_span(spans: Spans) -> None:
    kit = _kit(spans)
    with spans.app_span() as request:
        assert kit.initiate_task("g", "ok", None, eager=True).get() == {}
    assert spans.finished("send g") == []  # an eager task is stored nowhere
    (process,) = spans.finished("process g")
    assert _parent(process) == _ids(request)
    assert _attrs(process)["messaging.client.id"] == "eager"


# --------------------------------------------------------------------------- worker


def test_each_attempt_is_a_consumer_span_under_the_send_span(
    spans: Spans, running: Running
) -> None:
    result = running.kit.initiate_task("g", "ok", None)
    result.get(timeout=10)
    (send,) = spans.finished("send g")
    (process,) = _attempt_spans(spans, result.task_id, 1)
    assert process.name == "process g" and process.kind is SpanKind.CONSUMER
    assert _parent(process) == _ids(send)
    assert [(link.context.trace_id, link.context.span_id) for link in process.links] == [_ids(send)]
    assert _attrs(process) == {
        "messaging.system": "taskkit",
        "messaging.operation.type": "process",
        "messaging.operation.name": "process",
        "messaging.destination.name": "g",
        "messaging.message.id": result.task_id,
        "messaging.client.id": running.handles[0].worker_id,
        "messaging.taskkit.task.name": "ok",
        "messaging.taskkit.task.attempt": 1,
        "messaging.taskkit.message.delivery_count": 1,
        "messaging.taskkit.task.outcome": "succeeded",
    }
    assert process.status.status_code is StatusCode.UNSET and process.events == ()


def test_the_handlers_own_spans_are_children_of_the_attempt(spans: Spans, running: Running) -> None:
    result = running.kit.initiate_task("g", "child", None)
    assert result.get(timeout=10) == "fine"
    (process,) = _attempt_spans(spans, result.task_id, 1)
    (work,) = spans.finished("handler work")
    assert _parent(work) == _ids(process)


def test_async_tasks_run_inside_their_attempts_span(spans: Spans) -> None:
    tracer = spans.provider.get_tracer("app")

    class AsyncHandler(TaskHandler):
        async def handle(self, task: Task) -> Any:
            with tracer.start_as_current_span(f"awaiting {task.id}"):
                await asyncio.sleep(0)  # the span stays current across the await
            if task.name == "broken":
                raise LookupError("from a coroutine")
            return None

        def get_retry_interval(self, task: Task, exception: Exception) -> float | None:
            return None

    kit = Kit(
        MemoryBackend(),
        AsyncHandler(),
        plugins=[OpenTelemetryPlugin(tracer_provider=spans.provider)],
        lease_seconds=2.0,
    )
    handles = kit.start_processes(1, {"a": 4})
    try:
        results = [kit.initiate_task("a", name, None) for name in ("co", "co", "broken")]
        for result in results:
            wait_until(lambda: kit.backend.get_outcome(result.task_id))  # noqa: B023
        found = wait_until(lambda: len(spans.finished("process a")) == 3 and spans)
    finally:
        for handle in handles:
            handle.kill()
            handle.join(10)
    for result in results:
        (process,) = found.of(result.task_id)
        (own,) = found.finished(f"awaiting {result.task_id}")
        assert _parent(own) == _ids(process)  # the coroutine saw the attempt's span
    (failed,) = found.of(results[2].task_id)
    assert failed.status.status_code is StatusCode.ERROR
    assert _attrs(failed)["error.type"] == "LookupError"


def test_retries_and_the_final_failure_are_recorded_on_each_attempt(
    spans: Spans, running: Running
) -> None:
    result = running.kit.initiate_task("g", "flaky", None)
    with pytest.raises(Failed):
        result.get(timeout=10)
    (send,) = spans.finished("send g")
    attempts = _attempt_spans(spans, result.task_id, 3)
    assert [_attrs(s)["messaging.taskkit.task.attempt"] for s in attempts] == [1, 2, 3]
    assert {_parent(s) for s in attempts} == {_ids(send)}  # every attempt in the one trace
    assert [_events(s) for s in attempts] == [
        ["exception", "taskkit.task.retried"],
        ["exception", "taskkit.task.retried"],
        ["exception", "taskkit.task.failed"],
    ]
    assert [_attrs(s)["messaging.taskkit.task.outcome"] for s in attempts] == [
        "retried",
        "retried",
        "failed",
    ]
    for n, span in enumerate(attempts, 1):
        assert span.status.status_code is StatusCode.ERROR
        assert span.status.description == f"ValueError: no luck on attempt {n}"
        assert _attrs(span)["error.type"] == "ValueError"
        exception = span.events[0].attributes or {}
        assert exception["exception.type"] == "ValueError"
    assert (attempts[0].events[1].attributes or {})["messaging.taskkit.retry.delay"] == 0.01
    failed = attempts[2].events[1].attributes or {}
    assert failed["messaging.taskkit.error"] == "ValueError: no luck on attempt 3"


def test_a_time_limit_fails_the_attempts_span(spans: Spans, running: Running) -> None:
    result = running.kit.initiate_task("g", "too-slow", None, timeout=0.2)
    with pytest.raises(Failed):
        result.get(timeout=10)
    (span,) = _attempt_spans(spans, result.task_id, 1)
    assert _events(span) == ["exception", "taskkit.task.failed"]
    assert _attrs(span)["error.type"] == "taskkit.errors.TaskTimeout"
    assert span.status.status_code is StatusCode.ERROR
    failed = span.events[1].attributes or {}
    assert failed["messaging.taskkit.error"] == "timed out after 0.2s"


def test_a_discard_and_a_cancel_are_events_not_errors(spans: Spans, running: Running) -> None:
    kit = running.kit
    discarded = kit.initiate_task("g", "discard", None)
    cancelled = kit.initiate_task("g", "until-cancelled", None)
    wait_until(lambda: running.state(cancelled.task_id) is TaskState.RUNNING)
    kit.cancel(cancelled.task_id)
    (discard,) = _attempt_spans(spans, discarded.task_id, 1)
    (cancel,) = _attempt_spans(spans, cancelled.task_id, 1)  # ended with no outcome hook
    assert _events(discard) == ["taskkit.task.discarded"]
    assert (discard.events[0].attributes or {})["messaging.taskkit.reason"] == "not wanted"
    assert _events(cancel) == ["taskkit.task.cancelled"]
    for span in (discard, cancel):
        assert span.status.status_code is StatusCode.UNSET
        assert "error.type" not in _attrs(span)


def test_a_task_buried_at_a_claim_gets_a_dead_letter_span_in_its_trace(spans: Spans) -> None:
    run = Running(_kit(spans, max_deliveries=1))
    result = run.kit.initiate_task("g", "ok", None)
    (send,) = spans.finished("send g")
    # A worker claimed it and died (its lease lapsed): the next claim buries it.
    run.backend.claim("g", "gone", 1, -1, 1)
    run.start()
    try:
        (span,) = wait_until(lambda: spans.finished("dead_letter g"))
    finally:
        run.stop()
    assert span.kind is SpanKind.CLIENT and _parent(span) == _ids(send)
    attrs = _attrs(span)
    assert (attrs["messaging.operation.type"], attrs["messaging.operation.name"]) == (
        "settle",
        "dead_letter",
    )
    assert attrs["messaging.message.id"] == result.task_id
    assert attrs["error.type"] == "taskkit.dead_letter"
    assert span.status.status_code is StatusCode.ERROR
    assert _events(span) == ["taskkit.task.dead_lettered"]
    assert spans.finished("process g") == []  # it never ran


def test_an_unknown_task_buried_by_its_attempt_says_so_on_that_span(spans: Spans) -> None:
    run = Running(_kit(spans, unknown_task_window=0.0)).start()
    try:
        result = run.kit.initiate_task("g", "nobody-knows-me", None)
        (span,) = _attempt_spans(spans, result.task_id, 1)
    finally:
        run.stop()
    assert _events(span) == ["taskkit.task.dead_lettered"]  # UnknownTask is no exception event
    assert _attrs(span)["messaging.taskkit.task.outcome"] == "dead_lettered"
    assert span.status.status_code is StatusCode.ERROR


def test_a_held_back_task_ends_after_the_outcome_timeout_stamped_at_its_return(
    spans: Spans,
) -> None:
    run = Running(_kit(spans, outcome_timeout=0.0)).start(threads=1)
    try:
        held = run.kit.initiate_task("g", "nobody-knows-me", None)
        wait_until(lambda: run.handles[0].worker.unknown_tasks.deferred >= 1)
        assert spans.of(held.task_id) == []  # it waits for an outcome hook that never comes
        later = run.kit.initiate_task("g", "ok", None)  # its attempt sweeps the held one
        later.get(timeout=10)
        (span,) = _attempt_spans(spans, held.task_id, 1)
    finally:
        run.stop()
    (_, later_send) = spans.finished("send g")
    assert span.end_time is not None and later_send.start_time is not None
    # Stamped with the handler's return (before the later task was even sent), not with
    # the time of the sweep.
    assert span.end_time <= later_send.start_time
    assert "messaging.taskkit.task.outcome" not in _attrs(span)


def test_a_stopping_worker_ends_waiting_spans_and_flushes(spans: Spans) -> None:
    run = Running(_kit(spans, outcome_timeout=3600.0)).start(threads=1)
    held = run.kit.initiate_task("g", "nobody-knows-me", None)
    wait_until(lambda: run.handles[0].worker.unknown_tasks.deferred >= 1)
    flushes = spans.flushes
    run.stop()
    (span,) = spans.of(held.task_id)
    assert span.end_time is not None
    assert spans.flushes == flushes + 1


def test_a_stale_deliverys_span_records_the_refused_outcome(spans: Spans) -> None:
    run = Running(_kit(spans)).start(threads=2)
    released.clear()
    first_delivery_started.clear()
    try:
        result = run.kit.initiate_task("g", "stale", None)
        assert first_delivery_started.wait(10)
        # Its worker's lease is expired under it: the task is delivered again, and fails.
        run.backend.release_worker(run.handles[0].worker_id)
        wait_until(lambda: run.state(result.task_id) is TaskState.FAILED)
        released.set()  # the first delivery fails now too; the backend refuses its outcome
        stale, current = sorted(
            _attempt_spans(spans, result.task_id, 2),
            key=lambda s: _attrs(s)["messaging.taskkit.message.delivery_count"],
        )
    finally:
        released.set()
        run.stop()
    assert _events(stale) == ["exception", "taskkit.outcome.rejected"]
    assert (stale.events[1].attributes or {})["messaging.taskkit.outcome.action"] == "fail"
    assert _attrs(stale)["error.type"] == "taskkit.stale_claim"
    assert _attrs(stale)["messaging.taskkit.task.outcome"] == "rejected"
    assert _events(current) == ["exception", "taskkit.task.failed"]


# --------------------------------------------------------------------------- bookkeeping


def test_waiting_spans_are_capped_oldest_ending_first(
    spans: Spans, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(otel, "_MAX_PENDING", 2)
    attempts = otel._Attempts()
    tracer = spans.provider.get_tracer("test")
    for n in range(3):
        key = (f"t{n}", 0, 1)
        attempts.begin(key, tracer.start_span(f"attempt {n}"))
        attempts.exited(key, 1_000 + n, final=False)
    assert [s.name for s in spans.finished()] == ["attempt 0"]
    assert spans.finished()[0].end_time == 1_000  # stamped with its handler's return
    assert attempts.outcome(("t0", 0, 1)) is None
    assert attempts.outcome(("t2", 0, 1)) is not None


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_worker_starts_with_no_attempts_of_its_parent(spans: Spans) -> None:
    plugin = OpenTelemetryPlugin(tracer_provider=spans.provider)
    task = Task("t-1", "g", "n", b"", 0.0, 0.0)
    wrapper = plugin.taskkit_execute_task(task, lambda: None)
    next(wrapper)  # an attempt runs in the parent
    with plugin._attempts._lock:  # held by a thread of the parent as it forks
        pid = os.fork()
        if pid == 0:  # the child: none of the parent's attempts, and a lock it can take
            code = 0 if plugin._attempts.empty() else 3
            plugin._attempts.begin(("t-2", 0, 1), spans.provider.get_tracer("t").start_span("x"))
            os._exit(code)
    deadline = time.monotonic() + 10
    while (done := os.waitpid(pid, os.WNOHANG)) == (0, 0) and time.monotonic() < deadline:
        time.sleep(0.01)
    if done == (0, 0):
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        pytest.fail("the child deadlocked on the parent's lock")
    assert os.waitstatus_to_exitcode(done[1]) == 0
    with pytest.raises(StopIteration):
        wrapper.send(None)
    assert not plugin._attempts.empty()  # the parent's attempt waits for its outcome


# --------------------------------------------------------------------------- no SDK, options


def test_without_an_sdk_provider_nothing_is_recorded_or_injected() -> None:
    assert isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)
    kit = Kit(MemoryBackend(), Handler(), plugins=[OpenTelemetryPlugin()], lease_seconds=2.0)
    handles = kit.start_processes(1, {"g": 1})
    try:
        result = kit.initiate_task("g", "ok", None)
        assert result.get(timeout=10) == {}  # no trace headers
        assert kit.initiate_task("g", "ok", None, eager=True).get() == {}
    finally:
        for handle in handles:
            handle.kill()
            handle.join(10)


def test_a_global_provider_set_after_the_kit_is_picked_up() -> None:
    script = textwrap.dedent(
        """
        import time
        from opentelemetry import trace
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
            InMemorySpanExporter,
        )
        from taskkit import Kit, MemoryBackend, TaskHandler
        from taskkit.contrib.otel import OpenTelemetryPlugin

        class Handler(TaskHandler):
            def handle(self, task):
                return None

        kit = Kit(MemoryBackend(), Handler(), plugins=[OpenTelemetryPlugin()])
        kit.initiate_task("g", "n", None, eager=True)  # no provider yet: nothing
        exporter = InMemorySpanExporter()
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        trace.set_tracer_provider(provider)
        deadline = time.monotonic() + 10
        while not exporter.get_finished_spans() and time.monotonic() < deadline:
            kit.initiate_task("g", "n", None, eager=True)
            time.sleep(0.01)
        print(sorted({s.name for s in exporter.get_finished_spans()}))
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    assert out.stdout.strip() == "['process g']", out.stderr


def test_the_plugin_pickles_its_options_for_spawn_workers(spans: Spans) -> None:
    plugin = pickle.loads(pickle.dumps(OpenTelemetryPlugin(outcome_timeout=5, flush_timeout=1)))
    assert (plugin.outcome_timeout, plugin.flush_timeout) == (5.0, 1.0)
    assert plugin.tracer_provider is None
    with pytest.raises(pickle.PicklingError, match="global provider"):
        pickle.dumps(OpenTelemetryPlugin(tracer_provider=spans.provider))


@pytest.mark.parametrize(
    "options",
    [
        {"outcome_timeout": -1},
        {"outcome_timeout": float("nan")},
        {"flush_timeout": True},
        {"flush_timeout": "5"},
        {"tracer_provider": object()},
    ],
)
def test_bad_options_are_refused(options: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError):
        OpenTelemetryPlugin(**options)
