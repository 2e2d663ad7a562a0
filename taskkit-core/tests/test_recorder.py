"""The outcome recorder: group commit, retries with back-off, giving up, and close.

Outcomes end real claims of a :class:`~taskkit.MemoryBackend`. A *gate* holds a write open
so the test knows what is queued behind it; retries run on a fake clock whose stop event
moves it instead of sleeping (``OutcomeRecorder(monotonic=...)``), so no test waits out a
back-off.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Sequence

import pytest
from taskkit import (
    BackendUnavailable,
    Claim,
    FakeClock,
    MemoryBackend,
    OutcomeWrite,
    Task,
    TaskState,
)
from taskkit._health import RETRY_CAP
from taskkit._recorder import MAX_BATCH, OutcomeRecorder, PendingOutcome

from .conftest import wait_until


class Store(MemoryBackend):
    """Records each ``record_outcomes`` call; can fail the first calls or hold them open."""

    def __init__(self, clock: FakeClock | None = None) -> None:
        super().__init__(clock=clock)
        self.calls: list[tuple[int, str]] = []  # (batch size, writing thread)
        self.failures: list[Exception] = []  # raised by the next calls, in order
        self.gate: threading.Event | None = None  # while set to an unset event, writes wait
        self.entered = threading.Event()
        self.answer_none = False

    def record_outcomes(self, writes: Sequence[OutcomeWrite]) -> list[bool]:
        self.calls.append((len(writes), threading.current_thread().name))
        if self.gate is not None:
            self.entered.set()
            assert self.gate.wait(10), "the test never opened the gate"
        if self.failures:
            raise self.failures.pop(0)
        if self.answer_none:
            return []
        return super().record_outcomes(writes)


class SimulatedStop(threading.Event):
    """A ``stop_now`` whose waits move the recorder's clock instead of sleeping."""

    def __init__(self, clock: FakeClock) -> None:
        super().__init__()
        self.clock = clock
        self.waits: list[float] = []

    def wait(self, timeout: float | None = None) -> bool:
        assert timeout is not None, "the recorder never waits without a bound"
        self.waits.append(timeout)
        self.clock.advance(timeout)
        return self.is_set()


class Tracked:
    """The pending outcomes of a test and what their callbacks saw."""

    def __init__(self) -> None:
        self.applied: list[str] = []
        self.settled: list[str] = []

    def pending(self, claim: Claim) -> PendingOutcome:
        task_id = claim.task.id
        return PendingOutcome(
            OutcomeWrite(claim, "complete", b'"done"'),
            on_applied=lambda: self.applied.append(task_id),
            on_settled=lambda: self.settled.append(task_id),
        )


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(1000.0)


@pytest.fixture
def store() -> Store:
    return Store()


@pytest.fixture
def tracked() -> Tracked:
    return Tracked()


@pytest.fixture
def recorder(store: Store) -> Iterator[OutcomeRecorder]:
    recorder = plain(store)
    recorder.start()
    yield recorder
    if store.gate is not None:
        store.gate.set()
    recorder.close(timeout=10)


def claims(backend: MemoryBackend, count: int, lease: float = 60.0) -> list[Claim]:
    tasks = [Task(f"t{i}", "g", "n", b"null", 0.0, 0.0) for i in range(count)]
    backend.put(tasks)
    return backend.claim("g", "w", count, lease, 3).claims


def state(backend: MemoryBackend, task_id: str) -> TaskState:
    outcome = backend.get_outcome(task_id)
    assert outcome is not None
    return outcome.state


def retrying(
    clock: FakeClock, failures: list[Exception], give_up_after: float = 15.0
) -> tuple[Store, SimulatedStop, OutcomeRecorder, Claim]:
    """A recorder on ``clock`` over a store whose next calls raise ``failures``, and the one
    claim it is to write the outcome of."""
    store = Store()
    store.failures = failures
    stop = SimulatedStop(clock)
    recorder = OutcomeRecorder(
        store, give_up_after=give_up_after, stop_now=stop, monotonic=clock.time
    )
    [claim] = claims(store, 1)
    return store, stop, recorder, claim


def plain(store: Store) -> OutcomeRecorder:
    """A recorder that is not started: only the submitting thread writes."""
    return OutcomeRecorder(store, give_up_after=15.0, stop_now=threading.Event())


def hold_a_write_open(store: Store, recorder: OutcomeRecorder, pending: PendingOutcome) -> None:
    """Start writing ``pending`` on a thread of its own and return while it is in flight."""
    store.gate = threading.Event()
    threading.Thread(target=recorder.submit, args=(pending,), daemon=True).start()
    assert store.entered.wait(10)


