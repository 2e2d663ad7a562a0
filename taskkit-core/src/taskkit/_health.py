"""How a worker process reports backend outages: one line when it begins, one when it ends.

Every thread of a worker (claimers, the keeper, the recorder, schedulers) retries a failed
backend call on its own, but they share one :class:`BackendHealth`: the first failure of an
outage logs one WARNING for the whole process, the first success after it one INFO, and
everything in between (each retry, with its traceback) goes to DEBUG. An outage of any length
costs a process two lines at INFO or above.
"""

from __future__ import annotations

import logging
import threading
import time

__all__ = ["RETRY_CAP", "BackendHealth", "is_unavailable", "one_line"]

#: The longest any worker thread waits between retries of a failed backend call (seconds):
#: work resumes within about this long after the backend is back.
RETRY_CAP = 1.0


def is_unavailable(exc: BaseException) -> bool:
    """Whether ``exc`` says the backend could not be reached (as opposed to a bug).

    Connection errors (:class:`~taskkit.BackendUnavailable` is one), timeouts and OS-level
    socket errors count; so do errors whose cause is one of those.
    """
    seen = 0
    current: BaseException | None = exc
    while current is not None and seen < 8:
        if isinstance(current, (ConnectionError, TimeoutError, OSError)):
            return True
        current = current.__cause__ or current.__context__
        seen += 1
    return False


def one_line(exc: BaseException) -> str:
    """``Type: message`` of ``exc``, cut to its first line."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


class BackendHealth:
    """The reachability of the backend as one process sees it; thread-safe."""

    def __init__(self, logger: logging.Logger, name: str) -> None:
        self._log = logger
        self._name = name
        self._lock = threading.Lock()
        self._down_since: float | None = None

    @property
    def down(self) -> bool:
        """True from the first failure of an outage to the first success after it."""
        return self._down_since is not None

    def failed(self, what: str, exc: BaseException) -> None:
        """A backend call failed because the backend is unreachable; the caller retries."""
        with self._lock:
            first = self._down_since is None
            if first:
                self._down_since = time.monotonic()
        if first:
            self._log.warning(
                "backend %s unreachable (%s: %s); retrying until it is back",
                self._name,
                what,
                one_line(exc),
            )
        self._log.debug("%s failed; retrying", what, exc_info=exc)

    def succeeded(self) -> None:
        """A backend call worked: if an outage was reported, report its end (once)."""
        if self._down_since is None:  # the common case, without the lock
            return
        with self._lock:
            since, self._down_since = self._down_since, None
        if since is not None:
            self._log.info(
                "backend %s reachable again (after %.1fs)", self._name, time.monotonic() - since
            )
