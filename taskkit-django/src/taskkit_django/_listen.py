"""PostgreSQL LISTEN/NOTIFY: idle workers and ``result.get`` wake on a notification.

One dedicated connection per backend instance and process listens on one channel; a daemon
thread reads notifications and bumps versions in :class:`Waiters`. A waiter records the
version of its key *before* it reads the database, then waits for the version to change, so a
notification between its read and its wait is never missed. While the listening connection is
down (server restart), waits fall back to a short back-off and every waiter is woken when it
comes back, since notifications sent in between were lost.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Iterable
from typing import Any

from django.db import connections

log = logging.getLogger("taskkit.django")

#: The channel every taskkit change is announced on (channels are per database).
CHANNEL = "taskkit"
WORK_PREFIX = "w:"
OUTCOME_PREFIX = "o:"


class Waiters:
    """Versions by key for the keys somebody waits on; thread-safe."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._versions: dict[str, int] = {}
        self._watchers: dict[str, int] = {}
        self._epoch = 0  # bumped when notifications may have been lost

    def watch(self, key: str) -> int:
        """Start watching ``key``; returns the version to pass to :meth:`wait`."""
        with self._cond:
            self._watchers[key] = self._watchers.get(key, 0) + 1
            return self._versions.get(key, 0) + self._epoch * 1_000_000_007

    def unwatch(self, key: str) -> None:
        with self._cond:
            left = self._watchers.get(key, 0) - 1
            if left > 0:
                self._watchers[key] = left
            else:
                self._watchers.pop(key, None)
                if not key.startswith(WORK_PREFIX):
                    # Outcome keys are one per task: forget them so the dict stays small.
                    self._versions.pop(key, None)

    def _current(self, key: str) -> int:
        return self._versions.get(key, 0) + self._epoch * 1_000_000_007

    def wait(self, key: str, seen: int, timeout: float) -> bool:
        """Wait until ``key`` changed since ``seen``; True if it did."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._current(key) == seen:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(remaining)
            return True

    def notify(self, keys: Iterable[str]) -> None:
        with self._cond:
            changed = False
            for key in keys:
                if key in self._watchers or key.startswith(WORK_PREFIX):
                    self._versions[key] = self._versions.get(key, 0) + 1
                    changed = True
            if changed:
                self._cond.notify_all()

    def wake_all(self) -> None:
        with self._cond:
            self._epoch += 1
            self._cond.notify_all()


_shared: dict[str, tuple[Listener, int]] = {}
_shared_lock = threading.Lock()


def acquire(using: str) -> Listener:
    """The process's listener for ``using``, shared by every backend on that alias."""
    with _shared_lock:
        listener, users = _shared.get(using, (None, 0))
        if listener is None or listener._pid != os.getpid():
            listener, users = Listener(using), 0
        _shared[using] = (listener, users + 1)
        return listener


def release(listener: Listener) -> None:
    """Stop the listener when its last backend is closed."""
    with _shared_lock:
        current, users = _shared.get(listener.using, (None, 0))
        if current is not listener:
            listener.stop()
            return
        if users <= 1:
            del _shared[listener.using]
            listener.stop()
        else:
            _shared[listener.using] = (listener, users - 1)


def stop_all() -> None:
    """Stop every listener of this process (tests, interpreter shutdown)."""
    with _shared_lock:
        listeners = [entry[0] for entry in _shared.values()]
        _shared.clear()
    for listener in listeners:
        listener.stop()


