"""One worker process: claimers, thread pools, the lease keeper, control events, schedulers.

Every task's outcome is logged on the ``taskkit.worker`` logger with the fields ``task_id``,
``task_group``, ``task_name``, ``task_attempt`` and ``task_duration`` as ``extra`` (for
structured log formatters): INFO when it succeeded (or was discarded or cancelled), WARNING
when it is retried (the delay and a one-line exception), ERROR when it failed or became a
dead letter (with the traceback).

Threads of a worker:

* per group, one **claimer** that keeps the group's executors supplied (``_groups``): N
  **executor** threads for a thread group, up to N coroutines on the event loop for an
  async group;
* one **event loop** thread (``_aio``), started only when a group is async or a thread
  group's handler returns an awaitable;
* one **recorder** that writes finished tasks' outcomes in batches (``_recorder``);
* one **keeper** that renews leases every heartbeat, enforces time limits and cancellations
  (for coroutines too: it cancels them through the loop), reports a coroutine that blocks
  the loop, and applies control events;
* one thread per **scheduler**.

A handler's ``BaseException`` never kills an executor (nor the loop); a handler stuck past
its time limit is failed, its thread replaced (or its coroutine's slot), and the process
recycled (when it is a child process).

A task whose (group, name) nothing here knows (:class:`~taskkit.UnknownTask`) is deferred,
not discarded, and buried once older than ``unknown_task_window`` (``_unknown``).
"""

from __future__ import annotations

import asyncio
import ctypes
import inspect
import logging
import os
import signal
import threading
import time
import traceback
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import tzinfo
from types import FrameType, TracebackType
from typing import TYPE_CHECKING, Any, Literal

import pluggy

from ._aio import CoroutineGuard, EventLoopThread, close_unawaited, runs_on_loop
from ._async_hook import execute_awaiting
from ._backend_clock import BackendClock
from ._encoding import ResultNotEncodable, encode_result
from ._fleet import FleetMembership
from ._groups import LoopGroup, ThreadGroup
from ._health import BackendHealth, is_unavailable, one_line
from ._kitdata import KitData, KitParts
from ._recorder import OutcomeRecorder, PendingOutcome
from ._scheduler import Scheduler
from ._task import Claim, LeaseStatus, Outcome, OutcomeAction, OutcomeWrite
from ._unknown import UnknownTasks
from ._validation import truncate_text
from .context import TaskContext, _set_current
from .errors import (
    DiscardTask,
    PayloadTooLarge,
    TaskCancelled,
    TaskTimeout,
    UnknownTask,
)
from .logformat import apply_inherited_logging

if TYPE_CHECKING:
    from ._task import Task
    from .schedule import ScheduleEntry

log = logging.getLogger("taskkit.worker")

#: Exit codes of a worker process, read by the supervisor.
EXIT_OK = 0  # asked to stop (signal or shutdown event): do not restart
EXIT_RECYCLE = 75  # stopped itself to shed a stuck thread: restart
EXIT_SETUP_FAILED = 3  # could not start: restart with back-off

#: The signals that stop a worker. The supervisor starts a child with them blocked and the
#: child unblocks them once its own handlers are installed (see ``worker_main``).
STOP_SIGNALS = frozenset({signal.SIGTERM, signal.SIGINT})
#: How often the main thread of a worker returns to Python to run pending signal handlers.
_SIGNAL_CHECK_INTERVAL = 0.5

#: Where taskkit's and pluggy's own frames live: a stored traceback starts after them, at
#: the first frame of the user's code (the handler, or a plugin wrapping it).
_INTERNAL_DIRS = (
    os.path.dirname(os.path.abspath(__file__)) + os.sep,
    os.path.dirname(os.path.abspath(pluggy.__file__)) + os.sep,
)


def _user_frames(tb: TracebackType | None) -> TracebackType | None:
    """``tb`` from its first frame outside taskkit and pluggy (all of it if it has none)."""
    first = tb
    while first is not None and first.tb_frame.f_code.co_filename.startswith(_INTERNAL_DIRS):
        first = first.tb_next
    return first if first is not None else tb


def stored_traceback(exc: BaseException, limit: int) -> str:
    """The traceback to store for ``exc``: from the user's first frame on (no taskkit or
    pluggy frames before it), cut to ``limit`` bytes. Workers and eager runs both use it."""
    text = "".join(traceback.format_exception(type(exc), exc, _user_frames(exc.__traceback__)))
    return truncate_text(text, limit)


def task_log_extra(task: Task, duration: float | None = None) -> dict[str, Any]:
    """The ``extra`` fields of a task's log records (read by structured log formatters)."""
    return {
        "task_id": task.id,
        "task_group": task.group,
        "task_name": task.name,
        "task_attempt": task.retry_count + 1,
        "task_duration": duration,
    }


def _describe(task: Task) -> str:
    return f"task {task.id} ({task.group}/{task.name}, attempt {task.retry_count + 1})"


