"""``RedisBackend``: the taskkit backend contract on Redis (single node or Redis Cluster).

Every state change is one Lua script (atomic, one round trip, loaded once and called by
SHA); time decisions use Redis ``TIME``; keys carry a per-group hash tag so each script runs
in one cluster slot. The key layout is documented in :mod:`taskkit_redis._keys`.

Cluster mode differs in one respect: the id -> group index lives in a slot of its own, so
the client maintains it with a second command next to the script (single-node mode does it
inside the script). A crash between the two can leave an index entry without a TTL; it can
never lose or duplicate a task.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from typing import Any, ClassVar

from taskkit import (
    Backend,
    CancelResult,
    Claim,
    ClaimBatch,
    ControlEvent,
    ControlKind,
    LeaseStatus,
    Outcome,
    OutcomeWrite,
    QueueStats,
    Task,
    TaskState,
)
from taskkit.backend import OutcomeChange, outcome_changes

from ._aio import AsyncRedisMixin
from ._codec import (
    MalformedRecord,
    claim_from_fields,
    claim_from_values,
    decode_fields,
    outcome_from_fields,
    task_args,
)
from ._config import RedisConfig, config_from_client, config_from_url
from ._errors import text, translate_errors
from ._keys import KeyLayout
from ._scripts import Scripts
from ._stats import RedisStatsMixin
from ._waiting import WorkWaiter

__all__ = ["RedisBackend"]

log = logging.getLogger("taskkit.redis")


#: Control events kept (older ones are trimmed by the publishing script).
CONTROL_EVENTS_KEPT = 100
#: How long a worker's group index lives without a refresh, and how often it is refreshed.
_WORKER_INDEX_TTL = 24 * 3600
_WORKER_INDEX_REFRESH = 3600.0
#: id -> group entries remembered by one backend instance.
_GROUP_CACHE_SIZE = 10_000
#: Redis times blocked commands out on its server cron (every 100 ms at the default hz 10),
#: so a blocking call asks for this much less than the time left and never overruns it.
_SERVER_TIMER_SLACK = 0.1

#: The script's name for the state each requeueing action leaves a task in.
_REQUEUED_AS = {"retry": "queued", "defer": "deferred"}


def _finish_args(change: OutcomeChange) -> tuple[str, str, bytes | str]:
    """The (state, field, value) the finish script reads for ``change``."""
    if change.due is not None:
        return _REQUEUED_AS[change.action], repr(change.due), change.error or ""
    if change.result is not None:
        return change.state.value, "r", change.result
    return change.state.value, "e", change.error or ""


_LEASE_STATUS = {0: LeaseStatus.LOST, 1: LeaseStatus.OK, 2: LeaseStatus.CANCEL_REQUESTED}


class RedisBackend(RedisStatsMixin, AsyncRedisMixin, Backend):
    """Tasks in Redis.

    :param url: ``redis://[user:password@]host:port/db``, ``rediss://...`` (TLS, certificate
        and host name checked) or ``unix:///path/to/socket?db=0``. Query parameters
        ``prefix`` and ``cluster=true`` are understood.
    :param options: ``prefix`` (default ``"taskkit"``), ``cluster``, ``socket_timeout`` and
        ``socket_connect_timeout`` (default 5 s), ``retries`` (reconnect attempts per command,
        default 2), ``dead_letter_limit`` (per group, default 10,000),
        ``dead_letter_max_age`` (seconds, default 7 days), and connection settings of
        ``redis.Redis`` (``username``, ``password``, ``db``, ``ssl_ca_certs``,
        ``ssl_certfile``, ``ssl_keyfile``, ``client_name``, ...).
    """

    name: ClassVar[str] = "redis"
    supports_processes: ClassVar[bool] = True
    supports_notifications: ClassVar[bool] = True

    def __init__(self, url: str = "redis://127.0.0.1:6379/0", **options: Any) -> None:
        self._setup(config_from_url(url, **options))

    @classmethod
    def from_client(cls, client: Any, **options: Any) -> RedisBackend:
        """A backend using the connection settings of a ``redis.Redis`` or ``RedisCluster``."""
        return cls.from_config(config_from_client(client, **options))

    @classmethod
    def from_config(cls, config: RedisConfig) -> RedisBackend:
        backend = cls.__new__(cls)
        backend._setup(config)
        return backend

    def _setup(self, config: RedisConfig) -> None:
        self.config = config
        self.keys = KeyLayout(config.prefix)
        self._client: Any = config.build_client()
        self._scripts = Scripts(self._client)
        self._cluster = config.cluster
        # Single node: scripts maintain the id index themselves (one atomic step).
        self._index_arg = "" if self._cluster else self.keys.index_prefix
        self._lock = threading.Lock()
        self._known_groups: set[str] = set()
        self._worker_index_seen: dict[tuple[str, str], float] = {}
        self._group_cache: OrderedDict[str, str] = OrderedDict()
        self._epoch: str | None = None
        # A blocking command must answer before the socket times out, even when Redis' timer
        # fires it up to 100 ms late.
        timeout = config.socket_timeout
        self._block_cap = timeout - 0.5 if timeout >= 1.0 else timeout * 0.4
        self._waiter = WorkWaiter(self._client_for_channel, config.socket_timeout)

    def __reduce__(self) -> tuple[Any, ...]:
        # Pickles as its configuration: a clone in another process builds its own clients.
        return (RedisBackend.from_config, (self.config,))

    def __repr__(self) -> str:
        return f"<RedisBackend {self.config.describe()} prefix={self.config.prefix!r}>"

    @property
    def client(self) -> Any:
        """The underlying redis-py client (``redis.Redis`` or ``RedisCluster``)."""
        return self._client

    # ------------------------------------------------------------------ helpers

    def _group_call(self, script: Any, group: str, *args: Any) -> Any:
        base = self.keys.base(group)
        return script(keys=[base + ":q"], args=[base, self._index_arg, "SPUBLISH", group, *args])

    def _client_for_channel(self, channel: str) -> Any:
        if not self._cluster:
            return self._client
        return self._client.get_redis_connection(self._client.get_node_from_key(channel))

    def _remember_group(self, task_ids: Iterable[str], group: str) -> None:
        cache = self._group_cache
        with self._lock:
            for task_id in task_ids:
                cache[task_id] = group
                cache.move_to_end(task_id)
            while len(cache) > _GROUP_CACHE_SIZE:
                cache.popitem(last=False)

    def _forget_group(self, task_id: str) -> None:
        with self._lock:
            self._group_cache.pop(task_id, None)

    def _group_of(self, task_id: str, *, cached: bool = True) -> str | None:
        """The group of ``task_id``: from this instance's cache, else from the id index."""
        if cached:
            with self._lock:
                group = self._group_cache.get(task_id)
            if group is not None:
                return group
        raw = self._client.get(self.keys.index(task_id))
        if raw is None:
            return None
        group = text(raw)
        self._remember_group([task_id], group)
        return group

    def _note_groups(self, groups: Iterable[str]) -> None:
        """Add groups to the prefix's group list (read by ``list_dead_letters(None)``)."""
        new = set(groups) - self._known_groups
        if new:
            self._client.sadd(self.keys.groups, *sorted(new))
            self._known_groups |= new

    def _note_worker(self, worker_id: str, groups: Iterable[str]) -> None:
        """Record which groups a worker claims from, for ``release_worker``; rate-limited."""
        now = time.monotonic()
        stale = [
            g
            for g in set(groups)
            if now - self._worker_index_seen.get((worker_id, g), -_WORKER_INDEX_REFRESH * 2)
            >= _WORKER_INDEX_REFRESH
        ]
        if not stale:
            return
        key = self.keys.worker_groups(worker_id)
        pipe = self._client.pipeline(transaction=False)
        pipe.sadd(key, *stale)
        pipe.expire(key, _WORKER_INDEX_TTL)
        pipe.execute()
        if len(self._worker_index_seen) > 10_000:
            self._worker_index_seen.clear()
        for g in stale:
            self._worker_index_seen[(worker_id, g)] = now

    def _expire_index(self, items: Iterable[tuple[str, float]]) -> None:
        """Cluster mode: give finished tasks' index entries their record's TTL."""
        items = list(items)
        if not self._cluster or not items:
            return
        pipe = self._client.pipeline(transaction=False)
        for task_id, ttl in items:
            pipe.pexpire(self.keys.index(task_id), max(1, int(ttl * 1000)))
        pipe.execute()

    def _dead_letter_args(self) -> tuple[int, str]:
        """The dead-letter bounds (count cap, max age) of the scripts that bury tasks."""
        return self.config.dead_letter_limit, repr(float(self.config.dead_letter_max_age))

    @staticmethod
    def _by_group(claims: Sequence[Claim]) -> dict[str, list[int]]:
        groups: dict[str, list[int]] = {}
        for i, claim in enumerate(claims):
            groups.setdefault(claim.task.group, []).append(i)
        return groups

    # ------------------------------------------------------------------ clock

    @translate_errors
    def now(self) -> float:
        seconds, micros = self._client.time()
        return int(seconds) + int(micros) / 1_000_000

    # ------------------------------------------------------------------ producers

    @translate_errors
    def put(self, tasks: Sequence[Task]) -> list[bool]:
        if not tasks:
            return []
        stored = [False] * len(tasks)
        by_group: dict[str, list[int]] = {}
        for i, task in enumerate(tasks):
            by_group.setdefault(task.group, []).append(i)
        self._note_groups(by_group)
        if self._cluster:
            by_group = self._claim_index(tasks, by_group)
        for group, indexes in by_group.items():
            if not indexes:
                continue
            args: list[Any] = []
            for i in indexes:
                args.extend(task_args(tasks[i]))
            answers = text(self._group_call(self._scripts.put, group, *args))
            for i, answer in zip(indexes, answers):
                stored[i] = answer == "1"
            self._remember_group([tasks[i].id for i in indexes], group)
        return stored

    def _claim_index(
        self, tasks: Sequence[Task], by_group: dict[str, list[int]]
    ) -> dict[str, list[int]]:
        """Cluster mode: write index entries (SET NX GET); keep tasks whose id is free."""
        pipe = self._client.pipeline(transaction=False)
        order = [i for indexes in by_group.values() for i in indexes]
        for i in order:
            pipe.set(self.keys.index(tasks[i].id), tasks[i].group, nx=True, get=True)
        previous = dict(zip(order, pipe.execute()))
        return {
            group: [i for i in indexes if previous[i] in (None, group.encode())]
            for group, indexes in by_group.items()
        }

    @translate_errors
    def put_scheduled(self, task: Task, scheduler: str, key: str, point: float) -> bool:
        group = task.group
        field = self.keys.mark_field(scheduler, key)
        self._note_groups([group])
        created_index = False
        if self._cluster:
            index = self.keys.index(task.id)
            previous = self._client.set(index, group, nx=True, get=True)
            if previous is not None and text(previous) != group:
                return False
            created_index = previous is None
        mirror = "" if self._cluster else self.keys.marks_mirror
        fired, exists = self._group_call(
            self._scripts.put_scheduled, group, field, repr(float(point)), mirror, *task_args(task)
        )
        if self._cluster:
            if fired:
                self._scripts.mark_mirror(
                    keys=[self.keys.marks_mirror], args=[field, repr(float(point))]
                )
            elif created_index and not exists:
                # Refused by the mark: the index entry written above points at nothing.
                self._client.delete(self.keys.index(task.id))
        if fired:
            self._remember_group([task.id], group)
        return bool(fired)

    @translate_errors
    def get_schedule_mark(self, scheduler: str, key: str) -> float | None:
        raw = self._client.hget(self.keys.marks_mirror, self.keys.mark_field(scheduler, key))
        return None if raw is None else float(raw)

    # ------------------------------------------------------------------ workers

    @translate_errors
    def claim(
        self,
        group: str,
        worker_id: str,
        limit: int,
        lease_seconds: float,
        max_deliveries: int,
    ) -> ClaimBatch:
        self._note_worker(worker_id, [group])
        next_due, claimed, buried = self._group_call(
            self._scripts.claim,
            group,
            worker_id,
            max(0, int(limit)),
            repr(float(lease_seconds)),
            int(max_deliveries),
            *self._dead_letter_args(),
        )
        claims: list[Claim] = []
        for values in claimed:
            task_id, fields = claim_from_values(group, values)
            try:
                claims.append(claim_from_fields(group, task_id, fields))
            except MalformedRecord as exc:
                self._fail_malformed(group, task_id, fields, exc)
        dead = [
            outcome_from_fields(group, text(raw_id), decode_fields(flat), strict=False)
            for raw_id, flat in buried
        ]
        self._expire_index(
            (o.task.id, min(o.task.ttl, self.config.dead_letter_max_age)) for o in dead
        )
        return ClaimBatch(claims, float(next_due) if next_due else None, dead)

    def _fail_malformed(
        self, group: str, task_id: str, fields: dict[str, bytes], exc: MalformedRecord
    ) -> None:
        """A damaged record is failed at once, with the reason, instead of crashing claims."""
        log.error(
            "task %r of group %r has a malformed record (%s): failing it", task_id, group, exc
        )
        token = fields.get("tk", b"").decode("utf-8", "replace")
        self._group_call(
            self._scripts.finish,
            group,
            *self._dead_letter_args(),
            task_id,
            token,
            "failed",
            "e",
            f"malformed record: {exc}",
        )

    @translate_errors
    def renew(self, claims: Sequence[Claim], lease_seconds: float) -> list[LeaseStatus]:
        statuses = [LeaseStatus.LOST] * len(claims)
        for group, indexes in self._by_group(claims).items():
            args: list[Any] = [repr(float(lease_seconds))]
            for i in indexes:
                args += [claims[i].task.id, claims[i].token]
            answers = self._group_call(self._scripts.renew, group, *args)
            for i, answer in zip(indexes, answers):
                statuses[i] = _LEASE_STATUS[int(answer)]
        workers: dict[str, set[str]] = {}
        for claim in claims:
            workers.setdefault(claim.worker_id, set()).add(claim.task.group)
        for worker_id, groups in workers.items():
            self._note_worker(worker_id, groups)
        return statuses

    @translate_errors
    def record_outcomes(self, writes: Sequence[OutcomeWrite]) -> list[bool]:
        # One finish script call per group (a worker's batch is almost always one group).
        applied = [False] * len(writes)
        by_group: dict[str, list[OutcomeChange]] = {}
        for change in outcome_changes(writes):
            by_group.setdefault(change.claim.task.group, []).append(change)
        expiring: list[tuple[str, float]] = []
        dead_age = self.config.dead_letter_max_age
        for group, changes in by_group.items():
            args: list[Any] = list(self._dead_letter_args())
            for change in changes:
                args += [change.claim.task.id, change.claim.token, *_finish_args(change)]
            answers = text(self._group_call(self._scripts.finish, group, *args))
            for change, answer in zip(changes, answers):
                applied[change.index] = answer == "1"
                if applied[change.index] and change.due is None:
                    ttl = change.claim.task.ttl
                    dead = change.state is TaskState.DEAD
                    expiring.append((change.claim.task.id, min(ttl, dead_age) if dead else ttl))
        self._expire_index(expiring)
        return applied

    @translate_errors
    def release_worker(self, worker_id: str) -> int:
        # The worker's group index is kept (it expires on its own): the same worker id may
        # be released again later.
        groups = self._client.smembers(self.keys.worker_groups(worker_id))
        return sum(
            int(self._group_call(self._scripts.release_worker, text(g), worker_id))
            for g in sorted(groups)
        )

    @translate_errors
    def wait_for_work(self, group: str, timeout: float) -> None:
        if timeout <= 0:
            return
        self._waiter.wait(
            self.keys.wake_channel(group),
            timeout,
            lambda: bool(self._group_call(self._scripts.group_info, group)[2]),
        )

    # ------------------------------------------------------------------ results

    @translate_errors
    def get_outcome(self, task_id: str) -> Outcome | None:
        return self._read_outcome(task_id)

    def _read_outcome(self, task_id: str) -> Outcome | None:
        for cached in (True, False):
            group = self._group_of(task_id, cached=cached)
            if group is None:
                return None
            raw = self._client.hgetall(self.keys.record(group, task_id))
            if raw:
                return outcome_from_fields(group, task_id, decode_fields(raw), strict=False)
            if not cached:
                break
            # A stale cache entry (the record expired, the id may live in another group now).
            self._forget_group(task_id)
        return None

    @translate_errors
    def wait_for_outcome(self, task_id: str, timeout: float) -> Outcome | None:
        deadline = time.monotonic() + max(0.0, timeout)
        outcome = self._read_outcome(task_id)
        if outcome is None or outcome.state.finished:
            return outcome
        notify = self.keys.notify(outcome.task.group, task_id)
        idle_wakes = 0
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return outcome
            woke = None
            if remaining > _SERVER_TIMER_SLACK + 0.01:
                # Rotating the list onto itself reads the "finished" token without taking
                # it, so every waiter of the task wakes.
                block = min(remaining - _SERVER_TIMER_SLACK, self._block_cap)
                woke, outcome = self._block_then_read(notify, block, outcome)
            else:
                time.sleep(remaining)  # the last moments: one more look at the deadline
                outcome = self._read_outcome(task_id)
            if outcome is None or outcome.state.finished:
                return outcome
            if woke is not None:
                # A token with an unfinished task (a requeued dead letter's old token):
                # back off rather than spin on it.
                idle_wakes += 1
                if idle_wakes > 1:
                    time.sleep(min(0.05 * idle_wakes, 0.5, max(0.0, deadline - time.monotonic())))

    def _block_then_read(
        self, notify: str, block: float, seen: Outcome
    ) -> tuple[Any, Outcome | None]:
        """Wait on the notification list, then read the record: one round trip after the wake.

        Redis runs a pipeline's commands in order, and a blocked command holds back the ones
        behind it, so the read runs the moment the wait ends. (Cluster mode keeps two calls.)
        """
        task = seen.task
        if self._cluster:
            woke = self._client.blmove(notify, notify, block, "RIGHT", "LEFT")
            return woke, self._read_outcome(task.id)
        pipe = self._client.pipeline(transaction=False)
        pipe.blmove(notify, notify, block, "RIGHT", "LEFT")
        pipe.hgetall(self.keys.record(task.group, task.id))
        woke, raw = pipe.execute()
        if not raw:  # expired or removed meanwhile: the id may live on elsewhere
            return woke, self._read_outcome(task.id)
        return woke, outcome_from_fields(task.group, task.id, decode_fields(raw), strict=False)

    # ------------------------------------------------------------------ control

    @translate_errors
    def cancel(self, task_id: str, reason: str = "cancelled") -> CancelResult:
        group = self._group_of(task_id)
        if group is None:
            return CancelResult.NOT_FOUND
        answer, ttl_ms = self._group_call(self._scripts.cancel, group, task_id, reason)
        if text(answer) == "not_found" and self._group_of(task_id, cached=False) not in (
            None,
            group,
        ):
            return self.cancel(task_id, reason)  # the cached group was stale
        result = CancelResult(text(answer))
        if result is CancelResult.CANCELLED:
            self._expire_index([(task_id, int(ttl_ms) / 1000)])
        return result

    @translate_errors
    def publish_control(self, kind: ControlKind, groups: Sequence[str] | None) -> ControlEvent:
        chosen = None if groups is None else tuple(groups)
        seq, created = self._scripts.publish_control(
            keys=[self.keys.control, self.keys.control_seq],
            args=[kind, json.dumps(chosen), CONTROL_EVENTS_KEPT],
        )
        return ControlEvent(int(seq), kind, chosen, float(created))

    @translate_errors
    def read_control(self, after_seq: int) -> list[ControlEvent]:
        epoch, raw_events = self._scripts.read_control(
            keys=[self.keys.control, self.keys.epoch], args=[int(after_seq), uuid.uuid4().hex]
        )
        self._check_epoch(text(epoch))
        events = []
        for raw in raw_events:
            seq, created, kind, groups = text(raw).split("|", 3)
            chosen = json.loads(groups)
            events.append(
                ControlEvent(
                    int(seq),
                    kind,  # type: ignore[arg-type]
                    None if chosen is None else tuple(chosen),
                    float(created),
                )
            )
        return events

    def _check_epoch(self, epoch: str) -> None:
        with self._lock:
            previous, self._epoch = self._epoch, epoch
        if previous is not None and previous != epoch:
            log.critical(
                "Redis at %s lost taskkit's data (prefix %r): it restarted without "
                "persistence, was flushed, or evicted keys. Queued tasks, results and "
                "schedule marks written before are gone; see docs/redis.md",
                self.config.describe(),
                self.config.prefix,
            )

    # ------------------------------------------------------------------ dead letters

    @translate_errors
    def list_dead_letters(self, group: str | None = None, limit: int = 100) -> list[Outcome]:
        if limit <= 0:
            return []
        if group is None:
            groups = sorted(text(g) for g in self._client.smembers(self.keys.groups))
        else:
            groups = [group]
        found: list[Outcome] = []
        for g in groups:
            for raw_id, flat in self._group_call(self._scripts.dead_letters, g, int(limit)):
                found.append(
                    outcome_from_fields(g, text(raw_id), decode_fields(flat), strict=False)
                )
        found.sort(key=lambda o: o.finished or 0.0, reverse=True)
        return found[:limit]

    @translate_errors
    def requeue_dead_letter(self, task_id: str) -> bool:
        for cached in (True, False):
            group = self._group_of(task_id, cached=cached)
            if group is None:
                return False
            if self._group_call(self._scripts.requeue_dead, group, task_id):
                if self._cluster:
                    self._client.persist(self.keys.index(task_id))
                return True
        return False

    # ------------------------------------------------------------------ maintenance

    @translate_errors
    def stats(self, group: str) -> QueueStats:
        queued, running, _ = self._group_call(self._scripts.group_info, group)
        return QueueStats(queued=int(queued), running=int(running))

    def purge(self, finished_before: float) -> int:
        # Finished records carry native TTLs (task.ttl); nothing to sweep.
        return 0

    @translate_errors
    def check(self) -> list[str]:
        from ._checks import server_warnings  # noqa: PLC0415

        return server_warnings(self._client, self._cluster, self.config.describe())

    def interrupt_waits(self) -> None:
        self._waiter.interrupt()

    def close(self) -> None:
        self._close_async()
        self._waiter.close()
        try:
            self._client.close()
        except Exception:
            log.debug("closing the Redis client failed", exc_info=True)

    def clone(self) -> RedisBackend:
        return RedisBackend.from_config(self.config)

    # ------------------------------------------------------------------ tools

    def delete_all_keys(self, *, i_know_this_deletes_everything: bool = False) -> int:
        """Delete every key of this prefix (SCAN + DEL): for tests and tools, never production.

        :return: how many keys were deleted.
        """
        if not i_know_this_deletes_everything:
            raise ValueError("pass i_know_this_deletes_everything=True to delete all task data")
        deleted = 0
        for pattern in self.keys.pattern():
            batch: list[bytes] = []
            for key in self._scan(pattern):
                batch.append(key)
                if len(batch) >= 500:
                    deleted += self._delete(batch)
                    batch = []
            deleted += self._delete(batch)
        return deleted

    def _delete(self, keys: list[bytes]) -> int:
        # One DEL per key in a pipeline: the keys may live in different cluster slots.
        pipe = self._client.pipeline(transaction=False)
        for key in keys:
            pipe.delete(key)
        return sum(int(n) for n in pipe.execute()) if keys else 0

    def _scan(self, pattern: str) -> Iterable[bytes]:
        if self._cluster:
            keys: Iterable[bytes] = self._client.scan_iter(
                match=pattern, count=1000, target_nodes="primaries"
            )
        else:
            keys = self._client.scan_iter(match=pattern, count=1000)
        return keys
