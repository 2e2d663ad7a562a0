"""One worker process: claimers, thread pools, the lease keeper, control events, schedulers.

Every task's outcome is logged on the ``taskkit.worker`` logger with the fields ``task_id``,
``task_group``, ``task_name``, ``task_attempt`` and ``task_duration`` as ``extra`` (for
structured log formatters): INFO when it succeeded (or was discarded or cancelled), WARNING
when it is retried (the delay and a one-line exception), ERROR when it failed or became a
dead letter (with the traceback).

Threads of a worker:

* per group, one **claimer** that keeps its N **executors** supplied: it claims for idle
  executors at once and, while the group's tasks are short, keeps a small buffer of claimed
  tasks ahead of them (prefetch), so executors do not wait on a claim's round trip; with
  nothing claimable it blocks in ``backend.wait_for_work`` (no polling loop);
* one **recorder** that writes finished tasks' outcomes in batches (``_recorder``);
* one **keeper** that renews leases every heartbeat, enforces time limits and cancellations,
  and applies control events;
* one thread per **scheduler**.

A handler's ``BaseException`` never kills an executor; a handler stuck past its time limit is
failed, its thread replaced, and the process recycled (when it is a child process).
"""

from __future__ import annotations

import ctypes
import logging
import os
import queue
import signal
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import tzinfo
from types import FrameType, TracebackType
from typing import TYPE_CHECKING, Any

import pluggy

from ._backend_clock import BackendClock
from ._encoding import ResultNotEncodable, encode_result
from ._health import RETRY_CAP, BackendHealth, is_unavailable, one_line
from ._kitdata import KitData, KitParts
from ._recorder import OutcomeRecorder, PendingOutcome
from ._scheduler import Scheduler
from ._task import Claim, LeaseStatus, OutcomeAction, OutcomeWrite
from ._validation import truncate_text
from .context import TaskContext, _set_current
from .errors import (
    DiscardTask,
    PayloadTooLarge,
    TaskCancelled,
    TaskTimeout,
)

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


#: Automatic prefetch buffers tasks only while the group's tasks take less than this on
#: average (seconds): a long task must not hold buffered tasks that an idle worker could run.
PREFETCH_MAX_AVERAGE = 0.05


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


@dataclass
class _InFlight:
    claim: Claim
    context: TaskContext
    thread_id: int | None = None
    in_handler: bool = False
    async_raised: bool = False
    stuck: bool = False
    recording: bool = False  # its outcome is on the way to the backend
    #: ``time.monotonic()`` value at which the lease (as last known) expires.
    lease_deadline: float = float("inf")
    lock: threading.Lock = field(default_factory=threading.Lock)


def _async_raise(thread_id: int, exc_type: type[BaseException] | None) -> None:
    """Raise ``exc_type`` in another thread at its next bytecode (None clears a pending one)."""
    ctypes.pythonapi.PyThreadState_SetAsyncExc(
        ctypes.c_ulong(thread_id), ctypes.py_object(exc_type) if exc_type else None
    )