class Listener:
    """The LISTEN connection and its reader thread for one database alias."""

    def __init__(self, using: str) -> None:
        self.using = using
        self.waiters = Waiters()
        self._ready = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._pid = os.getpid()
        self._wrapper: Any = None
        self._lost_since: float | None = None  # when the connection was lost (one warning)

    @property
    def ready(self) -> bool:
        """True while the connection is listening: no notification can be missed."""
        return self._ready.is_set() and os.getpid() == self._pid

    def ensure_started(self, wait: float = 0.0) -> bool:
        with self._lock:
            if os.getpid() != self._pid:
                # A forked copy: the thread and the connection belong to the parent.
                self._pid = os.getpid()
                self._thread = None
                self._wrapper = None
                self._ready = threading.Event()
                self.waiters = Waiters()
            if self._thread is None or not self._thread.is_alive():
                self._stop.clear()
                self._thread = threading.Thread(
                    target=self._loop, name=f"taskkit-listen-{self.using}", daemon=True
                )
                self._thread.start()
        if wait > 0:
            self._ready.wait(wait)
        return self.ready

    def stop(self) -> None:
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=2.0)
        self._close()

    def _close(self) -> None:
        wrapper, self._wrapper = self._wrapper, None
        if wrapper is not None and os.getpid() == self._pid:
            try:
                wrapper.close()
            except Exception:
                log.debug("closing the LISTEN connection failed", exc_info=True)

    def _loop(self) -> None:
        delay = 0.1
        while not self._stop.is_set():
            try:
                self._listen()
                delay = 0.1
            except Exception as exc:
                if self._stop.is_set():
                    break
                # One line per outage (the first lost connection), not one per retry; the
                # return is reported by ``_listen`` at INFO. Retries at least every second.
                if self._lost_since is None:
                    self._lost_since = time.monotonic()
                    first = str(exc).strip().splitlines()
                    log.warning(
                        "taskkit: LISTEN connection to %r lost (%s: %s); retrying until it is "
                        "back (waits fall back to polling meanwhile)",
                        self.using,
                        type(exc).__name__,
                        first[0] if first else "",
                    )
                log.debug("LISTEN connection to %r failed", self.using, exc_info=True)
            finally:
                self._ready.clear()
                self._close()
                # Whatever was notified while we were away is lost: everyone looks again.
                self.waiters.wake_all()
            self._stop.wait(delay)
            delay = min(delay * 2, 1.0)

    def _listen(self) -> None:
        wrapper = connections.create_connection(self.using)
        options = dict(wrapper.settings_dict.get("OPTIONS") or {})
        # A server that vanished without closing the socket (partition, power loss) is
        # noticed by TCP keepalives within about 30 s; a restart closes the socket at once.
        for key, value in (
            ("keepalives", 1),
            ("keepalives_idle", 10),
            ("keepalives_interval", 5),
            ("keepalives_count", 3),
        ):
            options.setdefault(key, value)
        wrapper.settings_dict = {**wrapper.settings_dict, "OPTIONS": options}
        self._wrapper = wrapper
        wrapper.ensure_connection()
        raw = wrapper.connection
        raw.autocommit = True
        with raw.cursor() as cursor:
            cursor.execute(f"LISTEN {CHANNEL}")
        self._ready.set()
        self.waiters.wake_all()
        if self._lost_since is not None:
            log.info(
                "taskkit: LISTEN connection to %r is back (after %.1fs)",
                self.using,
                time.monotonic() - self._lost_since,
            )
            self._lost_since = None
        if hasattr(raw, "notifies") and callable(raw.notifies):
            self._read_psycopg3(raw)
        else:
            self._read_psycopg2(raw)

    def _dispatch(self, payloads: list[str]) -> None:
        if payloads:
            self.waiters.notify(payloads)

    def _read_psycopg3(self, raw: Any) -> None:
        while not self._stop.is_set():
            # The generator ends after the timeout, so the stop flag is seen within 1 s.
            for notify in raw.notifies(timeout=1.0):
                self._dispatch([notify.payload])
            if raw.closed:
                raise ConnectionError("the LISTEN connection closed")

    def _read_psycopg2(self, raw: Any) -> None:  # pragma: no cover - psycopg2 only
        import select  # noqa: PLC0415

        while not self._stop.is_set():
            if select.select([raw], [], [], 1.0) == ([], [], []):
                raw.poll()
                continue
            raw.poll()
            payloads = [n.payload for n in raw.notifies]
            raw.notifies.clear()
            self._dispatch(payloads)
