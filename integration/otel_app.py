"""The worker app of ``test_otel``: a kit with the OpenTelemetry plugin, and a file exporter.

``TASKKIT_URL`` / ``TASKKIT_OPTIONS`` (JSON) name the store. Where ``TASKKIT_OTEL_SPANS``
names a file (the worker processes), this module sets the global tracer provider, as an app
does where it defines its kit: spans go through the SDK's batch processor to
:class:`JsonLinesExporter`, which appends one JSON object per span to that file. The batch
processor waits a minute between exports, so what the file holds was flushed by each worker
as it stopped. A forked worker inherits the provider; a spawned one imports this module and
sets it up itself. Without the variable (the test's own process) nothing is configured.

Tasks (group ``otel``, by name): ``ok`` returns its ``traceparent`` header and process id
(and opens a span of its own inside the attempt); ``flaky`` fails every attempt, retried
twice.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from typing import Any

import taskkit
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from taskkit import Task, TaskHandler
from taskkit.contrib.otel import OpenTelemetryPlugin


class JsonLinesExporter(SpanExporter):
    """Appends each span to a file as one JSON line (every worker process appends to the
    same file: one ``os.write`` with ``O_APPEND`` keeps a line whole)."""

    def __init__(self, path: str) -> None:
        self.path = path

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        for span in spans:
            line = json.dumps(_as_dict(span), default=str) + "\n"
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            try:
                os.write(fd, line.encode())
            finally:
                os.close(fd)
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        pass


def _as_dict(span: ReadableSpan) -> dict[str, Any]:
    assert span.context is not None
    return {
        "name": span.name,
        "kind": span.kind.name,
        "trace_id": f"{span.context.trace_id:032x}",
        "span_id": f"{span.context.span_id:016x}",
        "parent_span_id": f"{span.parent.span_id:016x}" if span.parent else None,
        "attributes": dict(span.attributes or {}),
        "events": [event.name for event in span.events],
        "status": span.status.status_code.name,
        "pid": os.getpid(),
    }


_spans_file = os.environ.get("TASKKIT_OTEL_SPANS")
if _spans_file:
    _provider = TracerProvider(resource=Resource.create({"service.name": "otel-app-worker"}))
    _provider.add_span_processor(
        BatchSpanProcessor(JsonLinesExporter(_spans_file), schedule_delay_millis=60_000)
    )
    trace.set_tracer_provider(_provider)


class Handler(TaskHandler):
    def handle(self, task: Task) -> Any:
        if task.name == "ok":
            with trace.get_tracer(__name__).start_as_current_span("handler work"):
                return {"traceparent": task.headers.get("traceparent"), "pid": os.getpid()}
        if task.name == "flaky":
            raise ValueError(f"attempt {task.retry_count + 1} failed")
        return super().handle(task)

    def get_retry_interval(self, task: Task, exception: Exception) -> float | None:
        return 0.05 if task.name == "flaky" and task.retry_count < 2 else None


kit = taskkit.make_kit(
    os.environ["TASKKIT_URL"],
    Handler(),
    plugins=[OpenTelemetryPlugin()],
    lease_seconds=3.0,
    heartbeat_interval=1.0,
    control_interval=0.2,
    grace_period=5.0,
    **json.loads(os.environ.get("TASKKIT_OPTIONS", "{}")),
)
