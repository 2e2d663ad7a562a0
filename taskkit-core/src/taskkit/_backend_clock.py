"""The backend's clock, estimated from the local one: the one offset helper of the kit and
the worker.

A backend whose clock is this host's (``clock_is_local``) is read directly. Otherwise the
offset between the two clocks is measured (:func:`taskkit.clock.measure_offset`) and added
to ``time.time()``: on demand (:meth:`BackendClock.sync`, which a worker calls as it
starts), and, when ``resync_after`` is given, again once the last measure is that old (the
kit re-measures every 30 s).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Final

from .backend import Backend
from .clock import measure_offset

__all__ = ["BackendClock"]

log = logging.getLogger("taskkit")


class BackendClock:
    """A backend's clock read through a measured offset.

    :param backend: whose clock this estimates.
    :param resync_after: re-measure once the last measure is this many seconds old
        (``None``: only when :meth:`sync` is called).
    """

    #: How often a kit re-measures the offset (seconds).
    KIT_RESYNC: Final = 30.0

    def __init__(self, backend: Backend, *, resync_after: float | None = None) -> None:
        self.backend = backend
        self.resync_after = resync_after
        self.offset = 0.0
        self._synced: float | None = None
        self._refreshing = False

    def sync(self) -> None:
        """Measure the offset now."""
        self.offset = measure_offset(self.backend.now)
        self._synced = time.monotonic()

    def now(self) -> float:
        """The backend's time (epoch seconds)."""
        if self.backend.clock_is_local:
            return self.backend.now()
        if self.resync_after is not None and (
            self._synced is None or time.monotonic() - self._synced > self.resync_after
        ):
            self.sync()
        return time.time() + self.offset

    async def anow(self) -> float:
        """:meth:`now` for async code: never blocks the event loop on a round trip.

        The first measure is awaited in a thread; later, a stale offset is used once more
        while a thread re-measures it (a clock offset drifts slowly; a blocked loop stalls
        every coroutine of the process).
        """
        if self.backend.clock_is_local:
            return self.backend.now()
        if self._synced is None:
            await asyncio.to_thread(self.sync)
        elif (
            self.resync_after is not None
            and time.monotonic() - self._synced > self.resync_after
            and not self._refreshing
        ):
            self._refreshing = True
            asyncio.get_running_loop().run_in_executor(None, self._refresh)
        return time.time() + self.offset

    def _refresh(self) -> None:
        try:
            self.sync()
        except Exception:  # the next read tries again; the old offset stays meanwhile
            log.debug("re-measuring the backend's clock failed", exc_info=True)
        finally:
            self._refreshing = False
