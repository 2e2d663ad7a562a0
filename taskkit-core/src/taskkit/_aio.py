"""The worker's event loop: one thread per worker process that runs every coroutine.

An async group's tasks run here as asyncio tasks (its count is their concurrency, not a
number of threads), and so does an awaitable that a thread group's handler returns (its
thread waits for it). Only this thread touches the loop; other threads hand it work with
``call_soon_threadsafe``. Nothing the worker needs to stay alive runs on it: the lease
keeper, the claimers and the outcome recorder are threads, so a coroutine that blocks the
loop (``time.sleep`` in ``async def``) stalls the loop's coroutines and nothing else.

Two things let other threads watch and steer the loop:

* a **heartbeat** coroutine stamps the time every ``beat_interval``; :meth:`EventLoopThread.held`
  tells how long the loop has gone without a beat and which owner's asyncio task holds it
  (``asyncio.current_task(loop)``), so the keeper can report a blocking coroutine by name;
* a :class:`CoroutineGuard` per task turns the keeper's interruption (a time limit or a
  cancel request) into ``Task.cancel()`` on the loop, and the ``CancelledError`` back into
  the :class:`~taskkit.TaskTimeout` or :class:`~taskkit.TaskCancelled` a thread would get.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

from ._task import Task
from .handler import TaskHandler

__all__ = ["CoroutineGuard", "EventLoopThread", "LoopHold", "runs_on_loop"]

log = logging.getLogger("taskkit.worker")

T = TypeVar("T")


def runs_on_loop(handler: TaskHandler, group: str) -> bool:
    """Whether ``group``'s tasks run as coroutines on the event loop (an async group).

    A handler that knows (the kit's router: a group of ``async def`` function tasks) answers
    through ``is_async_group(group)``; otherwise a handler with ``async def handle`` makes
    every group async.
    """
    probe = getattr(handler, "is_async_group", None)
    if probe is not None:
        return bool(probe(group))
    return inspect.iscoroutinefunction(type(handler).handle)


def close_unawaited(awaitable: Awaitable[Any]) -> None:
    """Drop an awaitable that will never run, without a "never awaited" warning."""
    if inspect.iscoroutine(awaitable):
        awaitable.close()


class CoroutineGuard:
    """Stops one task's awaitable on the loop on behalf of another thread (the keeper).

    :meth:`interrupt` may come at any time: before :meth:`run` starts (it then raises at
    once, without running the awaitable), while it awaits (the asyncio task is cancelled at
    its current ``await``), or after (nothing happens). Like the one asynchronous exception
    a thread gets, it is delivered once: a coroutine that catches the ``CancelledError`` and
    goes on is left to the keeper's grace period.

    :ivar task: the taskkit task it guards (named when the loop is reported blocked).
    :ivar reported: set once the task was reported for blocking the loop.
    """

    def __init__(self, loop: EventLoopThread, task: Task) -> None:
        self.task = task
        self.reported = False
        self._loop = loop
        self._reason: type[BaseException] | None = None
        self._running: asyncio.Task[Any] | None = None

    def interrupt(self, reason: type[BaseException]) -> None:
        """Stop the awaitable with ``reason(task_id)`` (from any thread; the first wins)."""
        if self._reason is not None:
            return
        self._reason = reason
        self._loop.call_soon(self._cancel)

    def _cancel(self) -> None:
        if self._running is not None:
            self._running.cancel()

    async def run(self, awaitable: Awaitable[T]) -> T:
        """Await ``awaitable`` in the current asyncio task, interruptible by :meth:`interrupt`."""
        if self._reason is not None:
            close_unawaited(awaitable)
            raise self._reason(self.task.id)
        self._running = asyncio.current_task()
        try:
            return await awaitable
        except asyncio.CancelledError:
            if self._reason is None:
                raise  # not ours: the loop is shutting down, or the user's code cancelled
            uncancel = getattr(self._running, "uncancel", None)  # Python 3.11+
            if uncancel is not None:
                uncancel()  # the cancel was ours and is consumed: later awaits are unaffected
            raise self._reason(self.task.id) from None
        finally:
            self._running = None


@dataclass(frozen=True)
class LoopHold:
    """The loop has gone ``seconds`` without its heartbeat.

    :ivar seconds: how long beyond the heartbeat's own sleep.
    :ivar owner: the guard of the task whose asyncio task runs right now, or None (the loop
        runs a callback, or an asyncio task that is no task's).
    :ivar since: the monotonic time of the last beat: the same value means the same hold.
    """

    seconds: float
    owner: CoroutineGuard | None
    since: float


class EventLoopThread:
    """An asyncio event loop running in a daemon thread of its own.

    :param beat_interval: seconds between heartbeats (the resolution of :meth:`held`).
    """

    def __init__(self, beat_interval: float, name: str = "taskkit-loop") -> None:
        self._beat_interval = beat_interval
        self._name = name
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._beat: float | None = None
        self._owners: dict[asyncio.Task[Any], CoroutineGuard] = {}

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        """Start the loop's thread (once; later calls do nothing)."""
        with self._lock:
            if self._thread is not None:
                return
            self._loop = asyncio.new_event_loop()
            ready = threading.Event()
            self._thread = threading.Thread(
                target=self._run, args=(self._loop, ready), name=self._name, daemon=True
            )
            self._thread.start()
        ready.wait()

    def _run(self, loop: asyncio.AbstractEventLoop, ready: threading.Event) -> None:
        asyncio.set_event_loop(loop)
        loop.call_soon(ready.set)
        beat = loop.create_task(self._heartbeat(), name="taskkit-loop-heartbeat")
        try:
            loop.run_forever()
        finally:
            beat.cancel()
            leftovers = [t for t in asyncio.all_tasks(loop) if not t.done()]
            for leftover in leftovers:
                leftover.cancel()
            if leftovers:
                # Bounded: a coroutine that ignores cancellation must not hold the exit.
                loop.run_until_complete(asyncio.wait(leftovers, timeout=1.0))
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    async def _heartbeat(self) -> None:
        while True:
            self._beat = time.monotonic()
            await asyncio.sleep(self._beat_interval)

    def call_soon(self, callback: Callable[..., object], *args: Any) -> None:
        """Run ``callback(*args)`` on the loop (from any thread).

        :raises RuntimeError: the loop is not running (never started, or closed).
        """
        if self._loop is None:
            raise RuntimeError("the event loop was not started")
        self._loop.call_soon_threadsafe(callback, *args)

    def is_current_thread(self) -> bool:
        """Whether the caller runs on the loop's thread (where nothing may block)."""
        return self._thread is not None and threading.get_ident() == self._thread.ident

    def resolve(self, future: asyncio.Future[None]) -> None:
        """Mark ``future`` done from any thread (nothing happens once the loop is closed)."""

        def done() -> None:
            if not future.done():
                future.set_result(None)

        try:
            self.call_soon(done)
        except RuntimeError:
            pass  # the loop is closed: nobody awaits it any more

    @contextmanager
    def owned_by(self, owner: CoroutineGuard) -> Iterator[None]:
        """Within the block, the current asyncio task counts as ``owner``'s (see :meth:`held`)."""
        current = asyncio.current_task()
        if current is None:
            yield
            return
        self._owners[current] = owner
        try:
            yield
        finally:
            self._owners.pop(current, None)

    def run_and_wait(self, coroutine: Coroutine[Any, Any, T], owner: CoroutineGuard) -> T:
        """Run ``coroutine`` on the loop as an asyncio task owned by ``owner``; block the
        calling thread until it ends; return its value or raise what it raised (whatever
        ``BaseException``: a ``SystemExit`` reaches the caller, not the loop)."""
        if self._loop is None:
            raise RuntimeError("the event loop was not started")
        future = asyncio.run_coroutine_threadsafe(self._boxed(coroutine, owner), self._loop)
        ok, value = future.result()
        if ok:
            return value  # type: ignore[no-any-return]
        raise value

    async def _boxed(
        self, coroutine: Coroutine[Any, Any, T], owner: CoroutineGuard
    ) -> tuple[bool, Any]:
        # asyncio re-raises SystemExit and KeyboardInterrupt out of the loop itself: box every
        # outcome so the loop survives the user's code.
        with self.owned_by(owner):
            try:
                return True, await coroutine
            except BaseException as exc:
                return False, exc

    def held(self) -> LoopHold | None:
        """How long the loop has been held without a heartbeat, and by whom (from any thread).

        None while the loop beats on time (or before it started).
        """
        beat, loop = self._beat, self._loop
        if beat is None or loop is None:
            return None
        seconds = time.monotonic() - beat - self._beat_interval
        if seconds <= 0:
            return None
        holder = asyncio.current_task(loop)
        return LoopHold(seconds, self._owners.get(holder) if holder is not None else None, beat)

    def cancel_all(self, timeout: float) -> None:
        """Cancel every asyncio task but the heartbeat and wait up to ``timeout`` seconds for
        them to end (the worker hands back what was running; nothing else should go on)."""
        if not self.running or self._loop is None:
            return

        async def cancel() -> None:
            me = asyncio.current_task()
            tasks = [
                t
                for t in asyncio.all_tasks()
                if t is not me and t.get_name() != "taskkit-loop-heartbeat"
            ]
            for task in tasks:
                task.cancel()
            if tasks:
                await asyncio.wait(tasks, timeout=timeout)

        try:
            future = asyncio.run_coroutine_threadsafe(cancel(), self._loop)
            future.result(timeout + 1.0)  # a blocked loop never answers: do not wait for it
        except Exception:
            log.debug("cancelling the event loop's tasks did not finish", exc_info=True)

    def stop(self, timeout: float) -> bool:
        """Stop the loop and wait up to ``timeout`` seconds for its thread.

        :return: True if the thread ended (a coroutine that blocks the loop keeps it).
        """
        thread, loop = self._thread, self._loop
        if thread is None or loop is None:
            return True
        try:
            loop.call_soon_threadsafe(loop.stop)
        except RuntimeError:
            pass  # closed already
        thread.join(timeout)
        return not thread.is_alive()
