"""Async tasks on the worker's event loop, with real threads and a real loop (memory backend).

Coroutines in these tests wait for ``threading.Event``s the test sets, never for time: the
test decides when a task may finish, after it checked what it wanted to see meanwhile.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from taskkit import (
    Cancelled,
    CancelResult,
    Failed,
    Kit,
    MemoryBackend,
    Task,
    TaskHandler,
    TaskState,
    hookimpl,
)
from taskkit.context import current_task

from .conftest import wait_until

LOOP_THREAD = "taskkit-loop"


class AsyncHandler(TaskHandler):
    """``async def handle``: every group is async. Names: ``echo`` (its data), ``hold``
    (waits for ``release``), ``whoami`` (the task id ``current_task()`` names after every
    coroutine of the batch started), ``sleep`` (awaits ``data`` seconds), ``stubborn``
    (ignores cancellation), ``block`` (blocks the loop until ``release``), ``fail``,
    ``exit`` (SystemExit)."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.lock = threading.Lock()
        self.started: list[str] = []
        self.threads: set[int] = set()
        self.stopped: list[tuple[str, str]] = []  # (task id, how the coroutine ended)
        self.batch = 0

    async def handle(self, task: Task) -> Any:
        with self.lock:
            self.started.append(task.id)
            self.threads.add(threading.get_ident())
        data = self.decode_data(task)
        try:
            return await self._run(task, data)
        except asyncio.CancelledError:
            with self.lock:
                self.stopped.append((task.id, "cancelled"))
            raise

    async def _run(self, task: Task, data: Any) -> Any:
        if task.name == "echo":
            await asyncio.sleep(0)
            return data
        if task.name == "hold":
            while not self.release.is_set():
                await asyncio.sleep(0.005)
            return "released"
        if task.name == "whoami":
            while len(self.started) < data:
                await asyncio.sleep(0.005)
            context = current_task()
            assert context is not None
            return context.task.id
        if task.name == "sleep":
            await asyncio.sleep(data)
            return "slept"
        if task.name == "stubborn":
            while True:
                try:
                    await asyncio.sleep(0.01)
                except asyncio.CancelledError:
                    with self.lock:
                        self.stopped.append((task.id, "ignored"))
        if task.name == "block":
            self.release.wait(30)  # a blocking call in async code: the loop stops meanwhile
            return "unblocked"
        if task.name == "fail":
            raise ValueError(f"failing on purpose: {data}")
        if task.name == "exit":
            raise SystemExit(3)
        raise AssertionError(f"no such test task {task.name}")

    def get_retry_interval(self, task: Task, exception: Exception) -> float | None:
        return 0.01 if task.retry_count < 1 else None


@contextmanager
def worker(kit: Kit, groups: dict[str, int]) -> Iterator[Any]:
    [handle] = kit.start_processes(1, groups)
    try:
        yield handle
    finally:
        handle.kill()
        handle.join(10)
        assert not handle.is_alive()


def fast_kit(backend: MemoryBackend, handler: TaskHandler | None, **options: Any) -> Kit:
    options = {"lease_seconds": 2.0, "control_interval": 0.05, "timeout_grace": 0.5, **options}
    return Kit(backend, handler, **options)


def running(result: Any) -> Callable[[], bool]:
    return lambda: (o := result.outcome()) is not None and o.state is TaskState.RUNNING


def test_200_coroutines_of_one_group_run_at_once_on_one_loop_thread(
    backend: MemoryBackend,
) -> None:
    handler = AsyncHandler()
    kit = fast_kit(backend, handler)
    before = set(threading.enumerate())  # earlier tests may leave (stuck) threads behind
    with worker(kit, {"crawl": 200}) as handle:
        results = [kit.initiate_task("crawl", "hold", i) for i in range(200)]
        wait_until(lambda: len(handler.started) == 200, timeout=20)
        # All 200 are running at the same time, and no thread was started for them: the
        # worker's threads are its own, a claimer, the keeper, the recorder and the loop.
        assert backend.stats("crawl").running == 200
        new = [t for t in threading.enumerate() if t not in before]
        assert sorted(t.name for t in new) == [
            "taskkit-claimer-crawl",
            "taskkit-keeper",
            LOOP_THREAD,
            "taskkit-recorder",
            f"taskkit-worker-{handle.worker_id}",  # a ThreadWorkerHandle's own
        ]
        [loop_thread] = [t for t in new if t.name == LOOP_THREAD]
        assert handler.threads == {loop_thread.ident}
        handler.release.set()
        assert [r.get(timeout=20) for r in results] == ["released"] * 200