def test_a_lone_outcome_is_written_at_once_on_the_callers_thread(
    store: Store, tracked: Tracked
) -> None:
    # Not started: nothing but the caller's thread can write it.
    recorder = plain(store)
    [claim] = claims(store, 1)
    recorder.submit(tracked.pending(claim))
    assert store.calls == [(1, threading.current_thread().name)]
    assert state(store, "t0") is TaskState.SUCCEEDED
    assert tracked.applied == tracked.settled == ["t0"]


def test_outcomes_that_finish_during_a_write_are_written_together(
    store: Store, recorder: OutcomeRecorder, tracked: Tracked
) -> None:
    first, *rest = claims(store, 6)
    hold_a_write_open(store, recorder, tracked.pending(first))
    for claim in rest:
        recorder.submit(tracked.pending(claim), wait=False)
    assert len(store.calls) == 1, "the queued outcomes wait for the open write"
    assert store.gate is not None
    store.gate.set()
    wait_until(lambda: len(tracked.settled) == 6)
    assert [size for size, _ in store.calls] == [1, 5], "one round trip for the five"
    assert store.calls[1][1] == "taskkit-recorder"
    assert sorted(tracked.applied) == [f"t{i}" for i in range(6)]
    assert all(state(store, f"t{i}") is TaskState.SUCCEEDED for i in range(6))


def test_a_batch_holds_at_most_max_batch_outcomes(
    store: Store, recorder: OutcomeRecorder, tracked: Tracked
) -> None:
    first, *rest = claims(store, MAX_BATCH + 45)
    hold_a_write_open(store, recorder, tracked.pending(first))
    for claim in rest:
        recorder.submit(tracked.pending(claim), wait=False)
    assert store.gate is not None
    store.gate.set()
    wait_until(lambda: len(tracked.settled) == MAX_BATCH + 45)
    assert [size for size, _ in store.calls] == [1, MAX_BATCH, 44]


def test_submit_waits_until_its_outcome_is_written(
    store: Store, recorder: OutcomeRecorder, tracked: Tracked
) -> None:
    first, second = claims(store, 2)
    hold_a_write_open(store, recorder, tracked.pending(first))
    waiting = tracked.pending(second)
    submitter = threading.Thread(target=recorder.submit, args=(waiting,), daemon=True)
    submitter.start()
    wait_until(lambda: waiting.settled is not None)  # queued behind the open write
    assert waiting.settled is not None and not waiting.settled.is_set()
    assert submitter.is_alive(), "submit returned before its outcome was written"
    assert store.gate is not None
    store.gate.set()
    submitter.join(10)
    assert not submitter.is_alive() and waiting.settled.is_set()
    assert state(store, "t1") is TaskState.SUCCEEDED


def test_not_inline_hands_the_write_to_the_recorder_thread(
    store: Store, recorder: OutcomeRecorder, tracked: Tracked
) -> None:
    [claim] = claims(store, 1)
    recorder.submit(tracked.pending(claim), inline=False)
    assert store.calls == [(1, "taskkit-recorder")]
    assert tracked.applied == ["t0"]


def test_a_connection_error_is_retried_with_a_doubling_back_off_up_to_the_cap(
    clock: FakeClock, tracked: Tracked, caplog: pytest.LogCaptureFixture
) -> None:
    store, stop, recorder, claim = retrying(
        clock, [ConnectionError("connection refused") for _ in range(8)]
    )
    with caplog.at_level(logging.DEBUG, logger="taskkit.worker"):
        recorder.submit(tracked.pending(claim))
    assert stop.waits == [0.05, 0.1, 0.2, 0.4, 0.8, RETRY_CAP, RETRY_CAP, RETRY_CAP]
    assert len(store.calls) == 9, "the same outcome was written until it landed"
    assert tracked.applied == tracked.settled == ["t0"]
    assert state(store, "t0") is TaskState.SUCCEEDED
    # The outage is one WARNING and one INFO, not one line per retry.
    above_debug = [r for r in caplog.records if r.levelno > logging.DEBUG]
    assert [(r.levelname, "unreachable" in r.message) for r in above_debug] == [
        ("WARNING", True),
        ("INFO", False),
    ]
    assert "reachable again" in above_debug[1].message


