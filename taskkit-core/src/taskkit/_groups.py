"""A worker's groups: each has one claimer thread that keeps its executors supplied.

* A **thread group** (:class:`ThreadGroup`) runs its tasks on N executor threads. Its claimer
  claims for idle executors at once and, while the group's tasks are short, keeps a small
  buffer of claimed tasks ahead of them (prefetch), so executors do not wait on a claim's
  round trip.
* An **async group** (:class:`LoopGroup`) runs up to N tasks at once as asyncio tasks on the
  worker's one event loop (``_aio``); its claimer is the same thread, and hands each claim
  to the loop as it comes (no buffer: starting a coroutine costs no thread).

With nothing claimable a claimer blocks in ``backend.wait_for_work`` (no polling loop). The
worker that owns the groups is their :class:`GroupHost`.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections.abc import Coroutine
from typing import Any, Protocol

from ._aio import EventLoopThread
from ._health import RETRY_CAP, BackendHealth, is_unavailable
from ._kitdata import KitData
from ._task import Claim, Outcome
from .backend import Backend

__all__ = ["PREFETCH_MAX_AVERAGE", "GroupHost", "LoopGroup", "ThreadGroup"]

log = logging.getLogger("taskkit.worker")

#: Automatic prefetch buffers tasks only while the group's tasks take less than this on
#: average (seconds): a long task must not hold buffered tasks that an idle worker could run.
PREFETCH_MAX_AVERAGE = 0.05


class GroupHost(Protocol):
    """What a group's claimer and executors use of their worker."""

    kit: KitData
    backend: Backend
    worker_id: str
    stopping: threading.Event
    control_changed: threading.Event
    health: BackendHealth

    def backend_now(self) -> float: ...

    def is_paused(self, group: str) -> bool: ...

    def track(self, claim: Claim) -> None: ...

    def hand_back(self, claims: list[Claim]) -> None: ...

    def report_dead_letters(self, outcomes: list[Outcome]) -> None: ...

    def report_reclaimed(self, claim: Claim) -> None: ...

    def execute(self, claim: Claim) -> None: ...

    def execute_on_loop(self, claim: Claim) -> Coroutine[Any, Any, None]: ...


