"""The outcome recorder: one thread per worker that writes finished tasks' outcomes in batches.

Group commit: an executor that finishes a task while no write is in flight writes its
outcome itself, at once (no thread hop, no waiting to fill a batch: batching costs an idle
worker no latency). While a write is in flight, outcomes queue up instead and the recorder
thread writes everything queued with one :meth:`~taskkit.backend.Backend.record_outcomes`
call: a busy worker pays one round trip for many tasks instead of one each.

How far executors may run ahead of their outcomes is the worker's decision
(``submit(wait=...)``): it lets them go on only while few outcomes are unwritten, which bounds
what a crash can make run twice (the conformance kit checks the bound under SIGKILL).

A task stays in flight (its lease renewed, a graceful shutdown waiting for it) until its
outcome is written or given up on; the lifecycle hook of an outcome runs only once the
backend has it.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from ._health import RETRY_CAP, BackendHealth, is_unavailable, one_line
from ._task import OutcomeWrite
from .backend import Backend

log = logging.getLogger("taskkit.worker")

#: Outcomes written per backend call at most (bounds one call's size and time).
MAX_BATCH = 256


@dataclass
class PendingOutcome:
    """An outcome waiting to be written, and what to do once it is."""

    write: OutcomeWrite
    #: the lifecycle hook to call once the outcome is written (None: none).
    on_applied: Callable[[], None] | None
    #: called exactly once, whatever happened: the task is no longer in flight.
    on_settled: Callable[[], None]
    #: set once the outcome was written or given up on (made only when somebody waits).
    settled: threading.Event | None = None


class OutcomeRecorder:
    """Writes outcomes on its own thread; :meth:`write_now` writes one on the caller's thread.

    A failed write is retried with back-off until ``give_up_after`` seconds have passed (half
    a lease: past that the task runs again elsewhere anyway) or ``stop_now`` is set; then the
    outcome is dropped with an error and the task runs again after its lease expires. An
    outcome the backend refuses (a stale claim) is logged and passed to ``on_rejected``.
    """

    def __init__(
        self,
        backend: Backend,
        *,
        give_up_after: float,
        stop_now: threading.Event,
        health: BackendHealth | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        on_rejected: Callable[[OutcomeWrite], None] | None = None,
    ) -> None:
        self._backend = backend
        # Told of each outcome the backend refused as stale (the worker's plugin hook).
        self._on_rejected = on_rejected
        self._health = health or BackendHealth(log, backend.name)
        self._give_up_after = give_up_after
        self._stop_now = stop_now
        # The clock of the give-up deadline; tests pass their own (with a stop_now whose
        # waits move it) to check the back-off without waiting.
        self._monotonic = monotonic
        self._queue: queue.SimpleQueue[PendingOutcome | None] = queue.SimpleQueue()
        self._writing = threading.Lock()  # held by whoever is writing a batch
        self._thread = threading.Thread(target=self._run, name="taskkit-recorder", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def submit(self, pending: PendingOutcome, *, inline: bool = True, wait: bool = True) -> None:
        """Write ``pending`` with the next batch, or now on this thread.

        :param inline: write it on this thread if no write is in flight (the fastest path for
            a lone task; a busy worker rather lets the recorder thread write for it).
        :param wait: return only once it is written (or given up on).
        """
        if not (inline and self._writing.acquire(blocking=False)):
            if wait:
                pending.settled = threading.Event()
            self._queue.put(pending)
            if pending.settled is not None:
                pending.settled.wait()
            return
        try:
            batch, closing = self._take(pending)
            self._settle(batch)
        finally:
            self._writing.release()
        if closing:
            self._queue.put(None)  # the close marker is the recorder thread's to see

    def write_now(self, pending: PendingOutcome) -> None:
        """Write ``pending`` on the calling thread (for threads that must know it is done)."""
        self._settle([pending])

    def close(self, timeout: float | None = None) -> None:
        """Write what is queued, then stop the thread."""
        self._queue.put(None)
        self._thread.join(timeout)

    def _run(self) -> None:
        closing = False
        while not closing:
            first = self._queue.get()
            if first is None:
                return
            with self._writing:
                batch, closing = self._take(first)
                self._settle(batch)

    def _take(self, first: PendingOutcome) -> tuple[list[PendingOutcome], bool]:
        """``first`` and what is queued behind it, up to the batch size; and whether the
        close marker was taken."""
        batch = [first]
        while len(batch) < MAX_BATCH:
            try:
                more = self._queue.get_nowait()
            except queue.Empty:
                break
            if more is None:
                return batch, True
            batch.append(more)
        return batch, False

    def _settle(self, batch: list[PendingOutcome]) -> None:
        try:
            applied = self._write(batch)
            for pending, ok in zip(batch, applied):
                if ok:
                    if pending.on_applied is not None:
                        pending.on_applied()
                else:
                    log.warning(
                        "task %s: lease lost before its outcome was written; another worker "
                        "owns it",
                        pending.write.claim.task.id,
                    )
                    if self._on_rejected is not None:
                        self._on_rejected(pending.write)
        except Exception as exc:
            ids = ", ".join(pending.write.claim.task.id for pending in batch[:10])
            if is_unavailable(exc):
                # The outage itself is reported once by the health; this is what it cost.
                log.error(
                    "could not record the outcome of %d task(s) (%s): %s; they will run again "
                    "after their leases expire",
                    len(batch),
                    ids,
                    one_line(exc),
                )
                log.debug("recording outcomes failed", exc_info=True)
            else:
                log.exception(
                    "could not record the outcome of %d task(s) (%s); they will run again "
                    "after their leases expire",
                    len(batch),
                    ids,
                )
        finally:
            for pending in batch:
                pending.on_settled()
                if pending.settled is not None:
                    pending.settled.set()

    def _write(self, batch: list[PendingOutcome]) -> list[bool]:
        writes = [pending.write for pending in batch]
        give_up = self._monotonic() + self._give_up_after
        delay = 0.05
        while True:
            try:
                applied = self._backend.record_outcomes(writes)
            except Exception as exc:
                if self._monotonic() + delay > give_up or self._stop_now.is_set():
                    raise
                if is_unavailable(exc):
                    self._health.failed(f"recording {len(writes)} outcome(s)", exc)
                else:
                    log.warning(
                        "recording %d outcome(s) failed; retrying", len(writes), exc_info=True
                    )
                self._stop_now.wait(delay)
                delay = min(delay * 2, RETRY_CAP)
            else:
                self._health.succeeded()
                if len(applied) != len(writes):
                    raise RuntimeError(
                        f"{type(self._backend).__name__}.record_outcomes answered "
                        f"{len(applied)} flags for {len(writes)} outcomes"
                    )
                return applied
