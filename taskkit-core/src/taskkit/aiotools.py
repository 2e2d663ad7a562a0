"""Asyncio helpers for backend authors: resources kept per event loop, and waiters by key.

A backend's asyncio clients belong to the event loop that made them (their sockets and
futures are bound to it), while one backend instance may serve several loops: one per
thread, or ``asyncio.run`` called again and again. :class:`PerLoop` keeps one resource per
loop, builds it on first use, and closes it when that loop shuts down or when the backend
closes, whichever comes first.

:class:`Waiters` is the other half of a multiplexed wait (:meth:`Backend.await_outcome`):
one notification connection per process and loop, and for each key (a task) the coroutines
waiting on it. A waiter arms its :class:`Watch` *before* it looks at the task, so a
notification that arrives between its look and its wait still ends the wait.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

__all__ = ["PerLoop", "Waiters", "Watch", "stop_tasks"]

log = logging.getLogger("taskkit")

R = TypeVar("R")

#: How long :meth:`PerLoop.close_all` waits for a loop running in another thread to close its
#: resource (seconds).
CLOSE_WAIT = 2.0

#: Closes scheduled on the caller's own loop: a task must stay referenced until it ends.
_scheduled: set[asyncio.Task[None]] = set()


@dataclass
class _Entry(Generic[R]):
    loop: asyncio.AbstractEventLoop
    resource: R
    keeper: asyncio.Task[None] | None = None
    pid: int = field(default_factory=os.getpid)
    closing: bool = False  # a close has started: it runs once
    closed: threading.Event = field(default_factory=threading.Event)


class PerLoop(Generic[R]):
    """One resource per running event loop, built lazily and closed exactly once.

    The resource is closed (``close(resource)`` awaited on its own loop) by the first of:

    - the loop's shutdown: a keeper task waits on the loop, and ``asyncio.run`` (or any
      runner that cancels the remaining tasks at its end) cancels it;
    - :meth:`aclose_current`, awaited on that loop;
    - :meth:`close_all`, called from any thread (a backend's ``close``).

    Thread-safe. After a ``fork`` the child never touches the parent's resources.

    :param build: makes the resource; called on the loop's thread, without awaiting.
    :param close: releases it; awaited on the resource's loop, errors are logged at DEBUG.
    """

    def __init__(self, build: Callable[[], R], close: Callable[[R], Awaitable[None]]) -> None:
        self._build = build
        self._close = close
        self._lock = threading.Lock()
        # Keyed by id(loop); each entry holds its loop, so an id is not reused while listed.
        self._entries: dict[int, _Entry[R]] = {}

    def get(self) -> R:
        """The running loop's resource, built on first use.

        :raises RuntimeError: no event loop is running in this thread.
        """
        loop = asyncio.get_running_loop()
        entry = self._entries.get(id(loop))
        if entry is not None and entry.loop is loop and entry.pid == os.getpid():
            return entry.resource
        with self._lock:
            self._prune()
            entry = _Entry(loop, self._build())
            # A loop that ends before its keeper ever ran (no await after the first get)
            # leaves the resource to the garbage collector.
            entry.keeper = loop.create_task(self._keep(entry), name="taskkit-loop-resource")
            self._entries[id(loop)] = entry
        return entry.resource

    def current(self) -> R | None:
        """The running loop's resource if it was built (and not closed), else None."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return None
        entry = self._entries.get(id(loop))
        if entry is None or entry.loop is not loop or entry.pid != os.getpid():
            return None
        return entry.resource

    def __len__(self) -> int:
        """How many loops hold a resource (closed loops are not counted)."""
        with self._lock:
            self._prune()
            return len(self._entries)

    def _prune(self) -> None:
        """Forget the entries of closed loops and of the parent process (lock held)."""
        pid = os.getpid()
        for key, entry in list(self._entries.items()):
            if entry.pid != pid or entry.loop.is_closed():
                del self._entries[key]

    async def _keep(self, entry: _Entry[R]) -> None:
        try:
            await asyncio.Event().wait()  # until cancelled: the loop's end, or after a close
        finally:
            await self._close_once(entry)

    async def _close_once(self, entry: _Entry[R]) -> None:
        if entry.closing:
            return
        entry.closing = True
        try:
            await self._close(entry.resource)
        except Exception:
            log.debug("closing an asyncio resource failed", exc_info=True)
        finally:
            entry.closed.set()

    async def _close_and_stop(self, entry: _Entry[R]) -> None:
        await self._close_once(entry)
        if entry.keeper is not None:
            await stop_tasks([entry.keeper])

    async def aclose_current(self) -> None:
        """Close the running loop's resource now (the next :meth:`get` builds a new one)."""
        loop = asyncio.get_running_loop()
        with self._lock:
            entry = self._entries.get(id(loop))
            if entry is None or entry.loop is not loop:
                return
            del self._entries[id(loop)]
        await self._close_and_stop(entry)

    def close_all(self, timeout: float = CLOSE_WAIT) -> None:
        """Close every loop's resource; callable from any thread, with or without a loop.

        A loop running in another thread closes its resource itself (this waits up to
        ``timeout`` seconds for it). The running loop of this thread closes its own as soon
        as the caller yields to it. An idle loop is run until its resource is closed. A
        closed loop's resource was closed when the loop shut down.
        """
        with self._lock:
            entries = list(self._entries.values())
            self._entries.clear()
        try:
            running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        for entry in entries:
            loop = entry.loop
            if entry.pid != os.getpid() or loop.is_closed() or entry.closing:
                continue
            try:
                if loop is running:
                    closing = loop.create_task(self._close_and_stop(entry))
                    _scheduled.add(closing)
                    closing.add_done_callback(_scheduled.discard)
                elif loop.is_running():
                    asyncio.run_coroutine_threadsafe(self._close_and_stop(entry), loop)
                    entry.closed.wait(timeout)
                elif running is None:
                    loop.run_until_complete(self._close_and_stop(entry))
                else:
                    # A loop cannot be run from inside another: it closes when next run.
                    asyncio.run_coroutine_threadsafe(self._close_and_stop(entry), loop)
            except RuntimeError:
                # The loop closed or started in another thread meanwhile.
                log.debug("closing an asyncio resource of another loop failed", exc_info=True)


async def stop_tasks(tasks: Iterable[asyncio.Task[Any]], *, retry_every: float = 0.1) -> None:
    """Cancel ``tasks`` and wait until every one has ended, cancelling again as needed.

    Cancelling once is not always enough: before Python 3.12, ``asyncio.wait_for`` (used
    inside client libraries) drops a cancellation that arrives just as the call it wraps
    completes, and the task carries on. A background task stopped by this helper should
    also check a "closed" flag of its own at each turn of its loop.
    """
    pending = {task for task in tasks if not task.done()}
    while pending:
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=retry_every)