class _GroupRunner:
    """The claimer and executor threads of one group."""

    def __init__(self, worker: Worker, group: str, threads: int) -> None:
        self.worker = worker
        self.group = group
        self.size = threads
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
                for outcome in batch.dead_lettered:
                    log.error(
                        "task %s (%s/%s) became a dead letter: %s",
                        outcome.task.id,
                        outcome.task.group,
                        outcome.task.name,
                        outcome.error,
                        extra=task_log_extra(outcome.task),
                    )
                    worker.kit.hook_caller.call(
                        "taskkit_task_dead_lettered", task=outcome.task, reason=outcome.error or ""
                    )
                worker.health.succeeded()
                if batch.claims:
                    for claim in batch.claims:
                        worker.track(claim)
                        self.queue.put(claim)
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
                with self.cond:
                    self.busy -= 1
                    self.average += (time.monotonic() - started - self.average) * 0.2
                    self.cond.notify_all()


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
        self._runners: dict[str, _GroupRunner] = {}
        self._scheduler_stop = threading.Event()
        self._threads: list[threading.Thread] = []  # keeper and schedulers
        self._control_seq = 0
        #: Reports outages once per process (every thread's backend calls feed it).
        self.health = BackendHealth(log, self.backend.name)
        self._recorder = OutcomeRecorder(
            self.backend,
            give_up_after=kit.config.lease_seconds / 2,
            stop_now=self.stop_now,
            health=self.health,
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
        log.info("worker %s started: groups %s", self.worker_id, self.spec.threads or "none")
        self._recorder.start()
        for group, count in self.spec.threads.items():
            runner = _GroupRunner(self, group, count)
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
        self._recorder.close(timeout=self.kit.config.lease_seconds)
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
        for name, entries in self.spec.schedule_entries.items():
            scheduler = Scheduler(
                self.backend,
                name,
                entries,
                tzinfo=self.spec.tzinfo,
                on_fired=lambda task: self.kit.hook_caller.call(
                    "taskkit_task_initiated", task=task
                ),
                health=self.health,
            )
            thread = threading.Thread(
                target=scheduler.run,
                args=(self._scheduler_stop,),
                name=f"taskkit-scheduler-{name}",
                daemon=True,
            )
            self._threads.append(thread)
            thread.start()

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

    # ------------------------------------------------------------------ execution

    def execute(self, claim: Claim) -> None:
        with self._inflight_lock:
            entry = self._inflight.get(claim.token)
        if entry is None:  # handed back or failed by the keeper before it started
            return
        task = claim.task
        if self.stopping.is_set():
            # Shutting down: do not start new work, hand it back instead.
            self.hand_back([claim])
            return
        if entry.context.cancelled:
            # Cancelled while it waited in the prefetch buffer: never start it.
            self._finish(entry, "acknowledge_cancel", "cancelled")
            return
        if time.monotonic() >= entry.lease_deadline:
            # Its lease ran out while it waited (the process was paused, or the keeper could
            # not renew): another worker may own it now. Release it (a no-op if so).
            log.info("task %s: lease expired before it started; handing it back", task.id)
            self.hand_back([claim])
            return
        timeout = task.timeout or self.kit.config.default_timeout
        if timeout is not None:
            entry.context.deadline = time.monotonic() + timeout
        entry.thread_id = threading.get_ident()
        _set_current(entry.context)
        self.kit.hook_caller.call("taskkit_task_started", task=task, worker_id=self.worker_id)
        started = time.monotonic()
        try:
            with entry.lock:
                entry.in_handler = True
            try:
                value = self.kit.hook_caller.hook.taskkit_execute_task(
                    task=task, call=lambda: self.handler.handle(task)
                )
            finally:
                with entry.lock:
                    entry.in_handler = False
                    if entry.async_raised:
                        _async_raise(entry.thread_id, None)
        except TaskCancelled:
            self._log_outcome(logging.INFO, task, started, "cancelled")
            self._finish(entry, "acknowledge_cancel", "cancelled")
        except TaskTimeout:
            message = f"timed out after {timeout}s"
            self._log_outcome(logging.ERROR, task, started, "failed", f": {message}")
            self._finish(entry, "fail", message, hook=self._failed_hook(task, None, message))
        except DiscardTask as exc:
            reason = str(exc) or "discarded by the handler"
            self._log_outcome(logging.INFO, task, started, "discarded", f": {reason}")
            self._finish(entry, "discard", reason, hook=self._discarded_hook(task, reason))
        except BaseException as exc:
            self._on_failure(entry, exc, started)
        else:
            self._on_success(entry, value, time.monotonic() - started)
        finally:
            _set_current(None)

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

    def _on_success(self, entry: _InFlight, value: Any, duration: float) -> None:
        task = entry.claim.task
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
        keeper already failed as stuck: its thread's late outcome must not overwrite that.

        The executor moves on before its outcome is written only while its group has fewer
        unwritten outcomes than twice its prefetch allowance; otherwise it waits. So a group
        holds at most ``threads + 2 * prefetch`` tasks that ran (or run) without a stored
        outcome: the most a crash can make run twice (prefetched tasks not yet started never
        run twice: see ``execute``).
        """
        with entry.lock:
            if entry.stuck or entry.recording:
                return
            entry.recording = True
        claim = entry.claim
        runner = self._runners.get(claim.task.group)
        move_on = runner is not None and not now and runner.take_unwritten_slot()

        def settled() -> None:
            self._untrack(claim)
            if move_on:
                runner.release_unwritten_slot()  # type: ignore[union-attr]

        pending = PendingOutcome(
            OutcomeWrite(claim, action, value, due), on_applied=hook, on_settled=settled
        )
        if now:
            self._recorder.write_now(pending)
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
                if time.monotonic() >= next_renewal:
                    next_renewal = time.monotonic() + config.heartbeat
                    self._renew()
                    self._sync_clock()
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
            if entry.in_handler and entry.thread_id is not None and not entry.async_raised:
                entry.async_raised = True
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

    def _declare_stuck(self, entry: _InFlight) -> None:
        task = entry.claim.task
        message = (
            f"timed out after {task.timeout or self.kit.config.default_timeout}s; the handler did "
            "not stop (blocked outside Python?)"
        )
        log.error("task %s: %s", task.id, message, extra=task_log_extra(task))
        self._finish(entry, "fail", message, hook=self._failed_hook(task, None, message), now=True)
        entry.stuck = True
        with self._inflight_lock:
            self._inflight_lock.notify_all()
        runner = self._runners.get(task.group)
        if runner is not None:
            runner.replace_stuck_executor()
        if self.in_child and not self.stopping.is_set():
            log.error("worker %s: recycling the process to shed a stuck thread", self.worker_id)
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
    try:
        child_kit = KitParts.of(
            kit.backend.clone(), kit.handler, kit.config, kit.plugins, kit.tasks
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
