"""asyncio result waits on PostgreSQL: one ``LISTEN`` connection (psycopg's
``AsyncConnection``) per backend and event loop wakes every coroutine waiting on a result.

The channel and payloads are the blocking listener's (:mod:`taskkit_django._listen`): a
finish announces ``o:<task id>`` on ``taskkit`` in its own statement, so a notification
arrives only once the change is visible. A reader task reads the notifications and wakes the
task's :class:`~taskkit.aiotools.Watch` es; nothing is subscribed per waiter, since one
``LISTEN`` hears every task.

No notification is missed: a waiter arms its watch while the connection is listening and
only then reads the task. When the connection drops, every waiter is woken at once and again
once ``LISTEN`` is back (what was announced in between is lost), and waits back off
meanwhile, as the blocking waits do.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from django.db import connections
from taskkit.aiotools import Waiters, stop_tasks

from ._listen import CHANNEL, OUTCOME_PREFIX

__all__ = ["AsyncListener"]

log = logging.getLogger("taskkit.django")

#: Pause before reconnecting, doubling up to the cap (seconds).
_RECONNECT_DELAY = 0.1
_RECONNECT_CAP = 1.0


def connection_params(using: str) -> dict[str, Any]:
    """psycopg connection arguments for the alias ``using``, as Django builds them, with TCP
    keepalives so that a vanished server is noticed within about 30 s."""
    params = dict(connections.create_connection(using).get_connection_params())
    # Django's sync cursor class and adapters; the LISTEN connection runs no queries.
    for name in ("cursor_factory", "context", "prepare_threshold"):
        params.pop(name, None)
    for key, value in (
        ("keepalives", 1),
        ("keepalives_idle", 10),
        ("keepalives_interval", 5),
        ("keepalives_count", 3),
    ):
        params.setdefault(key, value)
    return params


class AsyncListener:
    """The ``LISTEN`` connection and its reader task, for one alias on one event loop."""

    def __init__(self, using: str) -> None:
        self.using = using
        #: Waiters by task id.
        self.waiters = Waiters()
        self._params = connection_params(using)
        self._ready = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        #: Connections opened so far (tests check it stays at one).
        self.connections_opened = 0
        #: The server process of the current connection (``pg_stat_activity.pid``), or None.
        self.backend_pid: int | None = None

    @property
    def ready(self) -> bool:
        """The connection is listening: no notification can be missed."""
        return self._ready.is_set()

    async def wait_ready(self, timeout: float) -> bool:
        """Start listening if needed; True once listening, False if ``timeout`` ran out."""
        if self._task is None and not self._closed:
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name=f"taskkit-listen-{self.using}"
            )
        if self._ready.is_set():
            return True
        try:
            await asyncio.wait_for(self._ready.wait(), max(0.0, timeout))
        except asyncio.TimeoutError:
            return False
        return True

    async def aclose(self) -> None:
        self._closed = True
        task, self._task = self._task, None
        if task is not None:
            await stop_tasks([task])
        self.waiters.wake_all()

    async def _run(self) -> None:
        import psycopg  # noqa: PLC0415 - PostgreSQL only

        delay = _RECONNECT_DELAY
        lost_since: float | None = None
        loop = asyncio.get_running_loop()
        while not self._closed:
            conn: Any = None
            try:
                conn = await psycopg.AsyncConnection.connect(autocommit=True, **self._params)
                self.connections_opened += 1
                self.backend_pid = conn.info.backend_pid
                await conn.execute(f"LISTEN {CHANNEL}")
                self._ready.set()
                # Anything announced before LISTEN took effect was not heard: look again.
                self.waiters.wake_all()
                if lost_since is not None:
                    log.info(
                        "taskkit: asyncio LISTEN connection to %r is back (after %.1fs)",
                        self.using,
                        loop.time() - lost_since,
                    )
                    lost_since = None
                delay = _RECONNECT_DELAY
                async for notify in conn.notifies():
                    payload = notify.payload
                    if payload.startswith(OUTCOME_PREFIX):
                        self.waiters.notify(payload[len(OUTCOME_PREFIX) :])
                raise ConnectionError("the LISTEN connection stopped delivering")
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                # One line per outage, as the blocking listener logs it.
                if lost_since is None:
                    lost_since = loop.time()
                    first = str(exc).strip().splitlines()
                    log.warning(
                        "taskkit: asyncio LISTEN connection to %r lost (%s: %s); retrying until "
                        "it is back (result waits back off meanwhile)",
                        self.using,
                        type(exc).__name__,
                        first[0] if first else "",
                    )
                log.debug("asyncio LISTEN connection to %r failed", self.using, exc_info=True)
            finally:
                self._ready.clear()
                self.backend_pid = None
                self.waiters.wake_all()
                if conn is not None:
                    await _close_quietly(conn)
            await asyncio.sleep(delay)
            delay = min(delay * 2, _RECONNECT_CAP)


async def _close_quietly(conn: Any) -> None:
    try:
        await conn.close()
    except Exception:
        log.debug("closing the asyncio LISTEN connection failed", exc_info=True)
