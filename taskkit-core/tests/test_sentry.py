"""The Sentry plugin (``taskkit.contrib.sentry``) on in-process workers (memory backend).

Events are read through sentry-sdk's own transport hook: a ``Transport`` that keeps every
envelope's event. Sentry is initialised with its default integrations (logging among them),
as an app would, so a doubled report would show. Across real worker processes (fork and
spawn, Redis and PostgreSQL): ``integration/test_observability.py``.
"""

from __future__ import annotations

import logging
import pickle
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from taskkit import (
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

sentry_sdk = pytest.importorskip("sentry_sdk")

from sentry_sdk.envelope import Envelope  # noqa: E402
from sentry_sdk.transport import Transport  # noqa: E402
from taskkit.contrib.sentry import SentryPlugin  # noqa: E402

from .conftest import wait_until  # noqa: E402

Event = dict[str, Any]


class Capture(Transport):  # type: ignore[misc]
    """Keeps the events sentry-sdk would send; counts flushes."""

    def __init__(self) -> None:
        super().__init__()
        self.lock = threading.Lock()
        self.events: list[Event] = []
        self.flushes = 0

    def capture_envelope(self, envelope: Envelope) -> None:
        event = envelope.get_event()
        if event is not None:
            with self.lock:
                self.events.append(event)

    def flush(self, timeout: float, callback: Any = None) -> None:
        self.flushes += 1

    def of(self, task_id: str) -> list[Event]:
        with self.lock:
            return [e for e in self.events if e.get("tags", {}).get("taskkit.task_id") == task_id]


released = threading.Event()
first_delivery_started = threading.Event()


class Handler(TaskHandler):
    def handle(self, task: Task) -> Any:
        if task.name == "ok":
            return "fine"
        if task.name in ("flaky", "broken"):  # flaky: retried twice, then failed
            raise ValueError(f"no luck on attempt {task.retry_count + 1}")
        if task.name == "discard":
            raise DiscardTask("not wanted")
        if task.name == "policy-discards":
            raise KeyError("the retry policy discards this one")
        if task.name == "until-cancelled":
            context = current_task()
            assert context is not None
            while True:
                context.check()
                threading.Event().wait(0.01)
        if task.name == "too-slow":  # in Python between waits: the time limit interrupts it
            for _ in range(3000):
                threading.Event().wait(0.01)
        if task.name == "crumbs":
            sentry_sdk.add_breadcrumb(message=f"step one of {task.id}")
            sentry_sdk.set_tag("customer", "ada")
            sentry_sdk.capture_message("the handler's own message")
            logging.getLogger("app.tasks").error("the handler's own error log")
            raise RuntimeError("after the breadcrumbs")
        if task.name == "stale":
            if task.deliveries == 1:
                first_delivery_started.set()
                released.wait(10)
                raise RuntimeError("from the stale delivery")
            raise RuntimeError("from the current delivery")
        return super().handle(task)  # UnknownTask

    def get_retry_interval(self, task: Task, exception: Exception) -> float | None:
        if task.name == "policy-discards":
            raise DiscardTask("the policy says no")
        if task.name == "flaky" and task.retry_count < 2:
            return 0.01
        return None


@pytest.fixture
def capture() -> Iterator[Capture]:
    transport = Capture()
    sentry_sdk.init(transport=transport)  # the default integrations, logging included
    yield transport
    sentry_sdk.get_client().close()
    sentry_sdk.get_global_scope().set_client(None)


def _kit(plugin: SentryPlugin | None = None, **options: Any) -> Kit:
    return Kit(
        MemoryBackend(),
        Handler(),
        plugins=[plugin or SentryPlugin()],
        lease_seconds=2.0,
        control_interval=0.05,
        timeout_grace=0.5,
        **options,
    )


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

    def stop(self) -> None:
        for handle in self.handles:
            handle.kill()
            handle.join(10)


@pytest.fixture
def running() -> Iterator[Running]:
    run = Running(_kit())
    run.handles = run.kit.start_processes(1, {"g": 3})
    yield run
    run.stop()


def _exception(event: Event) -> dict[str, Any]:
    value: dict[str, Any] = event["exception"]["values"][-1]
    return value


def _outcome_of(capture: Capture, task_id: str, outcome: str) -> Any:
    return lambda: [e for e in capture.of(task_id) if e["tags"].get("taskkit.outcome") == outcome]


# --------------------------------------------------------------------------- what is reported


def test_a_task_retried_twice_then_failing_gives_one_event_per_attempt(
    capture: Capture, running: Running
) -> None:
    result = running.kit.initiate_task("g", "flaky", None)
    with pytest.raises(Failed):
        result.get(timeout=10)
    # The last attempt's event comes once its outcome is stored; a doubled report of any
    # attempt (the worker's own log record of it through Sentry's logging integration, made
    # before the outcome is written) would be in by then.
    wait_until(_outcome_of(capture, result.task_id, "failed"))
    events = capture.of(result.task_id)
    assert [e["tags"]["taskkit.attempt"] for e in events] == ["1", "2", "3"]
    assert [e["tags"]["taskkit.outcome"] for e in events] == ["retried", "retried", "failed"]
    assert [e["level"] for e in events] == ["warning", "warning", "error"]
    assert [_exception(e)["value"] for e in events] == [
        f"no luck on attempt {n}" for n in (1, 2, 3)
    ]
    assert [_exception(e)["mechanism"]["handled"] for e in events] == [True, True, False]
    assert {_exception(e)["mechanism"]["type"] for e in events} == {"taskkit"}
    assert [e["contexts"]["taskkit"].get("retry_delay") for e in events] == [0.01, 0.01, None]
    assert len(capture.events) == 3, [e.get("logentry") for e in capture.events]


def test_the_event_names_the_task_and_leaves_its_data_out(
    capture: Capture, running: Running
) -> None:
    result = running.kit.initiate_task("g", "broken", {"secret": "do not send"})
    with pytest.raises(Failed):
        result.get(timeout=10)
    (event,) = wait_until(lambda: capture.of(result.task_id))
    tags = event["tags"]
    assert (tags["taskkit.group"], tags["taskkit.name"], tags["taskkit.attempt"]) == (
        "g",
        "broken",
        "1",
    )
    assert event["transaction"] == "g/broken"
    context = event["contexts"]["taskkit"]
    assert (context["task_id"], context["group"], context["name"]) == (
        result.task_id,
        "g",
        "broken",
    )
    assert (context["attempt"], context["deliveries"]) == (1, 1)
    assert context["outcome"] == "failed" and "no luck" in context["error"]
    assert context["worker_id"] == running.handles[0].worker_id
    assert context["headers"] == {}
    # (The stack trace's local variables are Sentry's own: its include_local_variables.)
    assert "do not send" not in repr([event["tags"], event["contexts"], event.get("extra")])


def test_discard_cancel_and_a_held_back_unknown_task_report_nothing(
    capture: Capture, running: Running
) -> None:
    kit = running.kit
    discarded = kit.initiate_task("g", "discard", None)
    policy = kit.initiate_task("g", "policy-discards", None)
    kit.initiate_task("g", "nobody-knows-me", None)
    cancelled = kit.initiate_task("g", "until-cancelled", None)
    wait_until(lambda: running.state(cancelled.task_id) is TaskState.RUNNING)
    kit.cancel(cancelled.task_id)
    wait_until(lambda: running.state(cancelled.task_id) is TaskState.CANCELLED)
    wait_until(lambda: running.state(discarded.task_id) is TaskState.DISCARDED)
    wait_until(lambda: running.state(policy.task_id) is TaskState.DISCARDED)
    wait_until(lambda: running.handles[0].worker.unknown_tasks.deferred >= 1)
    # A failing task after them all: its event comes after anything theirs could have sent.
    last = kit.initiate_task("g", "broken", None)
    wait_until(lambda: capture.of(last.task_id))
    assert [e["tags"]["taskkit.task_id"] for e in capture.events] == [last.task_id]


def test_a_time_limit_is_reported_as_a_message(capture: Capture, running: Running) -> None:
    result = running.kit.initiate_task("g", "too-slow", None, timeout=0.2)
    with pytest.raises(Failed):
        result.get(timeout=10)
    (event,) = wait_until(lambda: capture.of(result.task_id))
    assert event["message"] == "task g/too-slow failed: timed out after 0.2s"
    assert "exception" not in event
    assert (event["level"], event["tags"]["taskkit.outcome"]) == ("error", "failed")


def test_a_dead_letter_is_reported_as_a_message(capture: Capture) -> None:
    run = Running(_kit(max_deliveries=1))
    result = run.kit.initiate_task("g", "ok", None)
    # A worker claimed it and died (its lease lapsed): the next claim buries it.
    run.backend.claim("g", "gone", 1, -1, 1)
    run.handles = run.kit.start_processes(1, {"g": 1})
    try:
        (event,) = wait_until(lambda: capture.of(result.task_id))
    finally:
        run.stop()
    assert event["message"] == "task g/ok became a dead letter: worker lost"
    assert (event["level"], event["tags"]["taskkit.outcome"]) == ("error", "dead_lettered")
    assert event["contexts"]["taskkit"]["reason"] == "worker lost"


def test_a_stale_deliverys_outcome_reports_nothing(capture: Capture) -> None:
    run = Running(_kit())
    run.handles = run.kit.start_processes(1, {"g": 2})
    released.clear()
    first_delivery_started.clear()
    try:
        result = run.kit.initiate_task("g", "stale", None)
        assert first_delivery_started.wait(10)
        # Its worker's lease is expired under it: the task is delivered again, and fails.
        run.backend.release_worker(run.handles[0].worker_id)
        wait_until(lambda: run.state(result.task_id) is TaskState.FAILED)
        released.set()  # the first delivery fails now too; the backend refuses its outcome
        wait_until(lambda: not run.handles[0].worker._inflight)
    finally:
        released.set()
        run.stop()
    (event,) = capture.of(result.task_id)
    assert _exception(event)["value"] == "from the current delivery"
    assert event["contexts"]["taskkit"]["deliveries"] == 2


# --------------------------------------------------------------------------- the attempt's scope


def test_the_handlers_own_events_and_breadcrumbs_carry_the_task(capture: Capture) -> None:
    run = Running(_kit())
    run.handles = run.kit.start_processes(1, {"g": 1})  # one thread: both tasks run on it
    try:
        first = run.kit.initiate_task("g", "crumbs", None)
        wait_until(_outcome_of(capture, first.task_id, "failed"))
        second = run.kit.initiate_task("g", "crumbs", None)
        wait_until(_outcome_of(capture, second.task_id, "failed"))
    finally:
        run.stop()
    own_message, own_log, failure = capture.of(second.task_id)
    assert own_message["message"] == "the handler's own message"
    assert own_log["logentry"]["formatted"] == "the handler's own error log"
    for event in (own_message, own_log, failure):
        assert event["tags"]["taskkit.name"] == "crumbs"
        assert event["tags"]["customer"] == "ada"  # set by the handler
    crumbs = [c.get("message") for c in failure["breadcrumbs"]["values"]]
    assert f"step one of {second.task_id}" in crumbs
    # Cleared at the start of each attempt: not even the worker's log record of the first
    # task's outcome, a breadcrumb of the thread's scope.
    assert not any(first.task_id in (c or "") for c in crumbs), crumbs


def test_async_tasks_are_reported_from_their_own_scope(capture: Capture) -> None:
    class AsyncHandler(TaskHandler):
        async def handle(self, task: Task) -> Any:
            sentry_sdk.add_breadcrumb(message=f"awaiting for {task.id}")
            raise LookupError("from a coroutine")

        def get_retry_interval(self, task: Task, exception: Exception) -> float | None:
            return None

    kit = Kit(MemoryBackend(), AsyncHandler(), plugins=[SentryPlugin()], lease_seconds=2.0)
    handles = kit.start_processes(1, {"a": 4})
    try:
        results = [kit.initiate_task("a", "co", n) for n in range(3)]
        for result in results:
            wait_until(_outcome_of(capture, result.task_id, "failed"))
    finally:
        for handle in handles:
            handle.kill()
            handle.join(10)
    for result in results:
        (event,) = capture.of(result.task_id)
        assert _exception(event)["type"] == "LookupError"
        crumbs = [c.get("message") for c in event["breadcrumbs"]["values"]]
        assert crumbs == [f"awaiting for {result.task_id}"]


def test_other_error_logs_of_the_worker_still_become_events(capture: Capture) -> None:
    with pytest.raises(Failed):  # the plugin at work (here: eagerly)
        _kit().initiate_task("g", "broken", None, eager=True).get()
    worker_log = logging.getLogger("taskkit.worker")
    worker_log.error("worker-level trouble")
    worker_log.error("a record of a task's outcome", extra={"task_id": "t2"})
    logging.getLogger("app").error("an app's record", extra={"task_id": "t3"})
    messages = [e.get("logentry", {}).get("formatted") for e in capture.events]
    assert "worker-level trouble" in messages and "an app's record" in messages
    assert "a record of a task's outcome" not in messages


# --------------------------------------------------------------------------- headers


@dataclass(frozen=True)
class HeaderTask(Task):
    """A task with headers, until ``Task.headers`` lands."""

    headers: dict[str, str] = field(default_factory=dict)


def _headered(**headers: str) -> HeaderTask:
    return HeaderTask("t-1", "g", "n", b"", 0.0, 0.0, headers=headers)


def _fail_through_hooks(plugin: SentryPlugin, task: Task) -> None:
    wrapper = plugin.taskkit_execute_task(task, lambda: None)
    next(wrapper)
    error = RuntimeError("boom")
    with pytest.raises(RuntimeError):
        wrapper.throw(error)
    plugin.taskkit_task_failed(task, error, "boom")


def test_headers_become_tags_and_context(capture: Capture) -> None:
    long_name = "a-header-name-far-too-long-for-a-tag"
    task = _headered(tenant="acme", request_id="r\n42 x" * 60, **{long_name: "kept"})
    _fail_through_hooks(SentryPlugin(), task)
    (event,) = capture.events
    assert event["tags"]["taskkit.header.tenant"] == "acme"
    value = event["tags"]["taskkit.header.request_id"]
    assert len(value) == 200 and "\n" not in value
    assert not any(long_name in key for key in event["tags"])
    assert event["contexts"]["taskkit"]["headers"][long_name] == "kept"


def test_header_tags_can_be_turned_off(capture: Capture) -> None:
    _fail_through_hooks(SentryPlugin(header_tags=False), _headered(tenant="acme"))
    (event,) = capture.events
    assert not any(key.startswith("taskkit.header.") for key in event["tags"])
    assert event["contexts"]["taskkit"]["headers"] == {"tenant": "acme"}


# --------------------------------------------------------------------------- the client


def test_without_a_client_nothing_is_reported_and_one_warning_says_why(
    caplog: pytest.LogCaptureFixture,
) -> None:
    assert not sentry_sdk.get_client().is_active()
    caplog.set_level(logging.WARNING, logger="taskkit.sentry")
    run = Running(_kit())
    run.handles = run.kit.start_processes(1, {"g": 1})
    try:
        with pytest.raises(Failed):
            run.kit.initiate_task("g", "broken", None).get(timeout=10)
        assert run.kit.initiate_task("g", "ok", None).get(timeout=10) == "fine"
    finally:
        run.stop()
    warnings = [r for r in caplog.records if r.name == "taskkit.sentry"]
    assert len(warnings) == 1 and "sentry_sdk.init" in warnings[0].getMessage()


def test_init_starts_sentry_where_no_client_is_active() -> None:
    transport = Capture()
    run = Running(_kit(SentryPlugin(init={"transport": transport})))
    run.handles = run.kit.start_processes(1, {"g": 1})
    try:
        result = run.kit.initiate_task("g", "broken", None)
        (event,) = wait_until(lambda: transport.of(result.task_id))
    finally:
        run.stop()
        sentry_sdk.get_client().close()
        sentry_sdk.get_global_scope().set_client(None)
    assert event["tags"]["taskkit.outcome"] == "failed"


def test_init_leaves_an_active_client_alone(capture: Capture) -> None:
    other = Capture()
    plugin = SentryPlugin(init={"transport": other})
    _fail_through_hooks(plugin, _headered())
    assert len(capture.events) == 1 and not other.events


def test_a_stopping_worker_flushes(capture: Capture) -> None:
    run = Running(_kit())
    run.handles = run.kit.start_processes(1, {"g": 1})
    flushes = capture.flushes
    run.stop()
    assert not run.handles[0].is_alive()
    assert capture.flushes == flushes + 1


def test_eager_runs_are_reported_too(capture: Capture) -> None:
    result = _kit().initiate_task("g", "broken", None, eager=True)
    (event,) = capture.of(result.task_id)
    assert event["contexts"]["taskkit"]["worker_id"] == "eager"


# --------------------------------------------------------------------------- the plugin object


def test_the_plugin_pickles_with_its_options() -> None:
    plugin = SentryPlugin(
        init={"dsn": "https://k@example.invalid/1"}, header_tags=False, flush_timeout=5
    )
    copy = pickle.loads(pickle.dumps(plugin))
    assert (copy.init, copy.header_tags, copy.flush_timeout) == (plugin.init, False, 5.0)
    assert "k@example" not in repr(plugin)


@pytest.mark.parametrize(
    "options",
    [
        {"init": "https://k@example.invalid/1"},
        {"header_tags": "yes"},
        {"flush_timeout": -1},
        {"flush_timeout": float("nan")},
        {"flush_timeout": True},
    ],
)
def test_bad_options_are_refused(options: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError):
        SentryPlugin(**options)
