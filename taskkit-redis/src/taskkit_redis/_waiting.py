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


class WorkWaiter:
    """One subscription per (group channel, thread); thread-safe."""

    def __init__(self, client_for: Callable[[str], Any], confirm_timeout: float) -> None:
        self._client_for = client_for
        self._confirm_timeout = confirm_timeout
        self._lock = threading.Lock()
        self._subs: dict[tuple[str, int], Any] = {}

    def wait(self, channel: str, timeout: float, has_work: Callable[[], bool]) -> None:
        """Block until a message on ``channel`` or ``timeout`` seconds; never longer."""
        deadline = time.monotonic() + timeout
        key = (channel, threading.get_ident())
        with self._lock:
            sub = self._subs.get(key)
        if sub is None:
            sub = self._subscribe(channel)
            with self._lock:
                self._prune()
                self._subs[key] = sub
            # Messages published before the subscription were not seen: look once.
            if has_work():
                return
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
            self._drop(key)
            raise

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

    def close(self) -> None:
        with self._lock:
            subs = list(self._subs.values())
            self._subs.clear()
        for sub in subs:
            _close_quietly(sub)


def _close_quietly(sub: Any) -> None:
    try:
        sub.close()
    except Exception:
        log.debug("closing a wake-up subscription failed", exc_info=True)
