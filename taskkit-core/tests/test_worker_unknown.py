"""Tasks no function or handler of a worker knows: deferred (a rolling deploy), buried after
``unknown_task_window``; an explicit ``DiscardTask`` still discards (memory backend)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from taskkit import (
    DeadLettered,
    DiscardTask,
    Kit,
    MemoryBackend,
    NotFound,
    Task,
    TaskHandler,
    TaskState,
    hookimpl,
)
from taskkit._unknown import FIRST_DELAY, MAX_DELAY, UnknownTasks, defer_delay

from .conftest import wait_until


class OldHandler(TaskHandler):
    """The code before the deploy: knows ``old`` only (and ``gone``, which it discards)."""

    def handle(self, task: Task) -> Any:
        if task.name == "old":
            return "old ran"
        if task.name == "gone":
            raise DiscardTask("not wanted any more")
        return super().handle(task)  # the base raises UnknownTask


class NewHandler(OldHandler):
    """The code after the deploy: knows ``new`` too."""

    def handle(self, task: Task) -> Any:
        if task.name == "new":
            return "new ran"
        return super().handle(task)


class AsyncOldHandler(TaskHandler):
    async def handle(self, task: Task) -> Any:
        return super().handle(task)


class Events:
    """A plugin that records the lifecycle hooks a worker calls."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.calls: list[tuple[str, str, str]] = []

    def _add(self, hook: str, task: Task, detail: str = "") -> None:
        with self.lock:
            self.calls.append((hook, task.id, detail))

    @hookimpl
    def taskkit_task_started(self, task: Task, worker_id: str) -> None:
        self._add("started", task)

    @hookimpl
    def taskkit_task_discarded(self, task: Task, reason: str) -> None:
        self._add("discarded", task, reason)

    @hookimpl
    def taskkit_task_dead_lettered(self, task: Task, reason: str) -> None:
        self._add("dead_lettered", task, reason)

    @hookimpl
    def taskkit_task_failed(
        self, task: Task, exception: BaseException | None, message: str
    ) -> None:
        self._add("failed", task, message)

    def of(self, task_id: str) -> list[str]:
        with self.lock:
            return [hook for hook, tid, _ in self.calls if tid == task_id]


def make(backend: MemoryBackend, handler: TaskHandler | None, **options: Any) -> Kit:
    options = {"lease_seconds": 2.0, "control_interval": 0.05, **options}
    return Kit(backend, handler, **options)


@contextmanager
def worker(kit: Kit, groups: dict[str, int]) -> Iterator[Any]:
    [handle] = kit.start_processes(1, groups)
    try:
        yield handle
    finally:
        handle.kill()
        handle.join(10)


def deferred(handle: Any, count: int = 1) -> Any:
    return lambda: handle.worker.unknown_tasks.deferred >= count


def test_an_unknown_task_is_deferred_then_run_by_a_worker_that_knows_it(
    backend: MemoryBackend, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="taskkit.worker")
    events = Events()
    old = make(backend, OldHandler(), plugins=[events])
    with worker(old, {"g": 2}) as handle:
        first = old.initiate_task("g", "new", None)
        second = old.initiate_task("g", "new", None)
        wait_until(deferred(handle, 2))
        assert old.initiate_task("g", "old", None).get(timeout=5) == "old ran"
        for result in (first, second):
            outcome = result.outcome()
            assert outcome is not None and outcome.state is TaskState.QUEUED
            # Handed back unrun: no delivery or retry counted, due again after a back-off.
            assert (outcome.task.deliveries, outcome.task.retry_count) == (0, 0)
            assert outcome.task.due > backend.now()
            assert outcome.error == "unknown task: no function or handler for g/new"
    warnings = [r for r in caplog.records if "g/new" in r.getMessage()]
    assert len(warnings) == 1 and warnings[0].levelno == logging.WARNING  # once per name
    assert events.of(first.task_id) == ["started"]  # neither discarded nor dead-lettered
    # The deploy: a worker with the new code starts, and runs what waited for it.
    new = make(backend, NewHandler())
    with worker(new, {"g": 2}):
        assert first.get(timeout=10) == "new ran"
        assert second.get(timeout=10) == "new ran"


