"""Blocking waits for claimers: sharded pub/sub on each group's wake channel.

Why pub/sub and not a blocking list pop: Redis times out blocked commands on its server
cron (100 ms at the default ``hz 10``), too coarse for waking at a delayed task's due time;
a subscription's socket is read with a client-side timeout, exact to the millisecond. Every
script that makes work claimable publishes on the group's channel (``SPUBLISH``: in a
cluster the message stays on the shard that owns the group).

No wake-up is missed: a claimer subscribes once and stays subscribed, so a message published
while it was claiming waits in its socket and ends its next wait at once. The first wait
after subscribing checks for claimable work (the subscription is active by then) before it
blocks. Spurious wake-ups are allowed by the contract and cost one claim.

Stopping: :meth:`WorkWaiter.interrupt` publishes on every channel this instance is waiting
on, so those waits end at once (other subscribers get a spurious wake-up);
:meth:`WorkWaiter.close` interrupts, waits for the waiting threads to leave their
subscriptions and only then closes them. Closing a subscription under a thread that reads it
made that thread fail (with hiredis: ``TypeError: argument must be an int, or have a
fileno() method``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

__all__ = ["WorkWaiter"]

log = logging.getLogger("taskkit.redis")

# Buffered notifications drained after a wake-up, so a burst does not cause a burst of claims.
_DRAIN_LIMIT = 10_000
# How long ``WorkWaiter.close`` waits for interrupted waits to end (seconds).
_CLOSE_WAIT = 2.0


class WorkWaiter:
    """One subscription per (group channel, thread); thread-safe."""

    def __init__(self, client_for: Callable[[str], Any], confirm_timeout: float) -> None:
        self._client_for = client_for
        self._confirm_timeout = confirm_timeout
        self._lock = threading.Lock()
        self._left = threading.Condition(self._lock)  # notified when a wait ends
        self._subs: dict[tuple[str, int], Any] = {}
        self._reading: set[tuple[str, int]] = set()  # subscriptions a thread is reading
        self._closing = False

    def wait(self, channel: str, timeout: float, has_work: Callable[[], bool]) -> None:
        """Block until a message on ``channel`` or ``timeout`` seconds; never longer."""
        deadline = time.monotonic() + timeout
        key = (channel, threading.get_ident())
        with self._lock:
            if self._closing:
                return
            sub = self._subs.get(key)
        if sub is None:
            sub = self._subscribe(channel)
            with self._lock:
                self._prune()
                self._subs[key] = sub
            # Messages published before the subscription were not seen: look once.
            if has_work():
                return
        with self._lock:
            current: Any = self._subs.get(key)
            if self._closing or current is not sub:
                return
            self._reading.add(key)
        try:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            message = sub.get_message(timeout=remaining)
            if message is None:
                return
            if message.get("type") == "sunsubscribe":
                # The group's slot moved to another shard: subscribe again next time.
                self._drop(key)
                return
            for _ in range(_DRAIN_LIMIT):
                if sub.get_message(timeout=0.0) is None:
                    break
        except Exception:
            # A broken subscription may have missed messages: rebuild it on the next wait.
            self._leave(key)
            self._drop(key)
            raise
        finally:
            self._leave(key)

    def _leave(self, key: tuple[str, int]) -> None:
        with self._lock:
            if key in self._reading:
                self._reading.discard(key)
                self._left.notify_all()

    def _subscribe(self, channel: str) -> Any:
        pubsub = self._client_for(channel).pubsub()
        try:
            pubsub.ssubscribe(channel)
            deadline = time.monotonic() + self._confirm_timeout
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"no confirmation of SSUBSCRIBE {channel}")
                message = pubsub.get_message(timeout=remaining)
                if message is not None and message.get("type") == "ssubscribe":
                    return pubsub
        except BaseException:
            pubsub.close()
            raise

    def _drop(self, key: tuple[str, int]) -> None:
        with self._lock:
            sub = self._subs.pop(key, None)
        if sub is not None:
            _close_quietly(sub)

    def _prune(self) -> None:
        """Close the subscriptions of threads that ended (called with the lock held)."""
        alive = {t.ident for t in threading.enumerate()}
        for key in [k for k in self._subs if k[1] not in alive]:
            _close_quietly(self._subs.pop(key))

    def interrupt(self) -> None:
        """End the waits in progress soon: publish an empty wake-up on their channels.

        Every subscribed channel gets one, not only those being read right now: a claimer
        that is between its claim and its next wait finds the message in its socket and
        that wait ends at once.
        """
        with self._lock:
            channels = sorted({key[0] for key in self._subs} | {key[0] for key in self._reading})
        for channel in channels:
            try:
                self._client_for(channel).execute_command("SPUBLISH", channel, "")
            except Exception:
                log.debug("waking the waiters of %s failed", channel, exc_info=True)

    def close(self) -> None:
        """Interrupt the waits, let their threads leave, then close every subscription."""
        with self._lock:
            self._closing = True
            reading = bool(self._reading)
        if reading:
            self.interrupt()
        deadline = time.monotonic() + _CLOSE_WAIT
        with self._lock:
            while self._reading:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    log.debug("closing subscriptions %d thread(s) still read", len(self._reading))
                    break
                self._left.wait(remaining)
            subs = list(self._subs.values())
            self._subs.clear()
        for sub in subs:
            _close_quietly(sub)


def _close_quietly(sub: Any) -> None:
    try:
        sub.close()
    except Exception:
        log.debug("closing a wake-up subscription failed", exc_info=True)
