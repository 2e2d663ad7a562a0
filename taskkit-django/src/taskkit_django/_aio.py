"""The asyncio primitives of the Django backend (``aput``, ``aget_outcome``, ``await_outcome``,
``aclose``).

Django's ORM is synchronous, so ``aput`` and ``aget_outcome`` run the blocking primitives
through :func:`asgiref.sync.sync_to_async` in its thread-sensitive mode, the way Django's own
async ORM methods (``QuerySet.aget`` and the like) do: every call of a process runs in one
thread, so async callers share one connection per alias, and inside an ``async_to_sync``
block (a sync view calling async code) the calls run in the outer thread and join its open
transaction, as ``put`` does. A thread per call (:func:`asyncio.to_thread`) would leave an
open connection in every executor thread instead.

Waits: on PostgreSQL, :class:`AsyncPostgresMixin` blocks on ``LISTEN`` through psycopg's
``AsyncConnection`` (:mod:`taskkit_django._aio_listen`), one connection per backend and
event loop for every waiter; on SQLite and MariaDB/MySQL the base class polls
:meth:`aget_outcome` with a back-off, as their blocking waits do.
"""

from __future__ import annotations

import asyncio
import functools
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, ClassVar

from asgiref.sync import sync_to_async
from taskkit import Outcome, Task
from taskkit.aiotools import PerLoop

from ._aio_listen import AsyncListener

if TYPE_CHECKING:
    from taskkit.backend import Backend as _Base
else:
    _Base = object

__all__ = ["AsyncDjangoMixin", "AsyncPostgresMixin"]

#: How long a wait lets the LISTEN connection come up before it backs off instead (seconds).
LISTEN_START_WAIT = 2.0
#: The back-off of a wait while the LISTEN connection is down (seconds).
_OUTAGE_POLL = 0.05

_per_loop_lock = threading.Lock()


class AsyncDjangoMixin(_Base):
    """``aput``, ``aget_outcome`` and ``aclose`` over the ORM (every flavour)."""

    async def aput(self, tasks: Sequence[Task]) -> list[bool]:
        stored: list[bool] = await sync_to_async(self.put, thread_sensitive=True)(tasks)
        return stored

    async def aget_outcome(self, task_id: str) -> Outcome | None:
        outcome: Outcome | None = await sync_to_async(self.get_outcome, thread_sensitive=True)(
            task_id
        )
        return outcome

    async def aclose(self) -> None:
        # close() closes the calling thread's connection: the one aput and aget_outcome used.
        await sync_to_async(self.close, thread_sensitive=True)()


class AsyncPostgresMixin(_Base):
    """``await_outcome`` on ``LISTEN`` (the PostgreSQL flavour lists it before its base)."""

    if TYPE_CHECKING:
        using: str

    #: Per event loop: the LISTEN connection, started by the first wait (absent until then).
    _aio_listeners: ClassVar[PerLoop[AsyncListener] | None] = None

    def _async_listener(self) -> AsyncListener:
        listeners = self.__dict__.get("_aio_listeners")
        if listeners is None:
            with _per_loop_lock:
                listeners = self.__dict__.get("_aio_listeners")
                if listeners is None:
                    using = self.using
                    listeners = PerLoop(lambda: AsyncListener(using), AsyncListener.aclose)
                    self.__dict__["_aio_listeners"] = listeners
        listener: AsyncListener = listeners.get()
        return listener

    @property
    def async_listener(self) -> AsyncListener | None:
        """The running loop's LISTEN connection, if this loop waited (for tests and tools)."""
        listeners = self.__dict__.get("_aio_listeners")
        return None if listeners is None else listeners.current()

    def _close_async(self) -> None:
        """Close every loop's LISTEN connection (``close`` calls it, from any thread)."""
        listeners = self.__dict__.get("_aio_listeners")
        if listeners is not None:
            listeners.close_all()

    async def await_outcome(self, task_id: str, timeout: float) -> Outcome | None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max(0.0, timeout)
        outcome = await self.aget_outcome(task_id)
        if outcome is None or outcome.state.finished or deadline <= loop.time():
            return outcome
        if not _psycopg_installed():  # psycopg2: no asyncio connection; the base class polls
            return await super().await_outcome(task_id, deadline - loop.time())
        listener = self._async_listener()
        started = await listener.wait_ready(min(LISTEN_START_WAIT, deadline - loop.time()))
        if not started:
            return await super().await_outcome(task_id, deadline - loop.time())
        watch = listener.waiters.watch(task_id)
        try:
            while True:
                # Armed while listening and before the look: a finish after the look ends
                # the wait below at once.
                watch.arm()
                outcome = await self.aget_outcome(task_id)
                remaining = deadline - loop.time()
                if outcome is None or outcome.state.finished or remaining <= 0:
                    return outcome
                if listener.ready:
                    await watch.wait(remaining)
                else:
                    await asyncio.sleep(min(_OUTAGE_POLL, remaining))
        finally:
            listener.waiters.unwatch(watch)

    async def aclose(self) -> None:
        listeners = self.__dict__.get("_aio_listeners")
        if listeners is not None:
            await listeners.aclose_current()
        await super().aclose()


@functools.cache
def _psycopg_installed() -> bool:
    """Whether psycopg 3 can be imported (asked at the first wait, not at import)."""
    try:
        import psycopg  # noqa: F401, PLC0415
    except ImportError:
        return False
    return True
