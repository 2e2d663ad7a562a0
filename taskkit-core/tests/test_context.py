"""The running task's context: cooperative cancel and time limit, one context per task."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest
from taskkit import Task, TaskCancelled, TaskTimeout
from taskkit.context import TaskContext, _set_current, current_task


def context(deadline: float | None = None, task_id: str = "t") -> TaskContext:
    return TaskContext(Task(task_id, "g", "n", b"null", 0.0, 0.0), deadline=deadline)


def test_check_passes_while_the_task_may_go_on() -> None:
    ctx = context(deadline=time.monotonic() + 3600)
    ctx.check()
    assert not ctx.cancelled and not ctx.timed_out.is_set()


def test_check_raises_task_cancelled_once_a_cancel_is_requested() -> None:
    ctx = context()
    ctx.cancel_requested.set()
    assert ctx.cancelled
    with pytest.raises(TaskCancelled):
        ctx.check()


def test_check_raises_task_timeout_past_the_deadline_and_remembers_it() -> None:
    ctx = context(deadline=time.monotonic() - 1)
    with pytest.raises(TaskTimeout):
        ctx.check()
    assert ctx.timed_out.is_set()
    ctx.deadline = None  # the keeper's flag alone keeps it timed out
    with pytest.raises(TaskTimeout):
        ctx.check()


def test_a_cancel_wins_over_a_timeout() -> None:
    ctx = context(deadline=time.monotonic() - 1)
    ctx.cancel_requested.set()
    with pytest.raises(TaskCancelled):
        ctx.check()


def test_remaining_is_none_without_a_limit_and_never_negative() -> None:
    assert context().remaining() is None
    assert context(deadline=time.monotonic() - 5).remaining() == 0.0
    remaining = context(deadline=time.monotonic() + 3600).remaining()
    assert remaining is not None and 0 < remaining <= 3600


def test_the_stop_exceptions_pass_through_except_exception() -> None:
    # A handler's ``except Exception`` must not swallow them.
    assert not issubclass(TaskCancelled, Exception) and not issubclass(TaskTimeout, Exception)


def test_current_task_is_none_outside_a_handler_and_per_thread() -> None:
    assert current_task() is None
    mine = context(task_id="mine")
    _set_current(mine)
    try:
        seen: list[TaskContext | None] = []
        other = threading.Thread(target=lambda: seen.append(current_task()))
        other.start()
        other.join(10)
        assert seen == [None], "another thread saw this thread's task"
        assert current_task() is mine
    finally:
        _set_current(None)


def test_each_asyncio_task_sees_its_own_context() -> None:
    async def run_as(task_id: str, started: asyncio.Event, go: asyncio.Event) -> str:
        _set_current(context(task_id=task_id))
        started.set()
        await go.wait()  # both are set before either reads
        ctx = current_task()
        assert ctx is not None
        return ctx.task.id

    async def main() -> list[str]:
        go = asyncio.Event()
        firsts = [asyncio.Event(), asyncio.Event()]
        tasks = [asyncio.create_task(run_as(n, e, go)) for n, e in zip(("a", "b"), firsts)]
        for event in firsts:
            await event.wait()
        go.set()
        return list(await asyncio.gather(*tasks))

    assert asyncio.run(main()) == ["a", "b"]
    assert current_task() is None