def test_function_tasks_and_async_groups_defer_unknown_names_too(backend: MemoryBackend) -> None:
    functions = make(backend, None)

    @functions.task(group="fn")
    def known() -> str:
        return "known"

    with worker(functions, {"fn": 1}) as handle:
        result = functions.initiate_task("fn", "not-a-function", None)
        wait_until(deferred(handle))
        assert known.delay().get(timeout=5) == "known"
    assert result.outcome().state is TaskState.QUEUED  # type: ignore[union-attr]

    async_kit = make(backend, AsyncOldHandler())
    with worker(async_kit, {"aio": 3}) as handle:
        assert handle.worker.async_groups == {"aio"}
        result = async_kit.initiate_task("aio", "new", None)
        wait_until(deferred(handle))
    outcome = result.outcome()
    assert outcome is not None and outcome.state is TaskState.QUEUED
    assert outcome.task.deliveries == 0


def test_an_unknown_task_is_buried_after_the_window_and_can_be_requeued(
    backend: MemoryBackend,
) -> None:
    events = Events()
    old = make(backend, OldHandler(), plugins=[events], unknown_task_window=0.3)
    with worker(old, {"g": 1}) as handle:
        result = old.initiate_task("g", "new", None)
        wait_until(lambda: handle.worker.unknown_tasks.buried == 1, timeout=10)
        reason = "unknown task: no function or handler for g/new"
        with pytest.raises(DeadLettered, match=reason):
            result.get(timeout=5)
        assert handle.worker.unknown_tasks.deferred >= 1  # held back first, within the window
        assert [o.task.id for o in old.dead_letters("g")] == [result.task_id]
        wait_until(lambda: "dead_lettered" in events.of(result.task_id))
        assert ("dead_lettered", result.task_id, reason) in events.calls
        assert "discarded" not in events.of(result.task_id)
    # An operator requeues the dead letter once the new code is deployed.
    assert old.requeue_dead_letter(result.task_id)
    with worker(make(backend, NewHandler()), {"g": 1}):
        assert result.get(timeout=10) == "new ran"


def test_a_zero_window_buries_at_once(backend: MemoryBackend) -> None:
    kit = make(backend, OldHandler(), unknown_task_window=0)
    with worker(kit, {"g": 1}) as handle:
        with pytest.raises(DeadLettered, match="unknown task"):
            kit.initiate_task("g", "new", None).get(timeout=5)
        assert handle.worker.unknown_tasks.deferred == 0


def test_an_explicit_discard_still_discards(backend: MemoryBackend) -> None:
    events = Events()
    kit = make(backend, OldHandler(), plugins=[events])
    with worker(kit, {"g": 1}) as handle:
        result = kit.initiate_task("g", "gone", None)
        with pytest.raises(NotFound, match="not wanted any more"):
            result.get(timeout=5)
        wait_until(lambda: "discarded" in events.of(result.task_id))
        assert handle.worker.unknown_tasks.deferred == 0
    outcome = result.outcome()
    assert outcome is not None and outcome.state is TaskState.DISCARDED


def test_the_back_off_grows_with_the_wait_and_never_passes_the_window() -> None:
    assert defer_delay(0) == FIRST_DELAY
    assert defer_delay(50) == 5.0
    assert defer_delay(10_000) == MAX_DELAY
    book = UnknownTasks(window=3600.0)
    task = Task("t", "g", "n", b"{}", due=1000.0, created=1000.0)
    first = book.verdict(task, now=1000.0)
    assert (first.action, first.due, first.first) == ("defer", 1000.0 + FIRST_DELAY, True)
    later = book.verdict(task, now=1200.0)
    assert (later.action, later.due, later.first) == ("defer", 1200.0 + 20.0, False)
    near_the_end = book.verdict(task, now=1000.0 + 3590.0)
    assert near_the_end.due == 1000.0 + 3600.0  # due when it is to be buried, not later
    buried = book.verdict(task, now=1000.0 + 3600.0)
    assert (buried.action, buried.due) == ("bury", None)
    assert buried.reason == "unknown task: no function or handler for g/n"
    other = book.verdict(task.evolve(name="m"), now=1000.0)
    assert other.first  # the warning is once per (group, name)
