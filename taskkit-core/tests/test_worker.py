"""The worker runtime, with real threads, on the in-memory backend."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from taskkit import (
    Cancelled,
    CancelResult,
    Failed,
    Kit,
    MemoryBackend,
    NotFound,
    ResultGetPrevented,
    Task,
    TaskState,
    hookimpl,
)

from .conftest import wait_until
from .handlers import RecordingHandler


def test_tasks_run_and_results_come_back(running: Kit) -> None:
    results = [running.initiate_task("g", "double", i) for i in range(50)]
    assert [r.get(timeout=5) for r in results] == [i * 2 for i in range(50)]


def test_failures_are_retried_then_failed(running: Kit, handler: RecordingHandler) -> None:
    result = running.initiate_task("g", "fail", "x")
    with pytest.raises(Failed) as info:
        result.get(timeout=5)
    assert "ValueError: failing on purpose: x" in info.value.message
    assert [count for tid, count in handler.runs if tid == result.task_id] == [0, 1, 2]


@pytest.mark.parametrize("name", ["exit", "interrupt"])
def test_base_exceptions_fail_the_task_but_not_the_thread(
    running: Kit, handler: RecordingHandler, name: str
) -> None:
    # Three threads, more BaseException tasks than threads: every thread survives them.
    doomed = [running.initiate_task("g", name, i) for i in range(6)]
    for result in doomed:
        with pytest.raises(Failed):
            result.get(timeout=5)
    assert running.initiate_task("g", "double", 4).get(timeout=5) == 8


def test_discard(running: Kit) -> None:
    with pytest.raises(NotFound, match="not wanted"):
        running.initiate_task("g", "discard", 1).get(timeout=5)
    with pytest.raises(NotFound, match="unknown task g/nobody"):
        running.initiate_task("g", "nobody", 1).get(timeout=5)


def test_result_too_large_fails_the_task(backend: MemoryBackend) -> None:
    kit = Kit(backend, RecordingHandler(), max_result_size=1000)
    [handle] = kit.start_processes(1, {"g": 1})
    try:
        assert kit.initiate_task("g", "big_result", 998).get(5) == "x" * 998
        with pytest.raises(Failed, match="result too large"):
            kit.initiate_task("g", "big_result", 999).get(5)
        with pytest.raises(Failed, match="result could not be encoded"):
            kit.initiate_task("g", "unencodable", 0).get(5)
    finally:
        handle.kill()
        handle.join(5)


def test_time_limit_interrupts_python_code(running: Kit) -> None:
    result = running.initiate_task("g", "spin", 0, timeout=0.3)
    with pytest.raises(Failed, match=r"timed out after 0\.3s"):
        result.get(timeout=5)
    assert running.initiate_task("g", "double", 1).get(timeout=5) == 2


def test_cooperative_check_sees_the_time_limit(running: Kit) -> None:
    with pytest.raises(Failed, match="timed out"):
        running.initiate_task("g", "cooperative", 0, timeout=0.2).get(timeout=5)


def test_stuck_thread_is_failed_and_replaced(backend: MemoryBackend) -> None:
    handler = RecordingHandler()
    kit = Kit(backend, handler, lease_seconds=2.0, timeout_grace=0.3, control_interval=0.05)
    [handle] = kit.start_processes(1, {"g": 1})
    try:
        # time.sleep cannot be interrupted by an async exception: the thread is stuck.
        stuck = kit.initiate_task("g", "sleep", 3, timeout=0.2)
        with pytest.raises(Failed, match="did not stop"):
            stuck.get(timeout=5)
        # The pool's only thread is stuck, yet a fresh one serves the group.
        assert kit.initiate_task("g", "double", 5).get(timeout=5) == 10
    finally:
        handle.kill()
        handle.join(5)


def test_cancel_running_task(running: Kit) -> None:
    result = running.initiate_task("g", "spin", 0)
    wait_until(lambda: result.outcome() is not None and result.outcome().state is TaskState.RUNNING)  # type: ignore[union-attr]
    assert result.cancel() is CancelResult.REQUESTED
    with pytest.raises(Cancelled):
        result.get(timeout=5)


def test_cancel_reaches_a_cooperative_handler(running: Kit) -> None:
    result = running.initiate_task("g", "cooperative", 0)
    wait_until(lambda: result.outcome().state is TaskState.RUNNING)  # type: ignore[union-attr]
    result.cancel()
    with pytest.raises(Cancelled):
        result.get(timeout=5)


def test_result_get_inside_a_handler_is_refused(backend: MemoryBackend) -> None:
    class Waiter(RecordingHandler):
        def handle(self, task: Task) -> Any:
            try:
                kit.get_result("other").get(timeout=1)
            except ResultGetPrevented as exc:
                return str(exc)
            return "not refused"

    kit = Kit(backend, Waiter())
    [handle] = kit.start_processes(1, {"g": 1})
    try:
        assert "deadlock" in kit.initiate_task("g", "x", 0).get(timeout=5)
    finally:
        handle.kill()
        handle.join(5)


def test_pause_and_resume(kit: Kit, backend: MemoryBackend) -> None:
    from taskkit import ResultGetTimedOut

    [handle] = kit.start_processes(1, {"g": 1, "other": 1})
    try:
        assert kit.initiate_task("g", "double", 1).get(timeout=5) == 2
        kit.send_pause_event(["g"])
        wait_until(lambda: handle.worker.is_paused("g"))
        paused = kit.initiate_task("g", "double", 3)
        with pytest.raises(ResultGetTimedOut):
            paused.get(timeout=0.3)
        assert backend.stats("g").queued == 1
        assert kit.initiate_task("other", "double", 4).get(timeout=5) == 8  # not paused
        kit.send_resume_event()
        assert paused.get(timeout=5) == 6
    finally:
        handle.kill()
        handle.join(5)


def test_shutdown_event_stops_the_worker(kit: Kit) -> None:
    [handle] = kit.start_processes(1, {"g": 2})
    assert kit.initiate_task("g", "double", 1).get(timeout=5) == 2
    kit.send_shutdown_event()
    handle.join(5)
    assert not handle.is_alive() and handle.exitcode == 0


def test_old_shutdown_events_do_not_stop_new_workers(kit: Kit) -> None:
    kit.send_shutdown_event()
    [handle] = kit.start_processes(1, {"g": 1})
    try:
        assert kit.initiate_task("g", "double", 2).get(timeout=5) == 4
        assert handle.is_alive()
    finally:
        handle.kill()
        handle.join(5)


def test_graceful_stop_hands_back_unfinished_tasks(backend: MemoryBackend) -> None:
    handler = RecordingHandler()
    kit = Kit(backend, handler, grace_period=0.2, control_interval=0.05)
    [handle] = kit.start_processes(1, {"g": 1})
    result = kit.initiate_task("g", "wait_release", 0)
    wait_until(lambda: result.outcome().state is TaskState.RUNNING)  # type: ignore[union-attr]
    handle.terminate()
    handle.join(5)
    assert not handle.is_alive()
    outcome = result.outcome()
    assert outcome is not None and outcome.state is TaskState.QUEUED
    assert outcome.task.deliveries == 0  # handed back: the delivery is not counted
    handler.release.set()


def test_lifecycle_hooks_and_execution_wrapper(backend: MemoryBackend) -> None:
    events: list[tuple[str, str]] = []
    lock = threading.Lock()

    class Recorder:
        @hookimpl
        def taskkit_task_initiated(self, task: Task) -> None:
            with lock:
                events.append(("initiated", task.name))

        @hookimpl
        def taskkit_task_started(self, task: Task, worker_id: str) -> None:
            with lock:
                events.append(("started", task.name))

        @hookimpl
        def taskkit_task_succeeded(self, task: Task, duration: float) -> None:
            with lock:
                events.append(("succeeded", task.name))

        @hookimpl
        def taskkit_task_retried(self, task: Task, exception: BaseException, delay: float) -> None:
            with lock:
                events.append(("retried", task.name))

        @hookimpl
        def taskkit_task_failed(
            self, task: Task, exception: BaseException | None, message: str
        ) -> None:
            with lock:
                events.append(("failed", task.name))

        @hookimpl
        def taskkit_task_discarded(self, task: Task, reason: str) -> None:
            with lock:
                events.append(("discarded", task.name))

        @hookimpl(wrapper=True)
        def taskkit_execute_task(self, task: Task, call: Any) -> Any:
            value = yield
            return {"wrapped": value} if task.name == "double" else value

    kit = Kit(backend, RecordingHandler(), plugins=[Recorder()])
    [handle] = kit.start_processes(1, {"g": 1})
    try:
        assert kit.initiate_task("g", "double", 2).get(5) == {"wrapped": 4}
        with pytest.raises(Failed):
            kit.initiate_task("g", "fail", 2).get(5)
        with pytest.raises(NotFound):
            kit.initiate_task("g", "discard", 2).get(5)
    finally:
        handle.kill()
        handle.join(5)
    assert events[:3] == [("initiated", "double"), ("started", "double"), ("succeeded", "double")]
    assert [e for e in events if e[1] == "fail"].count(("retried", "fail")) == 2
    assert ("failed", "fail") in events and ("discarded", "discard") in events


def test_a_broken_plugin_never_breaks_a_task(backend: MemoryBackend) -> None:
    class Broken:
        @hookimpl
        def taskkit_task_started(self, task: Task, worker_id: str) -> None:
            raise RuntimeError("metrics are down")

    kit = Kit(backend, RecordingHandler(), plugins=[Broken()])
    [handle] = kit.start_processes(1, {"g": 1})
    try:
        assert kit.initiate_task("g", "double", 2).get(5) == 4
    finally:
        handle.kill()
        handle.join(5)


def test_unknown_group_waits_for_its_workers(kit: Kit, backend: MemoryBackend) -> None:
    waiting = kit.initiate_task("later", "double", 21)
    [first] = kit.start_processes(1, {"g": 1})
    assert kit.initiate_task("g", "double", 1).get(5) == 2
    assert backend.stats("later").queued == 1
    [second] = kit.start_processes(1, {"later": 1})
    try:
        assert waiting.get(5) == 42
    finally:
        for handle in (first, second):
            handle.kill()
            handle.join(5)