class ThreadGroup:
    """The claimer and executor threads of one group."""

    def __init__(self, worker: GroupHost, group: str, size: int) -> None:
        self.worker = worker
        self.group = group
        self.size = size
        self.busy = 0  # executors running a task
        self.unwritten = 0  # outcomes whose executor moved on before they were written
        # Moving average of the group's task durations, in seconds. It starts at the
        # prefetch threshold: no prefetch until tasks have shown that they are short.
        self.average = PREFETCH_MAX_AVERAGE
        self.cond = threading.Condition()
        self.queue: queue.SimpleQueue[Claim | None] = queue.SimpleQueue()
        self.stopped = threading.Event()  # this group only (a shutdown event for the group)
        self.claimer: threading.Thread | None = None

    def start(self) -> None:
        for _ in range(self.size):
            self.add_executor()
        self.start_claimer()

    def start_claimer(self) -> None:
        self.claimer = threading.Thread(
            target=self._claim_loop, name=f"taskkit-claimer-{self.group}", daemon=True
        )
        self.claimer.start()

    def add_executor(self) -> None:
        threading.Thread(
            target=self._execute_loop, name=f"taskkit-executor-{self.group}", daemon=True
        ).start()

    def replace_stuck_executor(self) -> None:
        """A thread is stuck in a handler for good: give the pool a fresh one."""
        with self.cond:
            # The stuck thread still counts as busy; should it ever return, it simply
            # serves on as one of the now ``size`` threads.
            self.size += 1
            self.cond.notify_all()
        self.add_executor()

    def _claiming(self) -> bool:
        return not (self.worker.stopping.is_set() or self.stopped.is_set())

    def _prefetch(self) -> int:
        """How many claimed tasks may wait in the buffer beyond the executors' own."""
        setting = self.worker.kit.config.prefetch
        if setting is not None:
            return setting
        return self.size if self.average < PREFETCH_MAX_AVERAGE else 0

    def take_unwritten_slot(self) -> bool:
        """Whether an executor may go on before its outcome is written (and count it).

        Allowed for up to twice the prefetch allowance: none for long tasks (prefetch off),
        enough for short ones to batch their outcomes (measured: an allowance of one per
        thread costs a quarter of a drain's throughput, two per thread nothing).
        """
        with self.cond:
            if self.unwritten >= 2 * self._prefetch():
                return False
            self.unwritten += 1
            return True

    def is_lone(self) -> bool:
        """Whether the caller's task is the group's only one running or waiting."""
        return self.busy <= 1 and self.queue.qsize() == 0

    def release_unwritten_slot(self) -> None:
        with self.cond:
            self.unwritten -= 1

    def _wanted(self) -> int:
        """Tasks to claim now (0: wait). Call with ``cond`` held."""
        buffered = self.queue.qsize()
        idle = self.size - self.busy
        prefetch = self._prefetch()
        room = idle + prefetch - buffered
        # Claim at once for idle executors; refill the prefetch buffer once it is half empty,
        # so claims come in batches rather than one per finished task.
        if room > 0 and (buffered < idle or buffered <= prefetch // 2):
            return room
        return 0

    def dispatch(self, claim: Claim) -> None:
        """Hand a tracked claim to the executors."""
        self.queue.put(claim)

    def _claim_loop(self) -> None:
        worker = self.worker
        config = worker.kit.config
        error_delay = 0.1
        while self._claiming():
            with self.cond:
                wanted = self._wanted()
                while wanted == 0 and self._claiming():
                    self.cond.wait(1.0)
                    wanted = self._wanted()
            if not self._claiming():
                break
            if worker.is_paused(self.group):
                worker.control_changed.wait(config.control_interval)
                continue
            try:
                batch = worker.backend.claim(
                    self.group,
                    worker.worker_id,
                    wanted,
                    config.lease_seconds,
                    config.max_deliveries,
                )
                if batch.dead_lettered:
                    worker.report_dead_letters(batch.dead_lettered)
                worker.health.succeeded()
                if batch.claims:
                    for claim in batch.claims:
                        worker.track(claim)
                        if claim.task.deliveries > 1:  # an earlier delivery was lost
                            worker.report_reclaimed(claim)
                        self.dispatch(claim)
                    error_delay = 0.1
                    continue
                timeout = config.max_idle_wait
                if batch.next_due is not None:
                    timeout = min(timeout, batch.next_due - worker.backend_now())
                # A floor keeps a due-but-unclaimable edge case from spinning.
                worker.backend.wait_for_work(self.group, max(timeout, 0.001))
                error_delay = 0.1
            except Exception as exc:
                if not self._claiming():
                    # A stop closes what the claim or wait used: nothing went wrong.
                    log.debug("claiming for group %r ended by the stop", self.group, exc_info=True)
                    break
                if is_unavailable(exc):
                    # One line per outage and process (the worker's health), details at DEBUG;
                    # retried at least every RETRY_CAP seconds, so work resumes soon after.
                    worker.health.failed(f"claiming for group {self.group!r}", exc)
                    cap = RETRY_CAP
                else:
                    log.warning(
                        "claiming for group %r failed; retrying in %.1fs",
                        self.group,
                        error_delay,
                        exc_info=True,
                    )
                    cap = 5.0
                worker.stopping.wait(error_delay)
                error_delay = min(error_delay * 2, cap)
        # Hand back what was claimed but not started.
        leftovers: list[Claim] = []
        while True:
            try:
                queued = self.queue.get_nowait()
            except queue.Empty:
                break
            if queued is not None:
                leftovers.append(queued)
        if leftovers:
            worker.hand_back(leftovers)
        self.end_executors()

    def end_executors(self) -> None:
        for _ in range(self.size):
            self.queue.put(None)

    def _execute_loop(self) -> None:
        while True:
            claim = self.queue.get()
            if claim is None:
                return
            with self.cond:
                self.busy += 1
                self.cond.notify_all()  # the buffer shrank: the claimer may refill it
            started = time.monotonic()
            try:
                self.worker.execute(claim)
            except BaseException:
                log.exception("unexpected error around task %s", claim.task.id)
            finally:
                self.done(started)

    def done(self, started: float) -> None:
        """A task of the group ended (its outcome written): its slot is free again."""
        with self.cond:
            self.busy -= 1
            self.average += (time.monotonic() - started - self.average) * 0.2
            self.cond.notify_all()


class LoopGroup(ThreadGroup):
    """An async group: its claimer thread, and up to ``size`` coroutines on ``loop``.

    A coroutine holds its slot until its outcome is written, so at most ``size`` tasks of
    the group ran without a stored outcome (what a crash can make run again).
    """

    def __init__(self, worker: GroupHost, group: str, size: int, loop: EventLoopThread) -> None:
        super().__init__(worker, group, size)
        self.loop = loop
        self._tasks: set[asyncio.Task[None]] = set()  # strong references: asyncio keeps weak

    def start(self) -> None:
        self.start_claimer()

    def replace_stuck_executor(self) -> None:
        # A coroutine that ignores its cancellation keeps its slot; the group gets one more.
        with self.cond:
            self.size += 1
            self.cond.notify_all()

    def _prefetch(self) -> int:
        return 0  # claims start at once: a buffer would only exceed the concurrency

    def end_executors(self) -> None:
        pass  # the worker cancels what still runs on the loop once it has drained

    def dispatch(self, claim: Claim) -> None:
        with self.cond:
            self.busy += 1
        try:
            self.loop.call_soon(self._spawn, claim)
        except RuntimeError:  # the loop is gone: the worker is past its drain
            self.done(time.monotonic())
            self.worker.hand_back([claim])

    def _spawn(self, claim: Claim) -> None:
        task = asyncio.get_running_loop().create_task(
            self._run(claim), name=f"taskkit-task-{claim.task.id}"
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, claim: Claim) -> None:
        started = time.monotonic()
        try:
            await self.worker.execute_on_loop(claim)
        except asyncio.CancelledError:
            pass  # cancelled by the worker's stop, after it handed the claim back
        except BaseException:
            log.exception("unexpected error around task %s", claim.task.id)
        finally:
            self.done(started)
