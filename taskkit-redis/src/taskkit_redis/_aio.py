"""The asyncio primitives of :class:`~taskkit_redis.RedisBackend` (``aput``,
``aget_outcome``, ``await_outcome``, ``aclose``), on ``redis.asyncio``.

They run the same Lua scripts on the same keys as their blocking twins, so a task put from a
coroutine is the task a worker claims, and they share the backend's id -> group cache. Each
event loop gets its own asyncio client and pub/sub listener (:class:`_LoopClients`), built on
first use and closed when the loop ends or the backend closes; the backend still pickles as
its configuration. Waits are multiplexed: see :mod:`taskkit_redis._aio_listener`.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, ParamSpec, TypeVar

import redis.exceptions
from taskkit import Outcome, Task
from taskkit.aiotools import PerLoop

from ._aio_listener import OutcomeListener
from ._codec import decode_fields, outcome_from_fields, task_args
from ._config import RedisConfig
from ._errors import text, translate_errors_async
from ._scripts import Scripts

if TYPE_CHECKING:
    from collections import OrderedDict

    from ._keys import KeyLayout

__all__ = ["AsyncRedisMixin"]

T = TypeVar("T")
P = ParamSpec("P")
S = TypeVar("S", bound="AsyncRedisMixin")

#: Commands in flight at once per event loop: redis-py's asyncio client opens a connection
#: per concurrent command (and refuses more than its pool's size), so 500 woken waiters
#: queue here for a few connections instead.
MAX_IN_FLIGHT = 32
#: A waiter looks at its task at least this often even without a notification (seconds):
#: workers of a taskkit-redis release before 1.0 finish tasks without publishing.
RECHECK_INTERVAL = 30.0

_per_loop_lock = threading.Lock()


class _LoopClients:
    """One event loop's asyncio client, its registered scripts and its pub/sub listener."""

    def __init__(self, config: RedisConfig) -> None:
        self.client: Any = config.build_async_client()
        self.scripts = Scripts(self.client)
        self.listener = OutcomeListener(config, self.client)
        self.slots = asyncio.Semaphore(MAX_IN_FLIGHT)

    async def aclose(self) -> None:
        await self.listener.aclose()
        # redis-py >= 5.0.1 names it aclose; 5.0.0 has close.
        close = getattr(self.client, "aclose", None) or self.client.close
        await close()


