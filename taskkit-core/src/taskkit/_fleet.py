"""A worker's entry in the backend's registry of live workers (``Backend.list_workers``).

The worker registers as it starts, its keeper refreshes the entry once per heartbeat right
after renewing the leases (one small write beside that round trip), and it deregisters as it
stops. A worker that dies without stopping ages out :data:`MISSED_HEARTBEATS` heartbeats
after its last one. None of this may stop a worker: a failed registry write is retried at the
next heartbeat and reported through the process's :class:`~taskkit._health.BackendHealth`.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable, Mapping
from typing import TypeVar

from ._health import BackendHealth, is_unavailable, one_line
from .backend import Backend

__all__ = ["MISSED_HEARTBEATS", "FleetMembership"]

log = logging.getLogger("taskkit.worker")

T = TypeVar("T")

#: Heartbeats a worker may miss before the registry stops listing it.
MISSED_HEARTBEATS = 3


class FleetMembership:
    """Registers one worker process, keeps its entry fresh and removes it.

    :param heartbeat: the keeper's renewal interval in seconds; the entry lives for
        :data:`MISSED_HEARTBEATS` of them past each heartbeat.
    """

    def __init__(
        self,
        backend: Backend,
        worker_id: str,
        threads: Mapping[str, int],
        heartbeat: float,
        health: BackendHealth,
    ) -> None:
        self._backend = backend
        self._worker_id = worker_id
        self._threads = dict(threads)
        self._expires_after = MISSED_HEARTBEATS * heartbeat
        self._health = health
        self._registered = False
        self._complained = False

    def join(self) -> None:
        """Register (again): as the worker starts, and after its entry was lost."""
        done, _ = self._attempt(
            "registering the worker",
            lambda: self._backend.register_worker(
                self._worker_id,
                socket.gethostname(),
                os.getpid(),
                self._threads,
                self._expires_after,
            ),
        )
        self._registered = done

    def beat(self, tasks_held: int) -> None:
        """Refresh the entry with the number of claims held; register if it is gone."""
        if not self._registered:
            self.join()
            return
        done, alive = self._attempt(
            "the worker's heartbeat",
            lambda: self._backend.heartbeat_worker(
                self._worker_id, tasks_held, self._expires_after
            ),
        )
        if done and not alive:
            # It aged out (a long pause, an outage) or was removed: be listed again.
            self.join()

    def leave(self) -> None:
        """Remove the entry as the worker stops (it ages out anyway if this fails)."""
        self._attempt(
            "deregistering the worker", lambda: self._backend.deregister_worker(self._worker_id)
        )

    def _attempt(self, what: str, call: Callable[[], T]) -> tuple[bool, T | None]:
        """``(True, answer)``, or ``(False, None)`` once the failure is reported."""
        try:
            return True, call()
        except Exception as exc:
            if is_unavailable(exc):
                self._health.failed(f"worker {self._worker_id}: {what}", exc)
            elif not self._complained:
                # Not a recognised outage (a dropped connection the driver words otherwise,
                # or a bug): say it once, in one line, and keep the worker running; the
                # registry is best effort (an entry ages out) and tracebacks go to DEBUG.
                self._complained = True
                log.warning("worker %s: %s failed: %s", self._worker_id, what, one_line(exc))
                log.debug("worker %s: %s failed", self._worker_id, what, exc_info=True)
            else:
                log.debug("worker %s: %s failed", self._worker_id, what, exc_info=True)
            return False, None