class Watch:
    """One coroutine's wait on a key; made by :meth:`Waiters.watch`."""

    __slots__ = ("_event", "key")

    def __init__(self, key: str) -> None:
        self.key = key
        self._event = asyncio.Event()

    def arm(self) -> None:
        """Forget notifications seen so far: call it right before looking at the state."""
        self._event.clear()

    @property
    def notified(self) -> bool:
        """A notification came since the last :meth:`arm`."""
        return self._event.is_set()

    async def wait(self, timeout: float) -> bool:
        """Wait for a notification since the last :meth:`arm`, at most ``timeout`` seconds.

        :return: True if one came (at once if it came before the call), False on timeout.
        """
        if self._event.is_set():
            return True
        if timeout <= 0:
            return False
        try:
            await asyncio.wait_for(self._event.wait(), timeout)
        except asyncio.TimeoutError:
            return False
        return True


class Waiters:
    """The coroutines of one event loop waiting on keys.

    Not thread-safe: every call comes from the loop's thread (a reader task that dispatches
    notifications, the waiting coroutines themselves).
    """

    def __init__(self) -> None:
        self._by_key: dict[str, set[Watch]] = {}

    def watch(self, key: str) -> Watch:
        """Start waiting on ``key``; the watch starts armed. Pair it with :meth:`unwatch`."""
        watch = Watch(key)
        self._by_key.setdefault(key, set()).add(watch)
        return watch

    def unwatch(self, watch: Watch) -> bool:
        """Stop ``watch``; True if it was the last watch of its key."""
        watches = self._by_key.get(watch.key)
        if watches is None:
            return False
        watches.discard(watch)
        if watches:
            return False
        del self._by_key[watch.key]
        return True

    def notify(self, key: str) -> None:
        """Wake every watch of ``key``."""
        for watch in self._by_key.get(key, ()):
            watch._event.set()

    def wake_all(self) -> None:
        """Wake every watch (notifications may have been lost: everyone looks again)."""
        for watches in self._by_key.values():
            for watch in watches:
                watch._event.set()

    def count(self, key: str) -> int:
        """How many watches ``key`` has."""
        return len(self._by_key.get(key, ()))

    def __iter__(self) -> Iterator[str]:
        """The keys being watched (a snapshot)."""
        return iter(list(self._by_key))

    def __len__(self) -> int:
        """How many keys are being watched."""
        return len(self._by_key)