class AsyncRedisMixin:
    """The asyncio primitives; :class:`RedisBackend` lists this class before ``Backend``."""

    if TYPE_CHECKING:  # set by RedisBackend._setup, defined in RedisBackend
        config: RedisConfig
        keys: KeyLayout
        _cluster: bool
        _lock: threading.Lock
        _known_groups: set[str]
        _group_cache: OrderedDict[str, str]

        def _group_call(self, script: Any, group: str, *args: Any) -> Any: ...
        def _remember_group(self, task_ids: Iterable[str], group: str) -> None: ...
        def _forget_group(self, task_id: str) -> None: ...
        def close(self) -> None: ...

    #: Per event loop: the asyncio clients, built on first use (absent until then).
    _aio_loops: ClassVar[PerLoop[_LoopClients] | None] = None

    def _loop_clients(self) -> _LoopClients:
        loops = self.__dict__.get("_aio_loops")
        if loops is None:
            with _per_loop_lock:
                loops = self.__dict__.get("_aio_loops")
                if loops is None:
                    loops = PerLoop(lambda: _LoopClients(self.config), _LoopClients.aclose)
                    self.__dict__["_aio_loops"] = loops
        clients: _LoopClients = loops.get()
        return clients

    def _close_async(self) -> None:
        """Close every loop's asyncio clients (``close`` calls it, from any thread)."""
        loops = self.__dict__.get("_aio_loops")
        if loops is not None:
            loops.close_all()

    @property
    def async_listener(self) -> OutcomeListener | None:
        """The running loop's pub/sub listener, if this loop used one (for tests and tools)."""
        loops = self.__dict__.get("_aio_loops")
        clients = None if loops is None else loops.current()
        return None if clients is None else clients.listener

    # ------------------------------------------------------------------ producers

    @translate_errors_async
    async def aput(self, tasks: Sequence[Task]) -> list[bool]:
        if not tasks:
            return []
        clients = self._loop_clients()
        async with clients.slots:
            return await self._aput(clients, tasks)

    async def _aput(self, clients: _LoopClients, tasks: Sequence[Task]) -> list[bool]:
        stored = [False] * len(tasks)
        by_group: dict[str, list[int]] = {}
        for i, task in enumerate(tasks):
            by_group.setdefault(task.group, []).append(i)
        new = set(by_group) - self._known_groups
        if new:
            await clients.client.sadd(self.keys.groups, *sorted(new))
            self._known_groups |= new
        if self._cluster:
            by_group = await self._aclaim_index(clients, tasks, by_group)
        for group, indexes in by_group.items():
            if not indexes:
                continue
            args: list[Any] = []
            for i in indexes:
                args.extend(task_args(tasks[i]))
            answers = text(await self._group_call(clients.scripts.put, group, *args))
            for i, answer in zip(indexes, answers):
                stored[i] = answer == "1"
            self._remember_group([tasks[i].id for i in indexes], group)
        return stored

    async def _aclaim_index(
        self, clients: _LoopClients, tasks: Sequence[Task], by_group: dict[str, list[int]]
    ) -> dict[str, list[int]]:
        """Cluster mode: write index entries (SET NX GET); keep tasks whose id is free."""
        pipe = clients.client.pipeline(transaction=False)
        order = [i for indexes in by_group.values() for i in indexes]
        for i in order:
            pipe.set(self.keys.index(tasks[i].id), tasks[i].group, nx=True, get=True)
        previous = dict(zip(order, await pipe.execute()))
        return {
            group: [i for i in indexes if previous[i] in (None, group.encode())]
            for group, indexes in by_group.items()
        }

    # ------------------------------------------------------------------ results

    @translate_errors_async
    async def aget_outcome(self, task_id: str) -> Outcome | None:
        return await self._aread_outcome(self._loop_clients(), task_id)

    async def _aread_outcome(self, clients: _LoopClients, task_id: str) -> Outcome | None:
        async with clients.slots:
            return await self._aread_unlimited(clients, task_id)

    async def _aread_unlimited(self, clients: _LoopClients, task_id: str) -> Outcome | None:
        for cached in (True, False):
            group = await self._agroup_of(clients, task_id, cached=cached)
            if group is None:
                return None
            raw = await clients.client.hgetall(self.keys.record(group, task_id))
            if raw:
                return outcome_from_fields(group, task_id, decode_fields(raw), strict=False)
            if not cached:
                break
            # A stale cache entry (the record expired, the id may live in another group now).
            self._forget_group(task_id)
        return None

    async def _agroup_of(self, clients: _LoopClients, task_id: str, *, cached: bool) -> str | None:
        if cached:
            with self._lock:
                group = self._group_cache.get(task_id)
            if group is not None:
                return group
        raw = await clients.client.get(self.keys.index(task_id))
        if raw is None:
            return None
        group = text(raw)
        self._remember_group([task_id], group)
        return group

    @translate_errors_async
    async def await_outcome(self, task_id: str, timeout: float) -> Outcome | None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max(0.0, timeout)
        clients = self._loop_clients()
        outcome = await self._aread_outcome(clients, task_id)
        while outcome is not None and not outcome.state.finished:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return outcome
            outcome = await self._await_in_group(clients, outcome, deadline)
        return outcome

    async def _await_in_group(
        self, clients: _LoopClients, seen: Outcome, deadline: float
    ) -> Outcome | None:
        """Wait on the channel of ``seen``'s group until the task finished, ``deadline``
        passed or the task turned up in another group (its id was reused after expiry)."""
        loop = asyncio.get_running_loop()
        task = seen.task
        listener = clients.listener
        watch = await listener.watch(self.keys.notify(task.group, task.id), deadline - loop.time())
        if watch is None:
            return seen  # the time ran out before the subscription was confirmed
        try:
            while True:
                # Armed before the look: a finish after it ends the wait below at once.
                watch.arm()
                outcome = await self._aread_outcome(clients, task.id)
                remaining = deadline - loop.time()
                if (
                    outcome is None
                    or outcome.state.finished
                    or remaining <= 0
                    or outcome.task.group != task.group
                ):
                    return outcome
                await watch.wait(min(remaining, RECHECK_INTERVAL))
                if listener.closed:
                    raise redis.exceptions.ConnectionError("the backend was closed during a wait")
        finally:
            listener.unwatch(watch)

    # ------------------------------------------------------------------ closing

    async def aclose(self) -> None:
        loops = self.__dict__.get("_aio_loops")
        if loops is not None:
            await loops.aclose_current()
        await asyncio.to_thread(self.close)
