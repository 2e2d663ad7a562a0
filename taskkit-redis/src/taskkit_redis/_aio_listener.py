"""asyncio result waits: every waiting coroutine of a process and loop shares one pub/sub
connection (one per shard in a Redis Cluster).

The ``finish`` step of every script (``lua/_group.lua``) publishes on the task's sharded
channel ``{P:G}:o:<id>`` (``SPUBLISH``; the channel is named like the token list that
blocking waiters pop). An :class:`OutcomeListener` subscribes its connection to the channels
of the tasks its coroutines wait on: a task's first waiter subscribes (``SSUBSCRIBE``), its
last one unsubscribes, and a message wakes every waiter of the task.

No notification is missed. A waiter looks at the task only once the server confirmed the
subscription, so a finish either came before the look (the look sees it) or publishes to a
subscribed channel. A subscription that ends without being asked to (the connection dropped,
or the group's slot moved to another shard, which ends it with ``SUNSUBSCRIBE``) is made
again, on the shard that now owns the slot, and its confirmation wakes the task's waiters to
look again, since what was published meanwhile is lost. While the connection is away, waits
go on until their timeout.

A subscribed connection can only (un)subscribe and ``PING``: a reader task reads every reply
and a writer task sends every command, so the waiters never touch the socket. Replies to our
commands come in the order they were sent; the reader pairs them (and error replies) with
the commands, which tells a server-initiated ``SUNSUBSCRIBE`` from the answer to ours. A
connection silent for ``socket_timeout`` seconds is sent a ``PING``; no answer within as long
again counts as a dropped connection (a half-open socket never errors by itself).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import redis.exceptions
from taskkit.aiotools import Waiters, Watch, stop_tasks

from ._config import RedisConfig
from ._errors import text

__all__ = ["OutcomeListener"]

log = logging.getLogger("taskkit.redis")

#: How often the reader looks up from the socket while it is quiet (seconds).
_TICK = 1.0
#: Pause before reconnecting a dropped connection, doubling up to the cap (seconds).
_RECONNECT_DELAY = 0.05
_RECONNECT_CAP = 1.0

_PONG = (b"pong", "")


def _is_redirect(exc: Exception) -> bool:
    """MOVED / ASK: the slot lives on another shard (redis-py < 6 leaves them plain errors)."""
    if isinstance(exc, (redis.exceptions.MovedError, redis.exceptions.AskError)):
        return True
    return str(exc).split(" ", 1)[0] in ("MOVED", "ASK")


class _Shard:
    """One pub/sub connection (to the single node, or to one cluster primary)."""

    def __init__(
        self,
        listener: OutcomeListener,
        name: str,
        make_connection: Callable[[], Any],
        quiet_limit: float,
    ) -> None:
        self.name = name
        self._listener = listener
        self._make_connection = make_connection
        self._quiet_limit = quiet_limit
        #: Channels the listener wants subscribed here.
        self.wanted: set[str] = set()
        #: Channels asked for (SSUBSCRIBE sent) on the current connection, not unsubscribed.
        self._sent: set[str] = set()
        #: Channels the server refused (other than a redirect); not asked for again.
        self._refused: set[str] = set()
        #: The reply each command sent expects, in order: (kind, channel).
        self._expect: deque[tuple[bytes, str]] = deque()
        self._conn: Any = None
        self._broken = False  # a write failed: the reader replaces the connection
        self._ping_wanted = False
        self._kick = asyncio.Event()  # the writer has something to send
        self._wanted_changed = asyncio.Event()  # the reader may (re)connect
        self._tasks: list[asyncio.Task[None]] = []
        #: Connections opened so far (tests check it stays at one).
        self.connections_opened = 0
        self._outage_reported = False
        self._closed = False

    # ---------------------------------------------------------------- the listener's side

    def want(self, channel: str) -> None:
        self.wanted.add(channel)
        self._refused.discard(channel)
        self._start()
        self._changed()

    def unwant(self, channel: str) -> None:
        self.wanted.discard(channel)
        self._refused.discard(channel)
        self._changed()

    def resubscribe(self, channel: str) -> None:
        """Subscribe ``channel`` again (its subscription ended without being asked to)."""
        self._sent.discard(channel)
        self._changed()

    def break_connection(self) -> None:
        """Replace the connection: it did not confirm a subscription in time."""
        self._broken = True

    def _start(self) -> None:
        if not self._tasks and not self._closed:
            loop = asyncio.get_running_loop()
            self._tasks = [
                loop.create_task(self._read_loop(), name="taskkit-sub-read"),
                loop.create_task(self._write_loop(), name="taskkit-sub-write"),
            ]

    def _changed(self) -> None:
        self._kick.set()
        self._wanted_changed.set()

    async def aclose(self) -> None:
        self._closed = True
        self._kick.set()
        self._wanted_changed.set()
        await stop_tasks(self._tasks)
        self._tasks = []

    # ---------------------------------------------------------------- writer

    async def _write_loop(self) -> None:
        while not self._closed:
            await self._kick.wait()
            self._kick.clear()
            conn = self._conn
            if conn is None or self._broken:
                continue  # the reader subscribes everything wanted once it is connected
            commands: list[tuple[str, ...]] = []
            for channel in sorted(self.wanted - self._sent - self._refused):
                commands.append(("SSUBSCRIBE", channel))
                self._expect.append((b"ssubscribe", channel))
                self._sent.add(channel)
            for channel in sorted(self._sent - self.wanted):
                commands.append(("SUNSUBSCRIBE", channel))
                self._expect.append((b"sunsubscribe", channel))
                self._sent.discard(channel)
            if self._ping_wanted:
                self._ping_wanted = False
                commands.append(("PING",))
                self._expect.append(_PONG)
            if not commands:
                continue
            try:
                await conn.send_packed_command(conn.pack_commands(commands), check_health=False)
            except Exception:
                log.debug("writing to the pub/sub connection %s failed", self.name, exc_info=True)
                self._broken = True

    # ---------------------------------------------------------------- reader

    async def _read_loop(self) -> None:
        delay = _RECONNECT_DELAY
        while not self._closed:
            while not self.wanted and not self._closed:
                # Nobody waits here: connect (or reconnect) only when somebody does.
                self._wanted_changed.clear()
                if self.wanted or self._closed:
                    break
                await self._wanted_changed.wait()
            if self._closed:
                return
            conn = None
            try:
                conn = self._make_connection()
                await conn.connect()
                self.connections_opened += 1
                if self._outage_reported:
                    log.info("taskkit: the pub/sub connection to Redis %s is back", self.name)
                    self._outage_reported = False
                self._sent.clear()
                self._expect.clear()
                self._broken = False
                self._conn = conn
                self._kick.set()  # subscribe everything wanted on the new connection
                delay = _RECONNECT_DELAY
                await self._read(conn)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if self._conn is None:  # the connection never came up
                    if not self._outage_reported:
                        self._outage_reported = True
                        log.warning(
                            "taskkit: no pub/sub connection to Redis %s (%s: %s); result "
                            "waits go on until their timeout meanwhile",
                            self.name,
                            type(exc).__name__,
                            exc,
                        )
                else:
                    log.debug("the pub/sub connection to %s dropped", self.name, exc_info=True)
            finally:
                self._conn = None
                self._sent.clear()
                self._expect.clear()
                self._listener.shard_lost(self)
                if conn is not None:
                    await _disconnect_quietly(conn)
            await asyncio.sleep(delay)
            delay = min(delay * 2, _RECONNECT_CAP)

    async def _read(self, conn: Any) -> None:
        loop = asyncio.get_running_loop()
        last_heard = loop.time()
        pinged = False
        while not self._closed:
            if self._broken:
                raise ConnectionError("a write to the pub/sub connection failed")
            try:
                # push_request: redis-py >= 6 hands pub/sub frames to a push handler (and
                # reads past them) unless asked for them.
                reply = await conn.read_response(timeout=_TICK, push_request=True)
            except redis.exceptions.ResponseError as exc:
                self._refusal(exc)
                last_heard, pinged = loop.time(), False
                continue
            if reply is None:
                if loop.time() - last_heard >= self._quiet_limit:
                    if pinged:
                        raise redis.exceptions.TimeoutError("no answer to PING")
                    pinged = True
                    last_heard = loop.time()
                    self._ping_wanted = True
                    self._kick.set()
                continue
            last_heard, pinged = loop.time(), False
            self._dispatch(reply)

    def _dispatch(self, reply: Any) -> None:
        if isinstance(reply, (bytes, str)):  # +PONG: a PING outside subscribed mode
            self._answered(_PONG)
            return
        kind = reply[0] if isinstance(reply[0], bytes) else str(reply[0]).encode()
        if kind == b"smessage":
            self._listener.notified(text(reply[1]))
        elif kind == b"pong":
            self._answered(_PONG)
        elif kind == b"ssubscribe":
            channel = text(reply[1])
            self._answered((kind, channel))
            if channel in self._sent:
                self._listener.confirmed(self, channel)
        elif kind == b"sunsubscribe":
            channel = text(reply[1])
            if not self._answered((kind, channel)):
                # Not the answer to ours: the server ended it (the slot moved).
                self._sent.discard(channel)
                self._listener.lost(self, channel)

    def _answered(self, expected: tuple[bytes, str]) -> bool:
        """Pair a reply with the command it answers; False if none expects it."""
        if self._expect and self._expect[0] == expected:
            self._expect.popleft()
            return True
        if expected[0] == b"ssubscribe" and expected in self._expect:
            self._expect.remove(expected)  # unexpected order: stay in step anyway
            return True
        return False

    def _refusal(self, exc: redis.exceptions.ResponseError) -> None:
        """An error reply: the answer to the oldest command still waiting for one."""
        if not self._expect:
            log.debug("an unexpected error reply on %s: %s", self.name, exc)
            return
        kind, channel = self._expect.popleft()
        if kind != b"ssubscribe":
            return
        self._sent.discard(channel)
        if _is_redirect(exc):
            self._listener.lost(self, channel)
        else:
            self._refused.add(channel)
            self._listener.refused(channel, exc)


async def _disconnect_quietly(conn: Any) -> None:
    try:
        await conn.disconnect()
    except Exception:
        log.debug("closing a pub/sub connection failed", exc_info=True)


@dataclass
class _Wanted:
    """A channel somebody waits on: where it is subscribed, and whether that is confirmed."""

    shard: _Shard
    ready: asyncio.Future[None]
    #: A subscription was confirmed before: the next confirmation follows a loss.
    armed_before: bool = False


class OutcomeListener:
    """The pub/sub side of ``await_outcome`` for one event loop (see the module doc).

    :param config: the backend's configuration (connection settings, cluster or not).
    :param client: the loop's asyncio client; in a cluster it maps channels to shards.
    """

    def __init__(self, config: RedisConfig, client: Any) -> None:
        self.waiters = Waiters()
        self._config = config
        self._client = client
        self._confirm_timeout = config.socket_timeout
        self._channels: dict[str, _Wanted] = {}
        self._shards: dict[str, _Shard] = {}
        self._reroutes: set[asyncio.Task[None]] = set()
        #: Set by :meth:`aclose`.
        self.closed = False

    @property
    def connections_opened(self) -> int:
        """Pub/sub connections opened so far by this loop's listener (for tests)."""
        return sum(shard.connections_opened for shard in self._shards.values())

    @property
    def shards(self) -> int:
        """How many pub/sub connections the listener keeps (one per shard it used)."""
        return len(self._shards)

    @property
    def subscribed(self) -> int:
        """How many channels are wanted right now (one per task waited on)."""
        return len(self._channels)

    async def watch(self, channel: str, timeout: float) -> Watch | None:
        """Start waiting on ``channel``; returns once its subscription is confirmed.

        :return: the armed watch (pair it with :meth:`unwatch`), or None if ``timeout`` ran
            out first.
        :raises redis.exceptions.TimeoutError: no confirmation within ``socket_timeout``.
        :raises redis.exceptions.ResponseError: the server refused the subscription.
        """
        watch = self.waiters.watch(channel)
        try:
            wanted = self._channels.get(channel)
            if wanted is None:
                shard = await self._shard_for(channel)
                wanted = self._channels.get(channel)  # another waiter routed it meanwhile
                if wanted is None:
                    future = asyncio.get_running_loop().create_future()
                    wanted = self._channels[channel] = _Wanted(shard, future)
                    shard.want(channel)
            # A local reference: a loss after the confirmation replaces ``wanted.ready``.
            ready = wanted.ready
            if not ready.done():
                limit = min(timeout, self._confirm_timeout)
                try:
                    await asyncio.wait_for(asyncio.shield(ready), max(0.0, limit))
                except asyncio.TimeoutError:
                    if timeout <= self._confirm_timeout:
                        self.unwatch(watch)
                        return None
                    wanted.shard.break_connection()
                    raise redis.exceptions.TimeoutError(
                        f"no confirmation of SSUBSCRIBE {channel} within {limit:g}s"
                    ) from None
            ready.result()  # raises the refusal, if any
        except BaseException:
            self.unwatch(watch)
            raise
        return watch

    def unwatch(self, watch: Watch) -> None:
        """Stop ``watch``; the channel is unsubscribed once its last waiter left."""
        if not self.waiters.unwatch(watch):
            return
        wanted = self._channels.pop(watch.key, None)
        if wanted is not None:
            wanted.shard.unwant(watch.key)
            if not wanted.ready.done():
                wanted.ready.cancel()

    async def aclose(self) -> None:
        """Close the connections; waits in progress end with ``ConnectionError``."""
        self.closed = True
        await stop_tasks(self._reroutes)
        shards, self._shards = list(self._shards.values()), {}
        for shard in shards:
            await shard.aclose()
        self.waiters.wake_all()

    # ---------------------------------------------------------------- routing

    async def _shard_for(self, channel: str) -> _Shard:
        if self.closed:
            raise redis.exceptions.ConnectionError("the backend's asyncio clients are closed")
        if not self._config.cluster:
            return self._shard("", lambda: self._client.connection_pool.make_connection())
        await self._client.initialize()  # idempotent; the topology is known afterwards
        node = self._client.get_node_from_key(channel)
        host, port = node.host, int(node.port)
        return self._shard(
            f"{host}:{port}",
            lambda: self._config.build_async_node_client(
                host, port
            ).connection_pool.make_connection(),
        )

    def _shard(self, name: str, make_connection: Callable[[], Any]) -> _Shard:
        shard = self._shards.get(name)
        if shard is None:
            where = name or self._config.describe()
            quiet = max(1.0, self._config.socket_timeout)
            shard = self._shards[name] = _Shard(self, where, make_connection, quiet)
        return shard

    async def _reroute(self, channel: str) -> None:
        """Cluster: find the shard that owns ``channel`` now and subscribe there."""
        try:
            await self._client.nodes_manager.initialize()
            shard = await self._shard_for(channel)
        except Exception:
            log.debug("re-routing %s failed; retrying on its old shard", channel, exc_info=True)
            shard = None
        wanted = self._channels.get(channel)
        if wanted is None:
            return
        if shard is None or shard is wanted.shard:
            wanted.shard.resubscribe(channel)
            return
        wanted.shard.unwant(channel)
        wanted.shard = shard
        shard.want(channel)

    # ---------------------------------------------------------------- what the shards report

    def notified(self, channel: str) -> None:
        self.waiters.notify(channel)

    def confirmed(self, shard: _Shard, channel: str) -> None:
        wanted = self._channels.get(channel)
        if wanted is None or wanted.shard is not shard:
            return
        if not wanted.ready.done():
            wanted.ready.set_result(None)
        if wanted.armed_before:
            # Subscribed again after a loss: what was published meanwhile is lost.
            self.waiters.notify(channel)
        wanted.armed_before = True

    def shard_lost(self, shard: _Shard) -> None:
        """The shard's connection dropped: its subscriptions wait for a new confirmation."""
        for wanted in self._channels.values():
            if wanted.shard is shard and wanted.ready.done():
                wanted.ready = asyncio.get_running_loop().create_future()

    def lost(self, shard: _Shard, channel: str) -> None:
        """One subscription ended (slot moved) or was redirected: subscribe where it lives."""
        wanted = self._channels.get(channel)
        if wanted is None or wanted.shard is not shard:
            return
        if wanted.ready.done():
            wanted.ready = asyncio.get_running_loop().create_future()
        if not self._config.cluster:
            shard.resubscribe(channel)
            return
        task = asyncio.get_running_loop().create_task(self._reroute(channel))
        self._reroutes.add(task)
        task.add_done_callback(self._reroutes.discard)

    def refused(self, channel: str, exc: Exception) -> None:
        wanted = self._channels.get(channel)
        if wanted is not None and not wanted.ready.done():
            wanted.ready.set_exception(exc)
            # Retrieved by the waiters, or by nobody if they all left: no warning either way.
            wanted.ready.add_done_callback(lambda f: f.exception())
