"""``eager=True`` runs a task like a worker does, minus the backend.

The wrapper hook, the lifecycle hooks, ``current_task()``, the result's encode/decode round
trip and the errors of ``Result.get`` are those of a worker; the eager-only choices (one
attempt, cooperative time limit) are pinned here too.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest
from taskkit import (
    Failed,
    Kit,
    MemoryBackend,
    NotFound,
    ResultGetPrevented,
    Task,
    TaskState,
    hookimpl,
)
from taskkit.context import TaskContext, current_task

from .handlers import RecordingHandler


class EagerHandler(RecordingHandler):
    """RecordingHandler plus handlers that look at their context or nest eager tasks."""

    kit: Kit | None = None

    def handle(self, task: Task) -> Any:
        if task.name == "check":
            context = current_task()
            assert context is not None
            context.check()
            return {"id": context.task.id, "remaining": context.remaining()}
        if task.name == "tuple":
            return (1, 2)
        if task.name == "nan":
            return float("nan")
        if task.name == "nested":
            assert self.kit is not None
            outer = current_task()
            inner = self.kit.initiate_task("g", "check", None, eager=True)
            assert current_task() is outer, "the outer context was not restored"
            try:
                inner.get()
            except ResultGetPrevented:
                return "prevented"
            return "not prevented"
        if task.name == "get_other":
            assert self.kit is not None
            self.kit.get_result("someone-else").get(0)
        return super().handle(task)


class Recorder:
    """Records every lifecycle hook call and wraps execution."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str, Any]] = []
        self.lock = threading.Lock()

    def _add(self, kind: str, task: Task, detail: Any = None) -> None:
        with self.lock:
            self.events.append((kind, task.name, detail))

    @hookimpl
    def taskkit_task_initiated(self, task: Task) -> None:
        self._add("initiated", task)

    @hookimpl
    def taskkit_task_started(self, task: Task, worker_id: str) -> None:
        self._add("started", task, worker_id)

    @hookimpl
    def taskkit_task_succeeded(self, task: Task, duration: float) -> None:
        self._add("succeeded", task, duration >= 0)

    @hookimpl
    def taskkit_task_retried(self, task: Task, exception: BaseException, delay: float) -> None:
        self._add("retried", task)

    @hookimpl
    def taskkit_task_failed(
        self, task: Task, exception: BaseException | None, message: str
    ) -> None:
        self._add("failed", task, type(exception).__name__ if exception else None)

    @hookimpl
    def taskkit_task_discarded(self, task: Task, reason: str) -> None:
        self._add("discarded", task, reason)

    @hookimpl(wrapper=True)
    def taskkit_execute_task(self, task: Task, call: Any) -> Any:
        self._add("execute", task, current_task() is not None)
        value = yield
        return {"wrapped": value} if task.name == "double" else value


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def eager_kit(backend: MemoryBackend, recorder: Recorder) -> Kit:
    handler = EagerHandler()
    kit = Kit(backend, handler, plugins=[recorder])
    handler.kit = kit
    return kit


def test_the_execute_wrapper_and_the_lifecycle_hooks_run(
    eager_kit: Kit, recorder: Recorder, backend: MemoryBackend
) -> None:
    assert eager_kit.initiate_task("g", "double", 2, eager=True).get() == {"wrapped": 4}
    assert recorder.events == [
        ("started", "double", "eager"),
        ("execute", "double", True),
        ("succeeded", "double", True),
    ]
    assert backend.tasks() == []  # nothing stored, so no "initiated" either


def test_failure_is_final_in_eager_mode_and_reported_once(
    eager_kit: Kit, recorder: Recorder
) -> None:
    # RecordingHandler.get_retry_interval would retry twice under a worker.
    with pytest.raises(Failed, match="failing on purpose") as info:
        eager_kit.initiate_task("g", "fail", 1, eager=True).get()
    assert isinstance(info.value.__cause__, ValueError)
    assert [e[0] for e in recorder.events] == ["started", "execute", "failed"]
    assert recorder.events[-1] == ("failed", "fail", "ValueError")
    assert eager_kit.handler.runs == [(info.value.task.id, 0)]  # type: ignore[attr-defined]


def test_discard_reports_the_hook_and_the_same_error_as_a_worker(
    eager_kit: Kit, recorder: Recorder
) -> None:
    with pytest.raises(NotFound, match="discarded: not wanted"):
        eager_kit.initiate_task("g", "discard", 1, eager=True).get()
    assert recorder.events[-1] == ("discarded", "discard", "not wanted")


def test_current_task_and_check_work(eager_kit: Kit) -> None:
    result = eager_kit.initiate_task("g", "check", None, eager=True, timeout=30)
    value = result.get()
    assert value["id"] == result.task_id
    assert 0 < value["remaining"] <= 30
    assert current_task() is None  # cleared again in the caller