@dataclass(frozen=True)
class WorkerSpec:
    """What every worker process runs (picklable, sent to ``spawn`` children)."""

    num_processes: int
    threads: dict[str, int]
    schedule_entries: dict[str, list[ScheduleEntry]]
    tzinfo: tzinfo | None
    #: True when the parent already logged ``backend.check()``'s warnings (once per
    #: supervisor, not once per worker process and restart).
    startup_checked: bool = False
    #: Plugins the supervisor adds to the kit's own in every worker (those its config turns
    #: on, such as the metrics exporter of ``KitConfig.metrics_port``).
    plugins: tuple[object, ...] = ()


@dataclass
class _InFlight:
    claim: Claim
    context: TaskContext
    thread_id: int | None = None
    in_handler: bool = False
    #: Set once the keeper interrupted it (one asynchronous exception, or one cancel).
    async_raised: bool = False
    interrupted_with: type[BaseException] | None = None
    #: Set while its awaitable runs on the loop (all along for an async group's task): the
    #: keeper interrupts through it instead of raising in a thread.
    guard: CoroutineGuard | None = None
    #: Resolved on the loop once its outcome is settled (a coroutine awaits it, not blocks).
    written: asyncio.Future[None] | None = None
    stuck: bool = False
    recording: bool = False  # its outcome is on the way to the backend
    #: ``time.monotonic()`` value at which the lease (as last known) expires.
    lease_deadline: float = float("inf")
    lock: threading.Lock = field(default_factory=threading.Lock)


#: Why a claimed task does not start: the worker stops or its lease ran out (hand it back),
#: or it was cancelled while it waited (acknowledge that).
_Refusal = Literal["hand_back", "cancelled", "deliveries_exhausted"]


def _async_raise(thread_id: int, exc_type: type[BaseException] | None) -> None:
    """Raise ``exc_type`` in another thread at its next bytecode (None clears a pending one)."""
    ctypes.pythonapi.PyThreadState_SetAsyncExc(
        ctypes.c_ulong(thread_id), ctypes.py_object(exc_type) if exc_type else None
    )


