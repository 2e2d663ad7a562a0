"""``taskkit.aiotools`` (per-loop resources, waiters by key, stopping tasks) and the asyncio
defaults of ``Backend`` (``aput``, ``aget_outcome``, ``await_outcome``, ``aclose``)."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Sequence

import pytest
from taskkit import MemoryBackend, Outcome, Task, TaskState
from taskkit.aiotools import PerLoop, Waiters, stop_tasks


class Resources:
    """A PerLoop of numbered resources that records which were closed, and on which thread."""

    def __init__(self) -> None:
        self.built = 0
        self.closed: list[tuple[int, int]] = []
        self.per_loop: PerLoop[int] = PerLoop(self._build, self._close)

    def _build(self) -> int:
        self.built += 1
        return self.built

    async def _close(self, resource: int) -> None:
        await asyncio.sleep(0)  # closing awaits, as a client's aclose does
        self.closed.append((resource, threading.get_ident()))


# ---------------------------------------------------------------------- PerLoop


def test_one_resource_per_loop_closed_when_asyncio_run_ends() -> None:
    r = Resources()

    async def use() -> tuple[int, int, int | None]:
        return r.per_loop.get(), r.per_loop.get(), r.per_loop.current()

    assert asyncio.run(use()) == (1, 1, 1)
    assert [c[0] for c in r.closed] == [1]
    assert asyncio.run(use()) == (2, 2, 2)  # a new loop gets its own
    assert [c[0] for c in r.closed] == [1, 2]
    assert r.per_loop.current() is None and len(r.per_loop) == 0


def test_get_outside_a_running_loop_raises() -> None:
    with pytest.raises(RuntimeError):
        Resources().per_loop.get()


def test_aclose_current_closes_now_and_the_next_get_builds_anew() -> None:
    r = Resources()

    async def use() -> None:
        assert r.per_loop.get() == 1
        await r.per_loop.aclose_current()
        assert [c[0] for c in r.closed] == [1] and r.per_loop.current() is None
        assert r.per_loop.get() == 2

    asyncio.run(use())
    assert [c[0] for c in r.closed] == [1, 2]


def test_close_all_closes_a_loop_running_in_another_thread_on_that_thread() -> None:
    r = Resources()
    ready, release = threading.Event(), threading.Event()
    idents: list[int] = []

    async def use() -> None:
        idents.append(threading.get_ident())
        r.per_loop.get()
        ready.set()
        await asyncio.to_thread(release.wait, 10)

    thread = threading.Thread(target=asyncio.run, args=(use(),))
    thread.start()
    try:
        assert ready.wait(10)
        r.per_loop.close_all()
        assert r.closed == [(1, idents[0])]  # closed before close_all returned
    finally:
        release.set()
        thread.join(10)
    assert len(r.closed) == 1  # the loop's end does not close it twice


def test_close_all_runs_an_idle_loop_to_close_its_resource() -> None:
    r = Resources()
    loop = asyncio.new_event_loop()
    try:

        async def use() -> int:
            return r.per_loop.get()

        assert loop.run_until_complete(use()) == 1
        r.per_loop.close_all()  # the loop is not running now
        assert [c[0] for c in r.closed] == [1]
    finally:
        loop.close()


def test_close_all_from_inside_the_loop_closes_once_the_caller_yields() -> None:
    r = Resources()

    async def use() -> None:
        r.per_loop.get()
        r.per_loop.close_all()  # a backend's close() called from a coroutine
        assert r.closed == []
        await asyncio.sleep(0.05)
        assert [c[0] for c in r.closed] == [1]

    asyncio.run(use())
    assert len(r.closed) == 1


@pytest.mark.skipif(not hasattr(os, "fork"), reason="POSIX fork")
def test_a_forked_child_leaves_the_parents_resources_alone() -> None:
    r = Resources()
    loop = asyncio.new_event_loop()
    try:

        async def use() -> int:
            return r.per_loop.get()

        loop.run_until_complete(use())
        pid = os.fork()
        if pid == 0:  # the child: closing would touch the parent's connections
            try:
                r.per_loop.close_all()
                os._exit(0 if r.closed == [] and len(r.per_loop) == 0 else 1)
            except BaseException:
                os._exit(2)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert len(r.per_loop) == 1 and r.closed == []
        r.per_loop.close_all()
        assert [c[0] for c in r.closed] == [1]
    finally:
        loop.close()


# ---------------------------------------------------------------------- Waiters


def test_a_notification_wakes_every_watch_of_its_key_and_no_other() -> None:
    async def scenario() -> None:
        waiters = Waiters()
        a1, a2, b = waiters.watch("a"), waiters.watch("a"), waiters.watch("b")
        assert waiters.count("a") == 2 and len(waiters) == 2 and sorted(waiters) == ["a", "b"]
        woken = asyncio.gather(a1.wait(5), a2.wait(5))
        await asyncio.sleep(0)
        waiters.notify("a")
        assert await woken == [True, True]
        assert not b.notified and await b.wait(0.01) is False
        waiters.wake_all()
        assert await b.wait(5) is True

    asyncio.run(scenario())


def test_a_notification_before_the_wait_ends_it_at_once_until_rearmed() -> None:
    async def scenario() -> None:
        waiters = Waiters()
        watch = waiters.watch("k")
        waiters.notify("k")  # between the look and the wait
        assert watch.notified and await watch.wait(0) is True
        watch.arm()
        assert not watch.notified and await watch.wait(0.01) is False

    asyncio.run(scenario())


def test_unwatch_tells_when_the_last_watch_of_a_key_left() -> None:
    async def scenario() -> None:
        waiters = Waiters()
        first, second = waiters.watch("k"), waiters.watch("k")
        assert waiters.unwatch(first) is False
        assert waiters.unwatch(second) is True
        assert waiters.unwatch(second) is False and len(waiters) == 0

    asyncio.run(scenario())


# ---------------------------------------------------------------------- stop_tasks


def test_stop_tasks_ends_a_task_that_dropped_a_cancellation() -> None:
    async def stubborn() -> None:
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            pass  # what a pre-3.12 wait_for inside a client library can do
        await asyncio.sleep(60)

    async def scenario() -> None:
        task = asyncio.create_task(stubborn())
        await asyncio.sleep(0)
        await asyncio.wait_for(stop_tasks([task], retry_every=0.01), 5)
        assert task.cancelled()

    asyncio.run(scenario())


# ---------------------------------------------------------------------- Backend defaults


class ThreadRecording(MemoryBackend):
    """Records the thread of each blocking call the asyncio defaults make."""

    def __init__(self) -> None:
        super().__init__()
        self.threads: dict[str, int] = {}

    def put(self, tasks: Sequence[Task]) -> list[bool]:
        self.threads["put"] = threading.get_ident()
        return super().put(tasks)

    def get_outcome(self, task_id: str) -> Outcome | None:
        self.threads["get_outcome"] = threading.get_ident()
        return super().get_outcome(task_id)

    def close(self) -> None:
        self.threads["close"] = threading.get_ident()
        super().close()


def _task(backend: MemoryBackend) -> Task:
    now = backend.now()
    return Task("t1", "g", "job", b"{}", now, now)


def test_the_defaults_run_the_blocking_primitives_in_threads() -> None:
    backend = ThreadRecording()
    task = _task(backend)

    async def scenario() -> tuple[list[bool], Outcome | None]:
        stored = await backend.aput([task])
        outcome = await backend.aget_outcome(task.id)
        await backend.aclose()
        return stored, outcome

    stored, outcome = asyncio.run(scenario())
    assert stored == [True] and outcome is not None and outcome.state is TaskState.QUEUED
    loop_thread = threading.get_ident()
    assert set(backend.threads) == {"put", "get_outcome", "close"}
    assert loop_thread not in backend.threads.values()


def test_the_default_wait_polls_without_blocking_the_loop_and_keeps_its_timeout() -> None:
    backend = MemoryBackend()
    task = _task(backend)
    backend.put([task])

    async def scenario() -> tuple[Outcome | None, float, int]:
        ticks = 0

        async def tick() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1

        ticker = asyncio.create_task(tick())
        started = time.monotonic()
        outcome = await backend.await_outcome(task.id, 0.3)
        took = time.monotonic() - started
        ticker.cancel()
        return outcome, took, ticks

    outcome, took, ticks = asyncio.run(scenario())
    assert outcome is not None and outcome.state is TaskState.QUEUED
    assert 0.3 - 0.02 <= took < 2.0
    assert ticks >= 5  # the loop kept running other coroutines during the wait