def test_a_groups_count_bounds_its_coroutines_whatever_the_prefetch(
    backend: MemoryBackend,
) -> None:
    handler = AsyncHandler()
    kit = fast_kit(backend, handler, prefetch=4)
    with worker(kit, {"g": 3}):
        results = [kit.initiate_task("g", "hold", i) for i in range(10)]
        wait_until(lambda: len(handler.started) == 3)
        # Claimed in one batch with the three that started: none is claimed ahead of them.
        assert backend.stats("g").running == 3
        handler.release.set()
        assert [r.get(timeout=10) for r in results] == ["released"] * 10


def test_current_task_names_each_coroutines_own_task(backend: MemoryBackend) -> None:
    handler = AsyncHandler()
    kit = fast_kit(backend, handler)
    with worker(kit, {"g": 50}):
        # Every coroutine asks only once all 50 have started: their steps interleave.
        results = [kit.initiate_task("g", "whoami", 50) for _ in range(50)]
        assert [r.get(timeout=10) for r in results] == [r.task_id for r in results]


def test_results_failures_and_retries_of_coroutines(backend: MemoryBackend) -> None:
    handler = AsyncHandler()
    kit = fast_kit(backend, handler)
    with worker(kit, {"g": 4}):
        assert kit.initiate_task("g", "echo", {"a": 1}).get(timeout=5) == {"a": 1}
        failing = kit.initiate_task("g", "fail", "x")
        with pytest.raises(Failed, match="ValueError: failing on purpose: x"):
            failing.get(timeout=5)
        assert handler.started.count(failing.task_id) == 2  # one retry, then failed
        # A SystemExit fails the task; the loop survives it.
        with pytest.raises(Failed, match="SystemExit"):
            kit.initiate_task("g", "exit", 0).get(timeout=5)
        assert kit.initiate_task("g", "echo", 7).get(timeout=5) == 7


def test_a_time_limit_cancels_the_coroutine_and_fails_the_task(backend: MemoryBackend) -> None:
    handler = AsyncHandler()
    kit = fast_kit(backend, handler)
    with worker(kit, {"g": 2}):
        result = kit.initiate_task("g", "sleep", 30, timeout=0.3)
        with pytest.raises(Failed) as info:
            result.get(timeout=10)
        assert info.value.message == "timed out after 0.3s"  # stopped, not given up as stuck
        assert (result.task_id, "cancelled") in handler.stopped
        assert kit.initiate_task("g", "echo", 1).get(timeout=5) == 1


def test_a_cancel_request_cancels_the_coroutine(backend: MemoryBackend) -> None:
    handler = AsyncHandler()
    kit = fast_kit(backend, handler, heartbeat_interval=0.1)
    with worker(kit, {"g": 2}):
        result = kit.initiate_task("g", "hold", 0)
        wait_until(running(result))
        assert result.cancel() is CancelResult.REQUESTED
        with pytest.raises(Cancelled):
            result.get(timeout=10)
        assert (result.task_id, "cancelled") in handler.stopped


def test_a_coroutine_that_ignores_cancellation_is_failed_as_stuck(backend: MemoryBackend) -> None:
    handler = AsyncHandler()
    kit = fast_kit(backend, handler, timeout_grace=0.3)
    with worker(kit, {"g": 1}):
        stuck = kit.initiate_task("g", "stubborn", 0, timeout=0.2)
        with pytest.raises(Failed, match="did not stop"):
            stuck.get(timeout=10)
        assert (stuck.task_id, "ignored") in handler.stopped
        # The group's only slot is held by the stubborn coroutine, yet the group serves on.
        assert kit.initiate_task("g", "echo", 5).get(timeout=5) == 5


