"""The fleet and queue figures of :class:`~taskkit_redis.RedisBackend`.

What each costs (the contract asks every backend to say):

- ``group_stats``: one script on the group's slot, five sorted-set reads (``ZCOUNT`` /
  ``ZCARD`` / the first queue entry), O(log n) each: no record is read.
- ``finished_counts``: the finishing script itself counts, one ``HINCRBY`` on the hash of
  the current 10-second bucket (``{P:G}:fc:<n>``, expiring after 62 minutes) per finished
  task, in the same atomic step as the outcome; the read is one script over the window's
  buckets (at most 361 small hashes for an hour).
- ``list_groups``: ``SMEMBERS`` of the prefix's group set (every group ever written to).
- the worker registry: a sorted set of worker ids by expiry and a small hash per worker,
  both under the ``{prefix}`` hash tag (one slot), each call one script; a worker's hash
  carries a native TTL, so a dead worker's entry vanishes by itself.

Dead letters are counted by the age of their entry (``dead_letter_max_age``): a dead letter
whose own shorter ``ttl`` expired its record counts until a listing or a bury drops it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from taskkit import FinishedCounts, GroupStats, WorkerInfo
from taskkit.backend import checked_heartbeat, checked_registration, checked_window

from ._errors import text, translate_errors

if TYPE_CHECKING:
    from ._config import RedisConfig
    from ._keys import KeyLayout
    from ._scripts import Scripts

__all__ = ["RedisStatsMixin"]



def _worker_from(worker_id: str, expires: bytes, flat: list[bytes]) -> WorkerInfo:
    fields = {text(flat[i]): text(flat[i + 1]) for i in range(0, len(flat), 2)}
    threads = json.loads(fields.get("threads", "{}"))
    return WorkerInfo(
        id=worker_id,
        host=fields.get("host", ""),
        pid=int(fields.get("pid", 0)),
        threads={str(g): int(n) for g, n in threads.items()},
        started=float(fields.get("started", 0.0)),
        heartbeat=float(fields.get("heartbeat", 0.0)),
        expires=float(expires),
        tasks_held=int(fields.get("held", 0)),
    )


class RedisStatsMixin:
    """Mixed into :class:`~taskkit_redis.RedisBackend` before :class:`taskkit.Backend`."""

    supports_fleet_stats: ClassVar[bool] = True

    if TYPE_CHECKING:  # provided by RedisBackend
        keys: KeyLayout
        config: RedisConfig
        _client: Any
        _scripts: Scripts

        def _group_call(self, script: Any, group: str, *args: Any) -> Any: ...

    @translate_errors
    def list_groups(self) -> list[str]:
        return sorted(text(g) for g in self._client.smembers(self.keys.groups))

    @translate_errors
    def group_stats(self, group: str) -> GroupStats:
        now, due, queued, running, dead, oldest = self._group_call(
            self._scripts.group_stats, group, repr(float(self.config.dead_letter_max_age))
        )
        now = float(now)
        due = int(due)
        age = now - float(oldest) if oldest else None
        return GroupStats(group, due, int(queued) - due, int(running), int(dead), age, now)

    @translate_errors
    def finished_counts(self, group: str, window: float = 300.0) -> FinishedCounts:
        window = checked_window(window)
        now, since, flat = self._group_call(self._scripts.finished_counts, group, repr(window))
        counts = {text(flat[i]): int(flat[i + 1]) for i in range(0, len(flat), 2)}
        return FinishedCounts.of(group, float(since), float(now), counts)

    def _registry_keys(self, worker_id: str) -> list[str]:
        return [self.keys.workers, self.keys.worker_info(worker_id)]

    @translate_errors
    def register_worker(
        self,
        worker_id: str,
        host: str,
        pid: int,
        threads: Mapping[str, int],
        expires_after: float,
    ) -> None:
        info = checked_registration(worker_id, host, pid, threads, expires_after)
        self._scripts.worker_register(
            keys=self._registry_keys(worker_id),
            args=[
                worker_id,
                info.host,
                info.pid,
                json.dumps(dict(info.threads), separators=(",", ":")),
                repr(float(expires_after)),
            ],
        )

    @translate_errors
    def heartbeat_worker(self, worker_id: str, tasks_held: int, expires_after: float) -> bool:
        after = checked_heartbeat(worker_id, tasks_held, expires_after)
        renewed = self._scripts.worker_heartbeat(
            keys=self._registry_keys(worker_id), args=[worker_id, tasks_held, repr(after)]
        )
        return bool(int(renewed))

    @translate_errors
    def deregister_worker(self, worker_id: str) -> None:
        self._scripts.worker_deregister(keys=self._registry_keys(worker_id), args=[worker_id])

    @translate_errors
    def list_workers(self) -> list[WorkerInfo]:
        _, live = self._scripts.worker_list(
            keys=[self.keys.workers], args=[self.keys.worker_info_prefix]
        )
        workers = [_worker_from(text(raw_id), expires, flat) for raw_id, expires, flat in live]
        return sorted(workers, key=lambda w: (w.started, w.id))
