"""The key layout: every name taskkit writes in Redis, in one place.

Per-group keys share the hash tag ``{prefix:group}``, so every per-group script runs in one
cluster slot. The few keys that are not per group live under ``{prefix}`` (control events,
schedule mark mirror, worker index, group list) or, for the id -> group index, in a slot
computed from the task id, which spreads the index over the cluster.

==============================  ======  =====================================================
key                             type    content
==============================  ======  =====================================================
``{P:G}:t:<id>``                hash    task record (fields below); TTL once finished
``{P:G}:q``                     zset    queued tasks: member ``<created>|<id>``, score due
``{P:G}:l``                     zset    running tasks: member id, score lease expiry
``{P:G}:w:<worker>``            set     ids leased by one worker (``release_worker``)
``{P:G}:dead``                  zset    dead letters: member id, score time of death
``{P:G}:o:<id>``                list    "finished" token for result waiters; TTL <= 60 s
``{P:G}:o:<id>``                channel "finished" message for asyncio result waiters (SPUBLISH)
``{P:G}:marks``                 hash    schedule marks: ``["sched","key"]`` -> point
``{P:G}:seq``                   string  fencing token counter
``{P:G}:fc:<n>``                hash    finished counts of 10 s bucket n: state -> count; TTL 62 min
``{P:G}:wake``                  channel work notifications (PUBLISH / sharded SPUBLISH)
``P:i:<id>``                    string  id -> group index; TTL once finished
``{P}:ctl`` / ``{P}:ctl:seq``   zset    control events (last 100) / last sequence number
``{P}:marks``                   hash    mirror of the schedule marks for ``get_schedule_mark``
``{P}:wk:<worker>``             set     groups a worker claimed from; TTL 1 day
``{P}:groups``                  set     every group ever written to (dead-letter listing)
``{P}:workers``                 zset    live workers' registry: member id, score entry expiry
``{P}:wi:<worker>``             hash    a live worker's entry (host, pid, threads...); TTL
``{P}:epoch``                   string  data-set marker: its loss means Redis lost its data
==============================  ======  =====================================================
"""

from __future__ import annotations

import json

from taskkit.errors import ConfigurationError

__all__ = ["KeyLayout", "validate_prefix"]

_FORBIDDEN_IN_PREFIX = frozenset("{}*?[]\\ \t\r\n")


def validate_prefix(prefix: str) -> str:
    """The key prefix must be non-empty and must not build hash tags or glob patterns."""
    if not isinstance(prefix, str) or not prefix:
        raise ConfigurationError("the Redis key prefix must be a non-empty string")
    if _FORBIDDEN_IN_PREFIX.intersection(prefix) or not prefix.isprintable():
        raise ConfigurationError(
            f"the Redis key prefix {prefix!r} must be printable, without whitespace "
            "or any of {}*?[]\\"
        )
    return prefix


class KeyLayout:
    """Builds key names for one prefix."""

    def __init__(self, prefix: str) -> None:
        self.prefix = validate_prefix(prefix)
        tag = "{" + prefix + "}"
        self.control = f"{tag}:ctl"
        self.control_seq = f"{tag}:ctl:seq"
        self.marks_mirror = f"{tag}:marks"
        self.groups = f"{tag}:groups"
        self.workers = f"{tag}:workers"
        self.worker_info_prefix = f"{tag}:wi:"
        self.epoch = f"{tag}:epoch"
        self.index_prefix = f"{prefix}:i:"

    def base(self, group: str) -> str:
        """The hash-tagged stem of every key of ``group``."""
        return "{" + self.prefix + ":" + group + "}"

    def queue(self, group: str) -> str:
        return self.base(group) + ":q"

    def record(self, group: str, task_id: str) -> str:
        return f"{self.base(group)}:t:{task_id}"

    def notify(self, group: str, task_id: str) -> str:
        return f"{self.base(group)}:o:{task_id}"

    def wake_channel(self, group: str) -> str:
        return self.base(group) + ":wake"

    def index(self, task_id: str) -> str:
        return self.index_prefix + task_id

    def worker_info(self, worker_id: str) -> str:
        """The registry entry of one live worker (``list_workers``)."""
        return self.worker_info_prefix + worker_id

    def worker_groups(self, worker_id: str) -> str:
        return "{" + self.prefix + "}:wk:" + worker_id

    @staticmethod
    def mark_field(scheduler: str, key: str) -> str:
        """An unambiguous field name for (scheduler, key), whatever characters they hold."""
        return json.dumps([scheduler, key], separators=(",", ":"))

    def pattern(self) -> list[str]:
        """SCAN patterns matching every key of this prefix (tests and tools only)."""
        return [f"{{{self.prefix}:*", f"{{{self.prefix}}}*", f"{self.prefix}:i:*"]
