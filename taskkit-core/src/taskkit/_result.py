"""``Result``: a handle on one task's outcome, waited for in threads or in async code."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from ._task import CancelResult, Outcome, TaskState
from .backend import Backend
from .context import current_task
from .errors import Failed, NotFound, ResultGetPrevented, ResultGetTimedOut

__all__ = ["EagerResult", "EagerRun", "Result", "ResultSource"]


@dataclass(frozen=True)
class EagerRun:
    """What :func:`run_eagerly` produced.

    :ivar outcome: the outcome a backend would have stored.
    :ivar value: the decoded result (after the round trip) when it succeeded.
    :ivar exception: what the handler (or the encoder) raised, if anything.
    """

    outcome: Outcome
    value: Any = None
    exception: BaseException | None = None


class ResultSource(Protocol):
    """What a result reads off its kit (a :class:`~taskkit.Kit` is one)."""

    @property
    def backend(self) -> Backend: ...

    def cancel(self, task_id: str) -> CancelResult: ...

    def _decode_outcome(self, outcome: Outcome) -> Any: ...


# The longest single backend wait inside Result.get: long waits are split so a dropped
# notification or connection is noticed.
_MAX_WAIT_SLICE = 5.0

T = TypeVar("T")

_GET_IN_HANDLER = (
    "Result.get inside a handler could deadlock the worker pool; chain the work instead of "
    "waiting for it"
)


class Result(Generic[T]):
    """A handle on one task's outcome. ``get`` waits for it without polling the backend hot.

    Generic over the decoded result: a function task's ``delay`` returns ``Result[R]`` for a
    function returning ``R``.
    """

    def __init__(self, kit: ResultSource, task_id: str) -> None:
        self._kit = kit
        self.task_id = task_id

    @property
    def id(self) -> str:
        return self.task_id

    def __repr__(self) -> str:
        return f"<Result {self.task_id}>"

    def outcome(self) -> Outcome | None:
        """The backend's current record of the task, or None."""
        return self._kit.backend.get_outcome(self.task_id)

    def ready(self) -> bool:
        """True once the task finished (in any way)."""
        outcome = self.outcome()
        return outcome is not None and outcome.state.finished

    def cancel(self) -> CancelResult:
        """Cancel the task; see :meth:`Kit.cancel`."""
        return self._kit.cancel(self.task_id)

    def get(self, timeout: float | None = None) -> T:
        """Wait for the task to finish and return its decoded result.

        :param timeout: seconds to wait; 0 looks once; None waits as long as it takes.
        :raises ResultGetTimedOut: the task did not finish in time.
        :raises Failed: it failed (``.message`` holds the traceback text); :class:`Cancelled`
            and :class:`DeadLettered` are subclasses.
        :raises NotFound: no such task, it was discarded, or its record expired.
        :raises ResultGetPrevented: called inside a running handler.
        """
        if current_task() is not None:
            raise ResultGetPrevented(_GET_IN_HANDLER)
        if timeout is not None and timeout < 0:
            raise ValueError("timeout must be >= 0 or None")
        backend = self._kit.backend
        deadline = None if timeout is None else time.monotonic() + timeout
        # wait_for_outcome looks first and returns at once for a finished or unknown task.
        outcome = backend.wait_for_outcome(
            self.task_id, _MAX_WAIT_SLICE if timeout is None else min(timeout, _MAX_WAIT_SLICE)
        )
        while outcome is not None and not outcome.state.finished:
            remaining = _MAX_WAIT_SLICE if deadline is None else deadline - time.monotonic()
            if remaining <= 0:
                raise ResultGetTimedOut(f"task {self.task_id!r} did not finish within {timeout}s")
            outcome = backend.wait_for_outcome(self.task_id, min(remaining, _MAX_WAIT_SLICE))
        if outcome is None:
            raise NotFound(self.task_id)
        value: T = self._kit._decode_outcome(outcome)
        return value

    async def aget(self, timeout: float | None = None) -> T:
        """:meth:`get` for async code: waits without blocking the event loop or holding a
        thread (the backend multiplexes every waiter of a process where it can).

        Raises what :meth:`get` raises, except :class:`ResultGetPrevented`: an async task
        awaiting another task's result blocks no worker thread.
        """
        if timeout is not None and timeout < 0:
            raise ValueError("timeout must be >= 0 or None")
        backend = self._kit.backend
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        outcome = await backend.await_outcome(
            self.task_id, _MAX_WAIT_SLICE if timeout is None else min(timeout, _MAX_WAIT_SLICE)
        )
        while outcome is not None and not outcome.state.finished:
            remaining = _MAX_WAIT_SLICE if deadline is None else deadline - loop.time()
            if remaining <= 0:
                raise ResultGetTimedOut(f"task {self.task_id!r} did not finish within {timeout}s")
            outcome = await backend.await_outcome(self.task_id, min(remaining, _MAX_WAIT_SLICE))
        if outcome is None:
            raise NotFound(self.task_id)
        value: T = self._kit._decode_outcome(outcome)
        return value


class EagerResult(Result[T]):
    """The result of a task run synchronously in the caller (``eager=True``).

    Nothing was stored: :meth:`outcome` is the outcome a backend would hold, and :meth:`get`
    returns or raises what it would for a worker's run of the task (the handler's exception
    is chained as the ``__cause__`` of :class:`Failed`).
    """

    def __init__(self, kit: ResultSource, run: EagerRun) -> None:
        super().__init__(kit, run.outcome.task.id)
        self._run = run

    def outcome(self) -> Outcome:
        """The outcome of the eager run (never stored in the backend)."""
        return self._run.outcome

    def ready(self) -> bool:
        """Always True: the task ran before ``initiate_task`` returned."""
        return True

    def cancel(self) -> CancelResult:
        """Nothing to cancel: the task already ran."""
        return CancelResult.FINISHED

    def get(self, timeout: float | None = None) -> T:
        """The decoded result, or the error a worker's run would give; ``timeout`` is unused.

        :raises Failed: the handler raised (or its result could not be encoded);
            :class:`Cancelled` if it raised ``TaskCancelled``.
        :raises NotFound: the handler discarded the task.
        :raises ResultGetPrevented: called inside a running handler, as for any result.
        """
        if current_task() is not None:
            raise ResultGetPrevented(_GET_IN_HANDLER)
        return self._value(timeout)

    async def aget(self, timeout: float | None = None) -> T:
        """As :meth:`get` (the task already ran)."""
        return self._value(timeout)

    def _value(self, timeout: float | None) -> T:
        if timeout is not None and timeout < 0:
            raise ValueError("timeout must be >= 0 or None")
        run = self._run
        if run.outcome.state is TaskState.SUCCEEDED:
            value: T = run.value
            return value
        try:
            self._kit._decode_outcome(run.outcome)
        except (Failed, NotFound) as error:
            raise error from run.exception
        raise AssertionError(f"unexpected eager outcome {run.outcome.state}")  # pragma: no cover
