"""One trace from producer to worker across real processes (issue 14, item 4).

The producer is this test process: a kit with the OpenTelemetry plugin on a provider of its
own, whose spans the SDK's ``InMemorySpanExporter`` keeps. The workers are a real
``taskkit worker --processes 2`` (forked or spawned) on Redis (a key prefix of its own) and
PostgreSQL (a database of its own, dropped after), whose app (``otel_app``) sets the global
provider and exports to a file, one JSON line per span. Each worker span must continue the
producer's trace: the same trace id, and the producer's ``send`` span as its parent.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import taskkit
from taskkit import Failed, Kit

from .test_function_tasks import _postgres_database

pytest.importorskip("opentelemetry.sdk")

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
    InMemorySpanExporter,
)
from taskkit.contrib.otel import OpenTelemetryPlugin

HERE = Path(__file__).resolve().parent
APP = "integration.otel_app:kit"
PROFILE = {"lease_seconds": 3.0, "heartbeat_interval": 1.0, "control_interval": 0.2}


@pytest.fixture(params=["redis", "postgresql"])
def store(request: pytest.FixtureRequest) -> Iterator[dict[str, str]]:
    """``TASKKIT_URL`` / ``TASKKIT_OPTIONS`` of a fresh, private store."""
    if request.param == "redis":
        prefix = f"tkotel-{uuid.uuid4().hex[:10]}"
        url = "redis://127.0.0.1:6379/0"
        yield {"TASKKIT_URL": url, "TASKKIT_OPTIONS": json.dumps({"prefix": prefix})}
        from taskkit_redis import RedisBackend

        backend = RedisBackend(url, prefix=prefix)
        backend.delete_all_keys(i_know_this_deletes_everything=True)
        backend.close()
    else:
        for url in _postgres_database():
            yield {"TASKKIT_URL": url, "TASKKIT_OPTIONS": "{}"}


class Producer:
    """A kit of this process, tracing into an in-memory exporter."""

    def __init__(self, store: dict[str, str]) -> None:
        self.exporter = InMemorySpanExporter()
        self.provider = TracerProvider()
        self.provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.kit: Kit = taskkit.make_kit(
            store["TASKKIT_URL"],
            plugins=[OpenTelemetryPlugin(tracer_provider=self.provider)],
            **PROFILE,
            **json.loads(store["TASKKIT_OPTIONS"]),
        )

    def send_span(self, task_name: str) -> ReadableSpan:
        (span,) = [
            s
            for s in self.exporter.get_finished_spans()
            if s.name == "send otel"
            and (s.attributes or {}).get("messaging.taskkit.task.name") == task_name
        ]
        return span

    def close(self) -> None:
        self.kit.backend.close()
        self.provider.shutdown()


@pytest.fixture
def producer(store: dict[str, str]) -> Iterator[Producer]:
    made = Producer(store)
    yield made
    made.close()


def _run_worker(env: dict[str, str], start_method: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "taskkit",
            "--app",
            APP,
            "worker",
            "--processes",
            "2",
            "--threads",
            "otel=2",
            "--start-method",
            start_method,
        ],
        cwd=HERE.parent,
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def _stop(process: subprocess.Popen[str]) -> str:
    """SIGTERM (each worker process flushes its spans as it stops); its stderr."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
    try:
        _, err = process.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        _, err = process.communicate(timeout=30)
    return err


def _ids(span: ReadableSpan) -> tuple[str, str]:
    assert span.context is not None
    return f"{span.context.trace_id:032x}", f"{span.context.span_id:016x}"


def _worker_spans(path: Path, task_id: str) -> list[dict[str, Any]]:
    spans = [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
    return sorted(
        (s for s in spans if s["attributes"].get("messaging.message.id") == task_id),
        key=lambda s: s["attributes"]["messaging.taskkit.task.attempt"],
    )


@pytest.mark.parametrize("start_method", ["fork", "spawn"])
def test_worker_spans_continue_the_producers_trace(
    producer: Producer, store: dict[str, str], tmp_path: Path, start_method: str
) -> None:
    spans_file = tmp_path / "worker-spans.jsonl"
    worker = _run_worker({**store, "TASKKIT_OTEL_SPANS": str(spans_file)}, start_method)
    try:
        tracer = producer.provider.get_tracer("test")
        with tracer.start_as_current_span("request") as request:
            ok = producer.kit.initiate_task("otel", "ok", None)
            flaky = producer.kit.initiate_task("otel", "flaky", None)
        value = ok.get(timeout=60)
        with pytest.raises(Failed):
            flaky.get(timeout=60)
    finally:
        err = _stop(worker)
    assert worker.returncode == 0, err

    # The producer: one send span per task, children of the request, ended by now.
    send_ok, send_flaky = producer.send_span("ok"), producer.send_span("flaky")
    for send in (send_ok, send_flaky):
        assert send.parent is not None and send.parent == request.get_span_context()

    # The worker: its span of the attempt continues the trace the task's headers carried.
    (process,) = [s for s in _worker_spans(spans_file, ok.task_id) if s["name"] == "process otel"]
    assert (process["trace_id"], process["parent_span_id"]) == _ids(send_ok)
    assert process["kind"] == "CONSUMER" and process["pid"] not in (os.getpid(), worker.pid)
    assert value["pid"] == process["pid"]
    trace_id, span_id = _ids(send_ok)
    assert value["traceparent"].split("-")[1:3] == [trace_id, span_id]
    attributes = process["attributes"]
    assert (attributes["messaging.destination.name"], attributes["messaging.system"]) == (
        "otel",
        "taskkit",
    )
    assert attributes["messaging.taskkit.task.outcome"] == "succeeded"
    # The handler's own span, in the worker process, is a child of the attempt's.
    all_spans = [json.loads(line) for line in spans_file.read_text().splitlines()]
    (work,) = [s for s in all_spans if s["name"] == "handler work"]
    assert (work["trace_id"], work["parent_span_id"]) == (process["trace_id"], process["span_id"])

    # A task retried twice, then failed: three attempts, all in the producer's trace.
    attempts = _worker_spans(spans_file, flaky.task_id)
    assert [s["attributes"]["messaging.taskkit.task.attempt"] for s in attempts] == [1, 2, 3]
    assert {(s["trace_id"], s["parent_span_id"]) for s in attempts} == {_ids(send_flaky)}
    assert [s["events"] for s in attempts] == [
        ["exception", "taskkit.task.retried"],
        ["exception", "taskkit.task.retried"],
        ["exception", "taskkit.task.failed"],
    ]
    assert {s["status"] for s in attempts} == {"ERROR"}