def test_a_bug_in_the_backend_is_retried_with_its_traceback(
    clock: FakeClock, tracked: Tracked, caplog: pytest.LogCaptureFixture
) -> None:
    _, stop, recorder, claim = retrying(clock, [RuntimeError("bug in record_outcomes")])
    with caplog.at_level(logging.WARNING, logger="taskkit.worker"):
        recorder.submit(tracked.pending(claim))
    [record] = caplog.records
    assert record.levelname == "WARNING" and "retrying" in record.message
    assert record.exc_info is not None and "bug in record_outcomes" in caplog.text
    assert stop.waits == [0.05] and tracked.applied == ["t0"]


def test_a_write_is_given_up_when_the_next_retry_would_pass_give_up_after(
    clock: FakeClock, tracked: Tracked, caplog: pytest.LogCaptureFixture
) -> None:
    store, stop, recorder, claim = retrying(
        clock, [BackendUnavailable("connection refused") for _ in range(100)], give_up_after=0.3
    )
    with caplog.at_level(logging.ERROR, logger="taskkit.worker"):
        recorder.submit(tracked.pending(claim))
    # 0.05 + 0.1 waited; 0.2 more would pass 0.3 s: it stops after the third attempt.
    assert stop.waits == [0.05, 0.1] and len(store.calls) == 3
    assert tracked.applied == [], "no lifecycle hook for an outcome the backend lacks"
    assert tracked.settled == ["t0"], "the task is no longer in flight"
    assert state(store, "t0") is TaskState.RUNNING, "left to its lease, so it runs again"
    [record] = caplog.records
    assert "could not record the outcome of 1 task(s) (t0)" in record.message
    assert "run again after their leases expire" in record.message
    assert record.exc_info is None, "an outage is one line (the traceback goes to DEBUG)"


def test_a_stop_now_gives_up_at_the_first_failure(clock: FakeClock, tracked: Tracked) -> None:
    store, stop, recorder, claim = retrying(clock, [ConnectionError("connection refused")])
    stop.set()
    recorder.submit(tracked.pending(claim))
    assert len(store.calls) == 1 and stop.waits == []
    assert tracked.settled == ["t0"] and tracked.applied == []


def test_a_stale_claim_is_not_applied_and_its_hook_does_not_run(
    clock: FakeClock, tracked: Tracked, caplog: pytest.LogCaptureFixture
) -> None:
    store = Store(clock=clock)
    recorder = plain(store)
    [stale] = claims(store, 1, lease=1.0)
    clock.advance(2.0)
    [current] = store.claim("g", "w2", 1, 60.0, 3).claims
    with caplog.at_level(logging.WARNING, logger="taskkit.worker"):
        recorder.submit(tracked.pending(stale))
    assert tracked.applied == [] and tracked.settled == ["t0"]
    assert "lease lost before its outcome was written" in caplog.text
    outcome = store.get_outcome("t0")
    assert outcome is not None and outcome.state is TaskState.RUNNING
    assert current.token != stale.token


def test_a_backend_answering_the_wrong_number_of_flags_is_reported(
    store: Store, tracked: Tracked, caplog: pytest.LogCaptureFixture
) -> None:
    store.answer_none = True
    recorder = plain(store)
    [claim] = claims(store, 1)
    with caplog.at_level(logging.ERROR, logger="taskkit.worker"):
        recorder.submit(tracked.pending(claim))
    assert "Store.record_outcomes answered 0 flags for 1 outcomes" in caplog.text
    assert tracked.applied == [] and tracked.settled == ["t0"]


def test_close_writes_what_is_queued_then_stops_the_thread(store: Store, tracked: Tracked) -> None:
    recorder = plain(store)
    recorder.start()
    first, *rest = claims(store, 4)
    store.gate = threading.Event()
    recorder.submit(tracked.pending(first), inline=False, wait=False)
    assert store.entered.wait(10)  # the recorder thread is writing the first
    for claim in rest:
        recorder.submit(tracked.pending(claim), inline=False, wait=False)
    closer = threading.Thread(target=recorder.close, kwargs={"timeout": 10}, daemon=True)
    closer.start()
    wait_until(lambda: recorder._queue.qsize() == 4)  # three outcomes, then the close marker
    store.gate.set()
    closer.join(10)
    assert not closer.is_alive() and not recorder._thread.is_alive()
    assert [size for size, _ in store.calls] == [1, 3]
    assert sorted(tracked.applied) == ["t0", "t1", "t2", "t3"]


def test_close_of_an_idle_recorder_stops_its_thread(store: Store) -> None:
    recorder = plain(store)
    recorder.start()
    recorder.close(timeout=10)
    assert not recorder._thread.is_alive()