def test_leases_are_renewed_while_a_coroutine_runs_past_its_lease(
    backend: MemoryBackend,
) -> None:
    handler = AsyncHandler()
    lease = 0.4
    kit = fast_kit(backend, handler, lease_seconds=lease, heartbeat_interval=0.1)
    with worker(kit, {"g": 1}):
        result = kit.initiate_task("g", "hold", 0)
        wait_until(running(result))
        since = backend.now()
        wait_until(lambda: backend.now() > since + 3 * lease, timeout=10)
        assert backend.claim("g", "intruder", 1, 60.0, 3).claims == []
        handler.release.set()
        assert result.get(timeout=5) == "released"
    outcome = result.outcome()
    assert outcome is not None and outcome.task.deliveries == 1


def test_a_coroutine_blocking_the_loop_is_reported_once_and_leases_still_renew(
    backend: MemoryBackend, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="taskkit.worker")
    handler = AsyncHandler()
    lease = 0.4
    kit = fast_kit(
        backend, handler, lease_seconds=lease, heartbeat_interval=0.1, loop_block_warning=0.2
    )
    with worker(kit, {"g": 2}):
        blocker = kit.initiate_task("g", "block", 0)
        wait_until(running(blocker))

        def reports() -> list[logging.LogRecord]:
            return [
                r
                for r in caplog.records
                if "held the event loop" in r.getMessage()
                and getattr(r, "task_id", None) == blocker.task_id
            ]

        wait_until(reports, timeout=10)
        message = reports()[0].getMessage()
        assert f"task {blocker.task_id} (g/block" in message
        since = backend.now()
        wait_until(lambda: backend.now() > since + 3 * lease, timeout=10)
        assert backend.claim("g", "intruder", 1, 60.0, 3).claims == []  # renewed all along
        assert len(reports()) == 1
        handler.release.set()
        assert blocker.get(timeout=5) == "unblocked"
        assert kit.initiate_task("g", "echo", 2).get(timeout=5) == 2
    outcome = blocker.outcome()
    assert outcome is not None and outcome.task.deliveries == 1


def test_sync_and_async_function_tasks_share_a_worker(backend: MemoryBackend) -> None:
    kit = fast_kit(backend, None)

    @kit.task(group="aio")
    async def where_async() -> str:
        await asyncio.sleep(0)
        return threading.current_thread().name

    @kit.task(group="sync")
    def where_sync() -> str:
        return threading.current_thread().name

    with worker(kit, {"aio": 20, "sync": 2}) as handle:
        assert handle.worker.async_groups == {"aio"}
        async_results = [where_async.delay() for _ in range(10)]
        sync_results = [where_sync.delay() for _ in range(10)]
        assert {r.get(timeout=5) for r in async_results} == {LOOP_THREAD}
        assert {r.get(timeout=5) for r in sync_results} == {"taskkit-executor-sync"}


class SyncHandlerReturningCoroutines(TaskHandler):
    """A sync ``handle`` (a thread group) whose tasks return coroutines."""

    def __init__(self) -> None:
        self.stopped: list[str] = []

    def handle(self, task: Task) -> Any:
        return self._run(task, threading.current_thread().name)

    async def _run(self, task: Task, caller: str) -> Any:
        if task.name == "sleep":
            try:
                await asyncio.sleep(30)
            except asyncio.CancelledError:
                self.stopped.append(task.id)
                raise
        context = current_task()
        return [caller, threading.current_thread().name, context and context.task.id]