class Worker:
    """Everything one process runs. ``run()`` blocks until the worker stops."""

    def __init__(self, kit: KitData, spec: WorkerSpec, worker_id: str, *, in_child: bool) -> None:
        self.kit = kit
        self.backend = kit.backend
        self.handler = kit.router  # function tasks first, then the user's handler
        self.spec = spec
        self.worker_id = worker_id
        self.in_child = in_child
        self.stopping = threading.Event()  # stop claiming, finish in-flight work
        self.stop_now = threading.Event()  # second signal: hand back and leave
        self.control_changed = threading.Event()
        self.exit_code = EXIT_OK
        self._paused: set[str] = set()
        self._pause_all = False
        self._inflight: dict[str, _InFlight] = {}
        self._inflight_lock = threading.Condition()
        self._clock = BackendClock(self.backend)  # measured as the worker starts
        self._runners: dict[str, ThreadGroup] = {}
        #: The groups whose tasks run as coroutines on the event loop.
        self.async_groups = {g for g in spec.threads if runs_on_loop(self.handler, g)}
        self._loop = EventLoopThread(beat_interval=min(0.1, kit.config.loop_block_warning / 4))
        self._loop_reported_since: float | None = None  # the loop hold reported last
        #: Verdicts on, and counts of, tasks nobody here knows (``unknown_tasks.deferred``).
        self.unknown_tasks = UnknownTasks(kit.config.unknown_task_window)
        self._scheduler_stop = threading.Event()
        self._threads: list[threading.Thread] = []  # keeper and schedulers
        self._control_seq = 0
        #: Reports outages once per process (every thread's backend calls feed it).
        self.health = BackendHealth(log, self.backend.name)
        self._fleet = FleetMembership(
            self.backend, worker_id, spec.threads, kit.config.heartbeat, self.health
        )
        self._recorder = OutcomeRecorder(
            self.backend,
            give_up_after=kit.config.lease_seconds / 2,
            stop_now=self.stop_now,
            health=self.health,
            on_rejected=self._report_rejected,
        )

    # ------------------------------------------------------------------ clock

    def backend_now(self) -> float:
        """The backend's clock, estimated locally from the offset measured at start."""
        return self._clock.now()

    def _sync_clock(self) -> None:
        self._clock.sync()

    # ------------------------------------------------------------------ lifecycle

    def request_stop(self, now: bool = False) -> None:
        self.stopping.set()
        if now:
            self.stop_now.set()
        with self._inflight_lock:
            self._inflight_lock.notify_all()

    def install_signal_handlers(self) -> None:
        received: set[int] = set()

        def on_signal(signum: int, frame: FrameType | None) -> None:
            # Escalate only on a repeat of the same signal: a terminal's Ctrl-C reaches both
            # the supervisor and its children, and the supervisor then sends SIGTERM too.
            repeated = signum in received
            received.add(signum)
            if repeated:
                log.warning("worker %s: second signal, stopping now", self.worker_id)
                self.request_stop(now=True)
            elif not self.stopping.is_set():
                log.info("worker %s: signal %d, shutting down gracefully", self.worker_id, signum)
                self.request_stop()

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)

    def run(self) -> int:
        self._sync_clock()
        self._control_seq = max((e.seq for e in self.backend.read_control(0)), default=0)
        if not self.spec.startup_checked:
            for warning in self.backend.check():
                log.warning("%s", warning)
        groups = list(self.spec.threads)
        self.kit.hook_caller.call("taskkit_worker_started", worker_id=self.worker_id, groups=groups)
        log.info(
            "worker %s started: groups %s%s",
            self.worker_id,
            self.spec.threads or "none",
            f" (async: {', '.join(sorted(self.async_groups))})" if self.async_groups else "",
        )
        self._fleet.join()  # listed by backend.list_workers() until it stops
        self._recorder.start()
        if self.async_groups:
            self._loop.start()
        for group, count in self.spec.threads.items():
            runner = (
                LoopGroup(self, group, count, self._loop)
                if group in self.async_groups
                else ThreadGroup(self, group, count)
            )
            self._runners[group] = runner
            runner.start()
        keeper = threading.Thread(target=self._keeper_loop, name="taskkit-keeper", daemon=True)
        self._threads.append(keeper)
        keeper.start()
        self._start_schedulers()
        # Wait in slices: a stop signal may be delivered to another thread of this process,
        # and then only the main thread's return to Python runs our handler (an unbounded
        # Event.wait would never return, and the supervisor would have to kill us).
        while not self.stopping.wait(_SIGNAL_CHECK_INTERVAL):
            pass
        self._scheduler_stop.set()
        self._interrupt_waits()
        self._drain()
        # What still runs on the loop was handed back (or is stuck): stop it there, so no
        # coroutine works on for a task that now runs elsewhere (a thread cannot be stopped).
        self._loop.cancel_all(timeout=1.0)
        self._recorder.close(timeout=self.kit.config.lease_seconds)
        if not self._loop.stop(timeout=2.0):
            log.warning(
                "worker %s: the event loop did not stop (a coroutine blocks it)", self.worker_id
            )
        self._fleet.leave()
        self.kit.hook_caller.call("taskkit_worker_stopped", worker_id=self.worker_id)
        log.info("worker %s stopped", self.worker_id)
        return self.exit_code

    def _interrupt_waits(self) -> None:
        """Wake claimers blocked in ``wait_for_work`` so they see the stop and leave."""
        for runner in self._runners.values():
            with runner.cond:
                runner.cond.notify_all()
        try:
            self.backend.interrupt_waits()
        except Exception:
            log.debug("interrupting the claimers' waits failed", exc_info=True)

    def join_threads(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for the claimers, keeper and schedulers to leave.

        Called after :meth:`run` and before the backend is closed, so no thread is still
        using a connection that closes. Executors are not waited for: :meth:`run` already
        waited for their tasks (up to the grace period); a stuck one may never return.

        :return: True if every thread left in time.
        """
        deadline = time.monotonic() + timeout
        threads = [r.claimer for r in self._runners.values() if r.claimer is not None]
        for thread in threads + self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        lingering = [t.name for t in threads + self._threads if t.is_alive()]
        if lingering:
            log.debug("worker %s: threads still running at close: %s", self.worker_id, lingering)
        return not lingering

    def _start_schedulers(self) -> None:
        if not self.spec.schedule_entries:
            return
        hooks = self.kit.hook_caller
        for name, entries in self.spec.schedule_entries.items():
            scheduler = Scheduler(
                self.backend,
                name,
                entries,
                tzinfo=self.spec.tzinfo,
                on_fired=lambda task: hooks.call("taskkit_task_initiated", task=task),
                health=self.health,
                on_entry_fired=(
                    self._schedule_fired(name) if hooks.listened("taskkit_schedule_fired") else None
                ),
            )
            thread = threading.Thread(
                target=scheduler.run,
                args=(self._scheduler_stop,),
                name=f"taskkit-scheduler-{name}",
                daemon=True,
            )
            self._threads.append(thread)
            thread.start()

    def _schedule_fired(self, scheduler: str) -> Callable[[str, Task], None]:
        def fired(entry: str, task: Task) -> None:
            # The scheduler stamps ``created`` with the firing time, on the backend's clock.
            lag = task.created - (task.scheduled if task.scheduled is not None else task.created)
            self.kit.hook_caller.call(
                "taskkit_schedule_fired", scheduler=scheduler, entry=entry, task=task, lag=lag
            )

        return fired

    def _drain(self) -> None:
        """Wait for in-flight tasks up to the grace period, then hand back the rest."""
        deadline = time.monotonic() + self.kit.config.grace_period
        with self._inflight_lock:
            while self._live_inflight() and not self.stop_now.is_set():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._inflight_lock.wait(min(remaining, 0.5))
            left = [e.claim for e in self._inflight.values() if not (e.stuck or e.recording)]
        if left:
            log.warning("worker %s: handing back %d unfinished task(s)", self.worker_id, len(left))
            self.hand_back(left)

    def _live_inflight(self) -> bool:
        return any(not e.stuck for e in self._inflight.values())

    def hand_back(self, claims: list[Claim]) -> None:
        """Release unstarted (or abandoned) claims to the queue; they are no longer in flight."""
        try:
            self.backend.release(claims)
        except Exception as exc:
            if is_unavailable(exc):
                log.warning(
                    "could not hand back %d task(s) (%s); their leases will expire",
                    len(claims),
                    one_line(exc),
                )
                log.debug("handing back failed", exc_info=True)
            else:
                log.exception(
                    "could not hand back %d task(s); their leases will expire", len(claims)
                )
        for claim in claims:
            self._untrack(claim)

    # ------------------------------------------------------------------ in-flight bookkeeping

    def track(self, claim: Claim) -> None:
        entry = _InFlight(claim, TaskContext(claim.task))
        entry.lease_deadline = time.monotonic() + claim.lease_expires - self.backend_now()
        with self._inflight_lock:
            self._inflight[claim.token] = entry

    def _untrack(self, claim: Claim) -> None:
        with self._inflight_lock:
            self._inflight.pop(claim.token, None)
            self._inflight_lock.notify_all()

    def is_paused(self, group: str) -> bool:
        return self._pause_all or group in self._paused

    def report_dead_letters(self, outcomes: list[Outcome]) -> None:
        """Log and announce the tasks a claim moved to dead letters."""
        for outcome in outcomes:
            log.error(
                "task %s (%s/%s) became a dead letter: %s",
                outcome.task.id,
                outcome.task.group,
                outcome.task.name,
                outcome.error,
                extra=task_log_extra(outcome.task),
            )
            self.kit.hook_caller.call(
                "taskkit_task_dead_lettered", task=outcome.task, reason=outcome.error or ""
            )

    def report_reclaimed(self, claim: Claim) -> None:
        """Announce a claim of a task whose earlier delivery ended without an outcome."""
        self.kit.hook_caller.call(
            "taskkit_task_reclaimed", task=claim.task, worker_id=self.worker_id
        )

    def _report_rejected(self, write: OutcomeWrite) -> None:
        """Announce an outcome the backend refused (this worker's claim was stale)."""
        self.kit.hook_caller.call(
            "taskkit_outcome_rejected", task=write.claim.task, action=write.action
        )

    # ------------------------------------------------------------------ execution

    def _entry(self, claim: Claim) -> _InFlight | None:
        with self._inflight_lock:
            return self._inflight.get(claim.token)

    def _handed_back(self, entry: _InFlight) -> bool:
        with self._inflight_lock:
            return entry.claim.token not in self._inflight

    def _refusal(self, entry: _InFlight) -> _Refusal | None:
        """Why the claimed task must not start now, or None: it may."""
        if self.stopping.is_set():
            return "hand_back"  # shutting down: do not start new work
        if entry.context.cancelled:
            return "cancelled"  # cancelled while it waited in the prefetch buffer
        if time.monotonic() >= entry.lease_deadline:
            # Its lease ran out while it waited (the process was paused, or the keeper could
            # not renew): another worker may own it now. Release it (a no-op if so).
            log.info(
                "task %s: lease expired before it started; handing it back", entry.claim.task.id
            )
            return "hand_back"
        limit = getattr(self.handler, "max_deliveries", None)
        if limit is not None:
            allowed = limit(entry.claim.task)
            if allowed is not None and entry.claim.task.deliveries > allowed:
                return "deliveries_exhausted"  # the task's own max_deliveries (@kit.task)
        return None

    def _bury_worker_lost(self, entry: _InFlight) -> None:
        """The task was delivered more often than its own ``max_deliveries`` allows (each
        earlier delivery ended with a lost worker): a dead letter, as the backend makes one
        at the kit's limit."""
        task = entry.claim.task
        reason = "worker lost"
        log.error(
            "%s became a dead letter: %s (delivered %d times)",
            _describe(task),
            reason,
            task.deliveries,
            extra=task_log_extra(task),
        )
        self._finish(
            entry,
            "bury",
            reason,
            hook=lambda: self.kit.hook_caller.call(
                "taskkit_task_dead_lettered", task=task, reason=reason
            ),
        )

    def _begin(self, entry: _InFlight) -> float | None:
        """Start the task's clock and context, and announce it; returns its time limit."""
        task = entry.claim.task
        timeout = task.timeout or self.kit.config.default_timeout
        if timeout is not None:
            entry.context.deadline = time.monotonic() + timeout
        _set_current(entry.context)
        self.kit.hook_caller.call("taskkit_task_started", task=task, worker_id=self.worker_id)
        return timeout

    def execute(self, claim: Claim) -> None:
        """Run one claimed task on this (executor) thread and record its outcome."""
        entry = self._entry(claim)
        if entry is None:  # handed back or failed by the keeper before it started
            return
        refusal = self._refusal(entry)
        if refusal == "hand_back":
            self.hand_back([claim])
            return
        if refusal == "cancelled":
            self._finish(entry, "acknowledge_cancel", "cancelled")
            return
        if refusal == "deliveries_exhausted":
            self._bury_worker_lost(entry)
            return
        task = claim.task
        entry.thread_id = threading.get_ident()
        timeout = self._begin(entry)
        started = time.monotonic()
        try:
            with entry.lock:
                entry.in_handler = True
            try:
                value = self.kit.hook_caller.hook.taskkit_execute_task(
                    task=task, call=lambda: self._call_handler(entry)
                )
            finally:
                with entry.lock:
                    entry.in_handler = False
                    if entry.async_raised and entry.thread_id is not None:
                        _async_raise(entry.thread_id, None)
        except BaseException as exc:
            self._on_error(entry, exc, started, timeout)
        else:
            self._on_success(entry, value, time.monotonic() - started)
        finally:
            _set_current(None)

    def _call_on_loop(self, task: Task) -> Any:
        """The handler's awaitable for a task of an async group. A sync function (or a sync
        handler) in that group runs on a thread, never on the loop, where it would stall
        every coroutine of the process."""
        is_async = getattr(self.handler, "is_async_task", None)
        if is_async is not None and not is_async(task):
            return asyncio.to_thread(self.handler.handle, task)
        return self.handler.handle(task)

    def _call_handler(self, entry: _InFlight) -> Any:
        """The handler's value; an awaitable one (an async task in a thread group) runs on
        the event loop while this thread waits for it."""
        value = self.handler.handle(entry.claim.task)
        if inspect.isawaitable(value):
            return self._await_on_loop(entry, value)
        return value

    def _await_on_loop(self, entry: _InFlight, awaitable: Awaitable[Any]) -> Any:
        self._loop.start()
        guard = CoroutineGuard(self._loop, entry.claim.task)
        with entry.lock:
            if entry.interrupted_with is not None:
                # Interrupted on the way here: its exception is pending in this thread.
                close_unawaited(awaitable)
                raise entry.interrupted_with(entry.claim.task.id)
            entry.guard = guard
        try:
            return self._loop.run_and_wait(guard.run(awaitable), guard)
        finally:
            with entry.lock:
                entry.guard = None

    async def execute_on_loop(self, claim: Claim) -> None:
        """Run one claimed task of an async group as a coroutine on the loop and record its
        outcome; waits for the write without blocking the loop."""
        entry = self._entry(claim)
        if entry is None:
            return
        refusal = self._refusal(entry)
        if refusal == "hand_back":
            await asyncio.to_thread(self.hand_back, [claim])  # a backend call: not on the loop
            return
        task = claim.task
        if refusal is None:
            guard = CoroutineGuard(self._loop, task)
            with entry.lock:
                entry.guard = guard
            with self._loop.owned_by(guard):
                timeout = self._begin(entry)
                started = time.monotonic()
                try:
                    with entry.lock:
                        entry.in_handler = True
                    try:
                        value = await execute_awaiting(
                            self.kit.hook_caller.hook.taskkit_execute_task,
                            {"task": task, "call": lambda: self._call_on_loop(task)},
                            guard.run,
                        )
                    finally:
                        with entry.lock:
                            entry.in_handler = False
                except BaseException as exc:
                    self._on_error(entry, exc, started, timeout)
                else:
                    self._on_success(entry, value, time.monotonic() - started)
        elif refusal == "deliveries_exhausted":
            self._bury_worker_lost(entry)
        else:
            self._finish(entry, "acknowledge_cancel", "cancelled")
        if entry.written is not None:
            await entry.written

    def _on_error(
        self, entry: _InFlight, exc: BaseException, started: float, timeout: float | None
    ) -> None:
        """Record what a handler's exception makes of its task."""
        task = entry.claim.task
        if self._handed_back(entry):
            self._log_given_up(task, one_line(exc))
            return
        if isinstance(exc, TaskCancelled):
            self._log_outcome(logging.INFO, task, started, "cancelled")
            self._finish(entry, "acknowledge_cancel", "cancelled")
        elif isinstance(exc, TaskTimeout):
            message = f"timed out after {timeout}s"
            self._log_outcome(logging.ERROR, task, started, "failed", f": {message}")
            self._finish(entry, "fail", message, hook=self._failed_hook(task, None, message))
        elif isinstance(exc, UnknownTask):
            self._on_unknown(entry, started)
        elif isinstance(exc, DiscardTask):
            reason = str(exc) or "discarded by the handler"
            self._log_outcome(logging.INFO, task, started, "discarded", f": {reason}")
            self._finish(entry, "discard", reason, hook=self._discarded_hook(task, reason))
        else:
            self._on_failure(entry, exc, started)

    def _on_unknown(self, entry: _InFlight, started: float) -> None:
        """Nothing here knows the task: hold it back for a worker that does, or bury it once
        it is older than the window (see ``_unknown``)."""
        task = entry.claim.task
        verdict = self.unknown_tasks.verdict(task, self.backend_now())
        if verdict.action == "bury":
            self._log_outcome(
                logging.ERROR, task, started, "became a dead letter", f": {verdict.reason}"
            )
            reason = verdict.reason

            def buried() -> None:
                self.unknown_tasks.count("bury")
                self.kit.hook_caller.call("taskkit_task_dead_lettered", task=task, reason=reason)

            self._finish(entry, "bury", reason, hook=buried)
            return
        level = logging.WARNING if verdict.first else logging.DEBUG
        if log.isEnabledFor(level):
            window = self.unknown_tasks.window
            log.log(
                level,
                "%s: no function or handler of worker %s knows %s/%s; handed back until a "
                "worker that does runs it (again in %.1fs; a dead letter %.0fs after it was "
                "initiated)%s",
                _describe(task),
                self.worker_id,
                task.group,
                task.name,
                (verdict.due or 0.0) - self.backend_now(),
                window,
                "; further ones of this name are logged at DEBUG" if verdict.first else "",
                extra=task_log_extra(task, time.monotonic() - started),
            )
        self._finish(
            entry,
            "defer",
            verdict.reason,
            due=verdict.due,
            hook=lambda: self.unknown_tasks.count("defer"),
        )

    def _log_outcome(
        self,
        level: int,
        task: Task,
        started: float,
        what: str,
        detail: str = "",
        exc: BaseException | None = None,
    ) -> None:
        """Log ``task <id> (...) <what> in <duration>s<detail>`` with the task's ``extra``
        fields (and ``exc`` from the user's frames on)."""
        if not log.isEnabledFor(level):
            return
        duration = time.monotonic() - started
        exc_info = (type(exc), exc, _user_frames(exc.__traceback__)) if exc is not None else None
        log.log(
            level,
            "%s %s in %.3fs%s",
            _describe(task),
            what,
            duration,
            detail,
            exc_info=exc_info,
            extra=task_log_extra(task, duration),
        )

    def _log_given_up(self, task: Task, how: str) -> None:
        # Handed back at a stop (its coroutine cancelled), or failed as stuck: nothing of it
        # is recorded any more.
        log.debug("%s ended (%s) after the worker gave it up", _describe(task), how)

    def _on_success(self, entry: _InFlight, value: Any, duration: float) -> None:
        task = entry.claim.task
        if self._handed_back(entry):
            self._log_given_up(task, "returned")
            return
        started = time.monotonic() - duration
        try:
            encoded = encode_result(self.handler, task, value, self.kit.config.max_result_size)
        except PayloadTooLarge as exc:
            message = f"result too large: {exc}"
            self._log_outcome(logging.ERROR, task, started, "failed", f": {message}")
            self._finish(entry, "fail", message, hook=self._failed_hook(task, exc, message))
            return
        except ResultNotEncodable as exc:
            # The message names the serializer; the encoder's own traceback follows it.
            message = truncate_text(
                f"{exc}\n" + stored_traceback(exc.__cause__ or exc, self.kit.config.max_error_size),
                self.kit.config.max_error_size,
            )
            self._log_outcome(
                logging.ERROR, task, started, "failed", ": its result could not be encoded", exc
            )
            self._finish(entry, "fail", message, hook=self._failed_hook(task, exc, message))
            return
        self._log_outcome(logging.INFO, task, started, "succeeded")
        self._finish(
            entry,
            "complete",
            encoded,
            hook=lambda: self.kit.hook_caller.call(
                "taskkit_task_succeeded", task=task, duration=duration
            ),
        )

    def _on_failure(self, entry: _InFlight, exc: BaseException, started: float) -> None:
        task = entry.claim.task
        if entry.context.cancelled:
            # A cancel is pending: never retry a task its owner asked to stop.
            self._log_outcome(logging.INFO, task, started, "cancelled")
            self._finish(entry, "acknowledge_cancel", "cancelled")
            return
        text = self._traceback(exc)
        try:
            interval = self.handler.get_retry_interval(task, exc)  # type: ignore[arg-type]
        except DiscardTask as discard:
            reason = str(discard) or "discarded by get_retry_interval"
            self._log_outcome(logging.INFO, task, started, "discarded", f": {reason}")
            self._finish(entry, "discard", reason, hook=self._discarded_hook(task, reason))
            return
        except Exception:
            log.exception("get_retry_interval raised for task %s; failing it", task.id)
            interval = None
        if interval is not None and (
            isinstance(interval, bool) or not isinstance(interval, (int, float)) or interval < 0
        ):
            log.error("get_retry_interval returned %r (not seconds >= 0); failing task", interval)
            interval = None
        if interval is None:
            self._log_outcome(logging.ERROR, task, started, "failed", "", exc)
            self._finish(entry, "fail", text, hook=self._failed_hook(task, exc, text))
            return
        delay = float(interval)
        self._log_outcome(
            logging.WARNING,
            task,
            started,
            "failed",
            f" ({one_line(exc)}); retrying in {delay:.1f}s",
        )
        self._finish(
            entry,
            "retry",
            text,
            due=self.backend_now() + delay,
            hook=lambda: self.kit.hook_caller.call(
                "taskkit_task_retried", task=task, exception=exc, delay=delay
            ),
        )

    def _failed_hook(
        self, task: Task, exc: BaseException | None, message: str
    ) -> Callable[[], None]:
        return lambda: self.kit.hook_caller.call(
            "taskkit_task_failed", task=task, exception=exc, message=message
        )

    def _discarded_hook(self, task: Task, reason: str) -> Callable[[], None]:
        return lambda: self.kit.hook_caller.call("taskkit_task_discarded", task=task, reason=reason)

    def _traceback(self, exc: BaseException) -> str:
        return stored_traceback(exc, self.kit.config.max_error_size)

    def _finish(
        self,
        entry: _InFlight,
        action: OutcomeAction,
        value: bytes | str,
        *,
        due: float | None = None,
        hook: Callable[[], None] | None = None,
        now: bool = False,
    ) -> None:
        """Hand the task's outcome to the recorder (``now``: write it on this thread).

        The task stays in flight until the outcome is written. Nothing happens for a task the
        keeper already failed as stuck (its thread's late outcome must not overwrite that),
        nor for one handed back at a stop (it runs elsewhere now).

        The executor moves on before its outcome is written only while its group has fewer
        unwritten outcomes than twice its prefetch allowance; otherwise it waits. So a thread
        group holds at most ``threads + 2 * prefetch`` tasks that ran (or run) without a
        stored outcome: the most a crash can make run twice (prefetched tasks not yet started
        never run twice: see ``execute``). On the event loop nothing waits: the outcome goes
        to the recorder thread and the coroutine awaits ``entry.written``, keeping its slot
        until then, so an async group of concurrency N holds at most N such tasks.
        """
        with entry.lock:
            if entry.stuck or entry.recording:
                return
            entry.recording = True
        claim = entry.claim
        if self._handed_back(entry):
            return
        runner = self._runners.get(claim.task.group)
        on_loop = not now and self._loop.is_current_thread()
        move_on = runner is not None and not now and not on_loop and runner.take_unwritten_slot()
        written: asyncio.Future[None] | None = None
        if on_loop:
            written = entry.written = asyncio.get_running_loop().create_future()

        def settled() -> None:
            self._untrack(claim)
            if move_on:
                runner.release_unwritten_slot()  # type: ignore[union-attr]
            if written is not None:
                self._loop.resolve(written)

        pending = PendingOutcome(
            OutcomeWrite(claim, action, value, due), on_applied=hook, on_settled=settled
        )
        if now:
            self._recorder.write_now(pending)
        elif on_loop:
            # The recorder thread writes it (a backend call must not block the loop); with
            # other outcomes queued it joins their batch.
            self._recorder.submit(pending, inline=False, wait=False)
        else:
            # A lone task writes its own outcome at once (latency); with other tasks running
            # or waiting, the recorder thread batches it (throughput).
            lone = runner is None or runner.is_lone()
            self._recorder.submit(pending, inline=lone, wait=not move_on)

    # ------------------------------------------------------------------ the keeper

    def _keeper_loop(self) -> None:
        config = self.kit.config
        tick = min(config.control_interval, config.heartbeat, 1.0)
        next_renewal = time.monotonic() + config.heartbeat
        while not self.stop_now.is_set():
            if self.stopping.is_set() and not self._live_inflight():
                return
            try:
                self._enforce_limits()
                self._watch_loop()
                if time.monotonic() >= next_renewal:
                    next_renewal = time.monotonic() + config.heartbeat
                    self._renew()
                    self._sync_clock()
                    self._fleet.beat(len(self._inflight))
                self._apply_control()
                self.health.succeeded()
            except Exception as exc:
                if is_unavailable(exc):
                    self.health.failed(f"worker {self.worker_id}: keeper cycle", exc)
                else:
                    log.warning("worker %s: keeper cycle failed", self.worker_id, exc_info=True)
            self.stop_now.wait(tick)

    def _renew(self) -> None:
        with self._inflight_lock:
            entries = [e for e in self._inflight.values() if not e.stuck]
        if not entries:
            return
        asked = time.monotonic()
        statuses = self.backend.renew([e.claim for e in entries], self.kit.config.lease_seconds)
        with self._inflight_lock:
            still_running = set(self._inflight)
        for entry, status in zip(entries, statuses):
            entry.lease_deadline = (
                0.0 if status is LeaseStatus.LOST else asked + self.kit.config.lease_seconds
            )
            if status is LeaseStatus.LOST and entry.claim.token in still_running:
                # (A task that finished between the snapshot and the renewal is no news.)
                log.warning("task %s: lease lost (reclaimed elsewhere)", entry.claim.task.id)
            elif status is LeaseStatus.CANCEL_REQUESTED and not entry.context.cancelled:
                log.info("task %s: cancel requested; interrupting it", entry.claim.task.id)
                entry.context.cancel_requested.set()
                self._interrupt(entry, TaskCancelled)

    def _interrupt(self, entry: _InFlight, exc_type: type[BaseException]) -> None:
        with entry.lock:
            if entry.async_raised:
                return
            if entry.guard is not None:
                # Its awaitable runs on the loop: cancel it there (its thread, if it has one,
                # only waits for it).
                entry.async_raised = True
                entry.interrupted_with = exc_type
                entry.guard.interrupt(exc_type)
            elif entry.in_handler and entry.thread_id is not None:
                entry.async_raised = True
                entry.interrupted_with = exc_type
                _async_raise(entry.thread_id, exc_type)

    def _enforce_limits(self) -> None:
        now = time.monotonic()
        grace = self.kit.config.timeout_grace
        with self._inflight_lock:
            entries = list(self._inflight.values())
        for entry in entries:
            deadline = entry.context.deadline
            if deadline is None or entry.stuck or entry.recording or now < deadline:
                continue
            if not entry.context.timed_out.is_set():
                log.warning("task %s: time limit exceeded; interrupting it", entry.claim.task.id)
                entry.context.timed_out.set()
                self._interrupt(entry, TaskTimeout)
            elif now > deadline + grace:
                self._declare_stuck(entry)

    def _watch_loop(self) -> None:
        """Report, once, a coroutine that holds the event loop past ``loop_block_warning``.

        Nothing of the worker's own upkeep waits for the loop (this keeper renews leases on
        its own thread); the loop's other coroutines do, which is what the warning is for.
        """
        hold = self._loop.held()
        if hold is None or hold.seconds < self.kit.config.loop_block_warning:
            return
        if hold.owner is not None:
            if hold.owner.reported:
                return
            hold.owner.reported = True
            task = hold.owner.task
            log.warning(
                "%s has held the event loop for %.1fs without awaiting (a blocking call in "
                "async code?): the other coroutines of worker %s wait meanwhile",
                _describe(task),
                hold.seconds,
                self.worker_id,
                extra=task_log_extra(task),
            )
        elif self._loop_reported_since != hold.since:
            self._loop_reported_since = hold.since
            log.warning(
                "worker %s: the event loop has been held for %.1fs outside any task",
                self.worker_id,
                hold.seconds,
            )

    def _declare_stuck(self, entry: _InFlight) -> None:
        task = entry.claim.task
        cause = (
            "the coroutine did not stop (it ignores cancellation, or blocks the event loop?)"
            if entry.guard is not None
            else "the handler did not stop (blocked outside Python?)"
        )
        message = f"timed out after {task.timeout or self.kit.config.default_timeout}s; {cause}"
        log.error("task %s: %s", task.id, message, extra=task_log_extra(task))
        self._finish(entry, "fail", message, hook=self._failed_hook(task, None, message), now=True)
        entry.stuck = True
        with self._inflight_lock:
            self._inflight_lock.notify_all()
        runner = self._runners.get(task.group)
        if runner is not None:
            runner.replace_stuck_executor()
        if self.in_child and not self.stopping.is_set():
            log.error("worker %s: recycling the process to shed a stuck task", self.worker_id)
            self.exit_code = EXIT_RECYCLE
            self.request_stop()

    def _apply_control(self) -> None:
        events = self.backend.read_control(self._control_seq)
        for event in events:
            self._control_seq = max(self._control_seq, event.seq)
            mine = set(self.spec.threads)
            targets = mine if event.groups is None else mine & set(event.groups)
            if event.groups is not None and not targets and mine:
                continue
            log.info(
                "worker %s: control event %s for %s", self.worker_id, event.kind, targets or "all"
            )
            if event.kind == "pause":
                if event.groups is None:
                    self._pause_all = True
                self._paused |= targets
            elif event.kind == "resume":
                if event.groups is None:
                    self._pause_all = False
                    self._paused.clear()
                self._paused -= targets
            elif event.kind == "shutdown":
                if event.groups is None or targets == mine:
                    self.request_stop()
                else:
                    for group in targets:
                        self._runners[group].stopped.set()
            self.control_changed.set()
            self.control_changed.clear()


def worker_main(kit: KitData, spec: WorkerSpec, worker_id: str) -> None:
    """The entry point of a worker child process: it runs on its own backend connection
    (``backend.clone()``) and hook caller, built from the kit's data."""
    # A spawn or forkserver child is a fresh interpreter: log as the parent chose to
    # (``--log-format``); a forked one already has the parent's handlers.
    apply_inherited_logging()
    try:
        child_kit = KitParts.of(
            kit.backend.clone(), kit.handler, kit.config, (*kit.plugins, *spec.plugins), kit.tasks
        )
        worker = Worker(child_kit, spec, worker_id, in_child=True)
        worker.install_signal_handlers()
    except Exception:
        log.exception("worker %s failed to start", worker_id)
        os._exit(EXIT_SETUP_FAILED)
    # A stop signal that arrived while we were starting is pending: it now reaches our own
    # handler instead of the one inherited from the supervisor.
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
    try:
        code = worker.run()
    except Exception:
        log.exception("worker %s crashed", worker_id)
        code = EXIT_SETUP_FAILED
    # Close the connections only once the threads that use them have left (a claimer may
    # still be waiting on a subscription; its wait was interrupted and ends at once, or at
    # the latest after max_idle_wait).
    worker.join_threads(child_kit.config.max_idle_wait + 1.0)
    try:
        child_kit.backend.close()
    except Exception:
        log.debug("closing the backend failed", exc_info=True)
    logging.shutdown()
    # os._exit: stuck daemon threads must not hold the process open.
    os._exit(code)