def test_check_enforces_the_time_limit_cooperatively(eager_kit: Kit, recorder: Recorder) -> None:
    with pytest.raises(Failed, match=r"timed out after 0\.05s"):
        eager_kit.initiate_task("g", "cooperative", None, eager=True, timeout=0.05).get()
    assert recorder.events[-1] == ("failed", "cooperative", None)


def test_an_eager_task_inside_a_handler_restores_the_outer_context(eager_kit: Kit) -> None:
    # Result.get inside a handler is prevented for eager results too (as for any result).
    assert eager_kit.initiate_task("g", "nested", None, eager=True).get() == "prevented"


def test_result_get_inside_an_eager_handler_is_prevented(eager_kit: Kit) -> None:
    with pytest.raises(Failed, match="ResultGetPrevented"):
        eager_kit.initiate_task("g", "get_other", None, eager=True).get()


def test_the_result_makes_the_serializer_round_trip(eager_kit: Kit) -> None:
    assert eager_kit.initiate_task("g", "tuple", None, eager=True).get() == [1, 2]


@pytest.mark.parametrize("name", ["nan", "unencodable"])
def test_a_result_the_serializer_refuses_fails_eagerly(
    eager_kit: Kit, recorder: Recorder, name: str
) -> None:
    result = eager_kit.initiate_task("g", name, None, eager=True)
    with pytest.raises(Failed, match="result could not be encoded by the 'json' serializer"):
        result.get()
    assert recorder.events[-1][:2] == ("failed", name)
    outcome = result.outcome()
    assert outcome is not None and outcome.state is TaskState.FAILED


def test_a_result_over_the_cap_fails_eagerly(backend: MemoryBackend) -> None:
    kit = Kit(backend, EagerHandler(), max_result_size=10)
    with pytest.raises(Failed, match="result too large"):
        kit.initiate_task("g", "big_result", 50, eager=True).get()


def test_eager_outcome_matches_what_a_worker_stores(eager_kit: Kit, backend: MemoryBackend) -> None:
    eager = eager_kit.initiate_task("g", "discard", 1, eager=True)
    queued = eager_kit.initiate_task("g", "discard", 1)
    [handle] = eager_kit.start_processes(1, {"g": 1})
    try:
        with pytest.raises(NotFound) as from_worker:
            queued.get(timeout=10)
    finally:
        handle.kill()
        handle.join(10)
    with pytest.raises(NotFound) as from_eager:
        eager.get()
    assert from_eager.value.reason == from_worker.value.reason
    outcome = eager.outcome()
    assert outcome is not None and outcome.state is TaskState.DISCARDED
    assert eager.ready()


def test_a_system_exit_in_an_eager_handler_fails_the_task(eager_kit: Kit) -> None:
    with pytest.raises(Failed, match="SystemExit"):
        eager_kit.initiate_task("g", "exit", None, eager=True).get()


def test_keyboard_interrupt_reaches_the_caller(eager_kit: Kit) -> None:
    with pytest.raises(KeyboardInterrupt):
        eager_kit.initiate_task("g", "interrupt", None, eager=True)
    assert current_task() is None


def test_eager_items_of_a_bulk_initiate_run_like_single_ones(
    eager_kit: Kit, recorder: Recorder
) -> None:
    [result] = eager_kit.initiate_tasks(
        {"group": "g", "name": "check", "data": None, "eager": True}
    )
    assert result.get()["id"] == result.task_id
    assert [e[0] for e in recorder.events] == ["started", "execute", "succeeded"]


def test_the_context_type_is_the_workers(eager_kit: Kit) -> None:
    seen: list[object] = []

    class Peek(EagerHandler):
        def handle(self, task: Task) -> Any:
            seen.append(current_task())
            return None

    result = Kit(MemoryBackend(), Peek()).initiate_task("g", "n", None, eager=True)
    result.get()
    [context] = seen
    assert isinstance(context, TaskContext) and context.task.id == result.task_id
    assert current_task() is None, "the caller's thread has no task once it returned"


def test_the_stored_traceback_starts_at_the_handler_as_a_worker_stores_it(eager_kit: Kit) -> None:
    with pytest.raises(Failed) as info:
        eager_kit.initiate_task("g", "fail", 1, eager=True).get()
    frames = [line for line in info.value.message.splitlines() if line.startswith("  File ")]
    assert frames and f'"{__file__}"' in frames[0], info.value.message  # this module
    # Only the leading taskkit and pluggy frames go: the test's wrapper plugin is user code,
    # so the frames after it stay, as in a worker's traceback.
    assert "taskkit/kit.py" not in info.value.message