def test_an_awaitable_from_a_thread_group_runs_on_the_loop(backend: MemoryBackend) -> None:
    handler = SyncHandlerReturningCoroutines()
    kit = fast_kit(backend, handler)
    with worker(kit, {"g": 2}) as handle:
        assert handle.worker.async_groups == set()
        result = kit.initiate_task("g", "where", 0)
        assert result.get(timeout=5) == ["taskkit-executor-g", LOOP_THREAD, result.task_id]
        timed = kit.initiate_task("g", "sleep", 0, timeout=0.3)
        with pytest.raises(Failed, match=r"timed out after 0\.3s"):
            timed.get(timeout=10)
        assert handler.stopped == [timed.task_id]
        assert kit.initiate_task("g", "where", 0).get(timeout=5)[1] == LOOP_THREAD


def test_the_execute_wrappers_see_the_awaited_value_and_exception(
    backend: MemoryBackend,
) -> None:
    seen: list[tuple[str, Any, float]] = []
    lock = threading.Lock()

    class NewStyle:
        @hookimpl(wrapper=True)
        def taskkit_execute_task(self, task: Task, call: Any) -> Any:
            started = time.monotonic()
            try:
                value = yield
            except Exception as exc:
                with lock:
                    seen.append(("raised", type(exc).__name__, time.monotonic() - started))
                raise
            with lock:
                seen.append(("returned", value, time.monotonic() - started))
            return {"wrapped": value}

    class OldStyle:
        @hookimpl(hookwrapper=True)
        def taskkit_execute_task(self, task: Task, call: Any) -> Any:
            outcome = yield
            if outcome.exception is None:
                outcome.force_result([outcome.get_result()])

    started: list[str] = []

    class Lifecycle:
        @hookimpl
        def taskkit_task_started(self, task: Task, worker_id: str) -> None:
            started.append(task.id)

    handler = AsyncHandler()
    kit = fast_kit(backend, handler, plugins=[OldStyle(), NewStyle(), Lifecycle()])
    with worker(kit, {"g": 2}):
        ok = kit.initiate_task("g", "sleep", 0.05)
        # NewStyle is registered last, so it is outermost: it sees OldStyle's list.
        assert ok.get(timeout=5) == {"wrapped": ["slept"]}
        with pytest.raises(Failed, match="ValueError"):
            kit.initiate_task("g", "fail", 1).get(timeout=5)
    assert seen[0][:2] == ("returned", ["slept"])
    assert seen[0][2] >= 0.05  # the wrapper resumed once the coroutine had finished
    assert [s[:2] for s in seen[1:]] == [("raised", "ValueError")] * 2
    assert ok.task_id in started


def test_a_graceful_stop_hands_back_coroutines_past_the_grace_period(
    backend: MemoryBackend,
) -> None:
    handler = AsyncHandler()
    kit = fast_kit(backend, handler, grace_period=0.2)
    before = set(threading.enumerate())
    [handle] = kit.start_processes(1, {"g": 5})
    results = [kit.initiate_task("g", "hold", i) for i in range(3)]
    wait_until(lambda: len(handler.started) == 3)
    handle.terminate()
    handle.join(10)
    assert not handle.is_alive()
    for result in results:
        outcome = result.outcome()
        assert outcome is not None and outcome.state is TaskState.QUEUED
        assert outcome.task.deliveries == 0  # handed back: the delivery is not counted
    # The coroutines were stopped, not left running for tasks that now run elsewhere.
    assert sorted(t for t, how in handler.stopped if how == "cancelled") == sorted(
        r.task_id for r in results
    )
    assert not [t for t in threading.enumerate() if t.name == LOOP_THREAD and t not in before]


def test_a_graceful_stop_lets_running_coroutines_finish(backend: MemoryBackend) -> None:
    handler = AsyncHandler()
    kit = fast_kit(backend, handler, grace_period=10.0)
    [handle] = kit.start_processes(1, {"g": 5})
    results = [kit.initiate_task("g", "hold", i) for i in range(3)]
    wait_until(lambda: len(handler.started) == 3)
    handle.terminate()
    wait_until(lambda: handle.worker.stopping.is_set())
    handler.release.set()
    handle.join(10)
    assert not handle.is_alive()
    assert [r.get(timeout=0) for r in results] == ["released"] * 3
