"""Results and waiting: outcomes, prompt wake-ups, honoured timeouts, TTLs, Result.get."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from taskkit import (
    Backend,
    Cancelled,
    Claim,
    DeadLettered,
    Failed,
    Kit,
    NotFound,
    Outcome,
    Result,
    ResultGetTimedOut,
    TaskState,
)

from .._base import BackendPool, KitSettings, KitTestBase, Timing
from ..helpers import TaskMaker, claim_one, outcome_of, raises, result_value, violated, wait_until

__all__ = ["ResultTests", "WaitingTests"]

#: How each finishing operation ends a claimed task, and the state it must leave.
FINISHERS: dict[str, tuple[Callable[[Backend, Claim], None], TaskState]] = {
    "complete": (lambda b, c: b.complete(c, b"42"), TaskState.SUCCEEDED),
    "fail": (lambda b, c: b.fail(c, "Traceback: boom"), TaskState.FAILED),
    "discard": (lambda b, c: b.discard(c, "unknown task"), TaskState.DISCARDED),
    "acknowledge_cancel": (lambda b, c: b.acknowledge_cancel(c, "stopped"), TaskState.CANCELLED),
}


class ResultTests(KitTestBase):
    """Outcomes are stored once, kept for their TTL, and read back through ``Result.get``."""

    def test_complete_stores_the_result(
        self, backend: Backend, tasks: TaskMaker, timing: Timing
    ) -> None:
        task = tasks.one()
        backend.put([task])
        claim = claim_one(backend, task.group, "w1", timing.long_lease, 3)
        before = timing.now()
        backend.complete(claim, b"\x00result\xff")
        after = timing.now()
        outcome = outcome_of(
            backend,
            task.id,
            "complete() must make the task SUCCEEDED with its result stored byte for byte",
            state=TaskState.SUCCEEDED,
            result=b"\x00result\xff",
        )
        assert outcome.finished is not None and before - 1e-3 <= outcome.finished <= after + 1e-3, (
            violated(
                "an outcome's finished time must be the backend's time of finishing",
                got=f"finished={outcome.finished!r}, complete() ran in [{before!r}, {after!r}]",
            )
        )

    @pytest.mark.parametrize("operation", ["fail", "discard", "acknowledge_cancel"])
    def test_finishing_keeps_the_reason(
        self, operation: str, backend: Backend, tasks: TaskMaker, timing: Timing
    ) -> None:
        task = tasks.one()
        backend.put([task])
        claim = claim_one(backend, task.group, "w1", timing.long_lease, 3)
        finish, state = FINISHERS[operation]
        finish(backend, claim)
        outcome = outcome_of(
            backend,
            task.id,
            f"{operation}() must leave the task {state.value.upper()}",
            state=state,
        )
        assert outcome.error, violated(
            f"{operation}() must keep its reason in the outcome", got=outcome.error
        )
        assert outcome.finished is not None, violated(
            f"{operation}() must stamp the outcome's finished time"
        )

    def test_unknown_task_has_no_outcome(self, backend: Backend) -> None:
        outcome = backend.get_outcome("no-such-task-id")
        assert outcome is None, violated("get_outcome of an unknown id must be None", got=outcome)

    def test_result_expires_after_its_ttl(
        self, backend: Backend, tasks: TaskMaker, timing: Timing, kit_settings: KitSettings
    ) -> None:
        ttl = 120.0 if timing.fake else 1.0
        task = tasks.one(ttl=ttl)
        backend.put([task])
        claim = claim_one(backend, task.group, "w1", timing.long_lease, 3)
        backend.complete(claim, b"r")
        outcome = outcome_of(backend, task.id, "complete() must store the result", result=b"r")
        assert outcome.finished is not None, violated("complete() must stamp the finished time")
        if timing.fake:
            timing.advance_past(outcome.finished + ttl - 1.0)
            outcome_of(backend, task.id, "a result must be kept for its whole TTL", result=b"r")
        timing.advance_past(outcome.finished + ttl)
        wait_until(
            lambda: backend.get_outcome(task.id) is None,
            kit_settings.deadline(10.0),
            message="a finished record must be gone once its TTL passed",
        )
        answer = backend.put([task])
        assert answer == [True], violated(
            "an id must be usable again once its record expired", got=answer
        )

    def test_result_get_returns_the_decoded_value(
        self, kit: Kit, backend: Backend, timing: Timing, group: str
    ) -> None:
        result = kit.initiate_task(group, "add", {"a": 1}, due=timing.now())
        claim = claim_one(backend, group, "w1", timing.long_lease, 3)
        backend.complete(claim, kit.handler.encode_result(claim.task, {"sum": 3, "é": [1.5]}))
        value = result_value(result, 5, "Result.get must return a completed task's result")
        assert value == {"sum": 3, "é": [1.5]}, violated(
            "Result.get must return the decoded result", got=value
        )
        again = result_value(
            kit.get_result(result.id), 0, "Result.get(timeout=0) of a finished task must return"
        )
        assert again == value, violated("get_result(id) must read the same result", got=again)

    def test_result_get_raises_failed(
        self, kit: Kit, backend: Backend, timing: Timing, group: str
    ) -> None:
        result = kit.initiate_task(group, "boom", None, due=timing.now())
        claim = claim_one(backend, group, "w1", timing.long_lease, 3)
        backend.fail(claim, "Traceback (most recent call last):\nValueError: boom")
        with raises(Failed, "Result.get of a FAILED task must raise Failed") as info:
            _get(result, 5)
        assert not isinstance(info.value, (Cancelled, DeadLettered)), violated(
            "Result.get of a FAILED task must raise plain Failed", got=type(info.value).__name__
        )
        assert "ValueError: boom" in info.value.message, violated(
            "Failed.message must carry the stored failure text", got=info.value.message
        )
        assert info.value.task.id == result.id, violated(
            "Failed.task must be the failed task", got=info.value.task.id
        )

    def test_result_get_of_a_discarded_task_raises_not_found(
        self, kit: Kit, backend: Backend, timing: Timing, group: str
    ) -> None:
        result = kit.initiate_task(group, "unknown", None, due=timing.now())
        claim = claim_one(backend, group, "w1", timing.long_lease, 3)
        backend.discard(claim, "no handler")
        with raises(NotFound, "Result.get of a DISCARDED task must raise NotFound"):
            _get(result, 5)

    def test_result_get_of_an_unknown_task_raises_not_found(self, kit: Kit) -> None:
        started = time.monotonic()
        with raises(NotFound, "Result.get of an unknown task must raise NotFound"):
            _get(kit.get_result("never-initiated"), 30)
        assert time.monotonic() - started < 10, violated(
            "Result.get of an unknown task must raise NotFound at once, not wait"
        )

    def test_result_get_of_a_cancelled_task_raises_cancelled(
        self, kit: Kit, timing: Timing, group: str
    ) -> None:
        result = kit.initiate_task(group, "later", None, due=timing.now() + timing.future)
        kit.cancel(result.id)
        with raises(Cancelled, "Result.get of a CANCELLED task must raise Cancelled"):
            _get(result, 5)

    def test_result_get_of_a_dead_letter_raises_dead_lettered(
        self, kit: Kit, backend: Backend, timing: Timing, group: str
    ) -> None:
        result = kit.initiate_task(group, "poison", None, due=timing.now())
        claim = claim_one(backend, group, "w1", timing.short_lease, 1)
        timing.advance_past(claim.lease_expires)
        backend.claim(group, "w2", 1, timing.long_lease, 1)
        with raises(
            DeadLettered,
            "a task whose deliveries are exhausted must end DEAD, and Result.get then raises "
            "DeadLettered",
        ) as info:
            _get(result, 5)
        assert "worker lost" in info.value.message, violated(
            'a dead letter must keep its reason ("worker lost")', got=info.value.message
        )

    def test_result_get_times_out(
        self, kit: Kit, timing: Timing, group: str, kit_settings: KitSettings, record_property: Any
    ) -> None:
        result = kit.initiate_task(group, "never-run", None, due=timing.now())
        started = time.monotonic()
        with raises(ResultGetTimedOut, "Result.get of an unfinished task must time out"):
            _get(result, 0.5)
        took = time.monotonic() - started
        record_property("result_get_timeout_0.5s_took_s", round(took, 3))
        assert took >= 0.5 - 0.02, violated(
            "Result.get returned before its timeout (0.5s)", got=f"{took:.3f}s"
        )
        assert took <= 0.5 + kit_settings.deadline(2.0), violated(
            "Result.get must not wait much longer than its timeout (0.5s)", got=f"{took:.3f}s"
        )


class WaitingTests(KitTestBase):
    """Waiters block without polling hot, wake promptly, and never exceed their timeout."""

    @pytest.mark.parametrize("operation", sorted(FINISHERS))
    def test_waiter_wakes_when_the_task_finishes(
        self,
        operation: str,
        backends: BackendPool,
        tasks: TaskMaker,
        timing: Timing,
        kit_settings: KitSettings,
        record_property: Any,
    ) -> None:
        worker, watcher = backends.primary, backends.new()
        task = tasks.one()
        worker.put([task])
        claim = claim_one(worker, task.group, "w1", timing.long_lease, 3)
        timeout = kit_settings.deadline(10.0)
        waiter = _Waiter(watcher, task.id, timeout)
        waiter.start_and_settle()
        finish, state = FINISHERS[operation]
        finish(worker, claim)
        finished_at = time.monotonic()
        waiter.join(timeout + kit_settings.deadline(5.0))
        assert waiter.returned_at is not None, violated(
            f"wait_for_outcome never returned ({operation})"
        )
        latency = waiter.returned_at - finished_at
        record_property(f"wake_latency_{operation}_s", round(latency, 4))
        assert latency < timeout / 2, violated(
            f"wait_for_outcome did not wake when the task finished ({operation}): it returned "
            f"{latency:.2f}s later, with a {timeout:.0f}s timeout"
        )
        assert waiter.outcome is not None and waiter.outcome.state is state, violated(
            f"wait_for_outcome must return the finished outcome ({state.value})",
            got=waiter.outcome and waiter.outcome.state,
        )

    def test_waiter_sees_a_task_finished_before_it_waited(
        self, backend: Backend, tasks: TaskMaker, timing: Timing, kit_settings: KitSettings
    ) -> None:
        task = tasks.one()
        backend.put([task])
        claim = claim_one(backend, task.group, "w1", timing.long_lease, 3)
        backend.complete(claim, b"done")
        started = time.monotonic()
        outcome = backend.wait_for_outcome(task.id, kit_settings.deadline(10.0))
        assert time.monotonic() - started < kit_settings.deadline(2.0), violated(
            "wait_for_outcome of a finished task must return at once"
        )
        assert outcome is not None and outcome.result == b"done", violated(
            "wait_for_outcome of a finished task must return its outcome",
            got=outcome and outcome.result,
        )

    def test_wait_for_outcome_honours_its_timeout(
        self,
        backend: Backend,
        tasks: TaskMaker,
        kit_settings: KitSettings,
        record_property: Any,
    ) -> None:
        task = tasks.one()
        backend.put([task])
        started = time.monotonic()
        outcome = backend.wait_for_outcome(task.id, 0.5)
        took = time.monotonic() - started
        record_property("wait_for_outcome_0.5s_took_s", round(took, 3))
        assert outcome is not None and outcome.state is TaskState.QUEUED, violated(
            "wait_for_outcome must return the unfinished outcome when it times out",
            got=outcome and outcome.state,
        )
        assert took <= 0.5 + kit_settings.deadline(1.0), violated(
            f"wait_for_outcome(timeout=0.5) blocked for {took:.2f}s"
        )

    def test_wait_for_outcome_of_an_unknown_task_returns_none(
        self, backend: Backend, kit_settings: KitSettings
    ) -> None:
        started = time.monotonic()
        outcome = backend.wait_for_outcome("no-such-task", kit_settings.deadline(10.0))
        assert outcome is None, violated(
            "wait_for_outcome of an unknown task must return None", got=outcome
        )
        assert time.monotonic() - started < kit_settings.deadline(2.0), violated(
            "wait_for_outcome of an unknown task must return None at once"
        )

    def test_wait_for_work_honours_its_timeout(
        self, backend: Backend, group: str, kit_settings: KitSettings
    ) -> None:
        backend.claim(group, "w1", 1, 30.0, 3)
        started = time.monotonic()
        backend.wait_for_work(group, 0.3)
        assert time.monotonic() - started <= 0.3 + kit_settings.deadline(1.0), violated(
            "wait_for_work blocked longer than its timeout"
        )

    @pytest.mark.taskkit_requires("supports_notifications")
    def test_wait_for_work_wakes_on_put(
        self,
        backends: BackendPool,
        tasks: TaskMaker,
        timing: Timing,
        kit_settings: KitSettings,
        record_property: Any,
    ) -> None:
        claimer, producer = backends.primary, backends.new()
        group = tasks.group
        timeout = kit_settings.deadline(10.0)
        returned: list[float] = []
        ready = threading.Event()

        def claim_then_wait() -> None:
            claimer.claim(group, "w1", 1, timing.long_lease, 3)
            ready.set()
            claimer.wait_for_work(group, timeout)
            returned.append(time.monotonic())

        thread = threading.Thread(target=claim_then_wait, daemon=True)
        thread.start()
        ready.wait(timeout)
        _settle()
        producer.put([tasks.one()])
        put_at = time.monotonic()
        thread.join(timeout + kit_settings.deadline(5.0))
        assert returned, violated("wait_for_work never returned")
        latency = returned[0] - put_at
        record_property("work_wake_latency_s", round(latency, 4))
        assert latency < timeout / 2, violated(
            f"wait_for_work did not wake when work arrived ({latency:.2f}s after the put)"
        )

    @pytest.mark.taskkit_requires("supports_notifications")
    def test_wait_for_work_misses_no_put_after_the_last_claim(
        self, backends: BackendPool, tasks: TaskMaker, timing: Timing, kit_settings: KitSettings
    ) -> None:
        claimer, producer = backends.primary, backends.new()
        group = tasks.group
        first = claimer.claim(group, "w1", 1, timing.long_lease, 3)
        assert first.claims == [], violated("a claim of an empty group must hand out nothing")
        producer.put([tasks.one()])
        started = time.monotonic()
        claimer.wait_for_work(group, kit_settings.deadline(10.0))
        assert time.monotonic() - started < kit_settings.deadline(5.0), violated(
            "wait_for_work missed work put between the last claim and the wait"
        )

    def test_interrupt_waits_ends_a_blocked_wait_for_work(
        self, backend: Backend, tasks: TaskMaker, timing: Timing, kit_settings: KitSettings
    ) -> None:
        group = tasks.group
        # With no wait in progress it is harmless: nothing raises, claiming still works.
        backend.interrupt_waits()
        backend.put([tasks.one()])
        got = backend.claim(group, "w1", 1, timing.long_lease, 3)
        assert len(got.claims) == 1, violated(
            "interrupt_waits must leave the backend usable (a later claim hands out work)",
            got=f"{len(got.claims)} claim(s)",
        )
        if type(backend).interrupt_waits is Backend.interrupt_waits:
            pytest.skip("the backend keeps the default interrupt_waits: waits end by timeout")
        timeout = kit_settings.deadline(30.0)
        ready = threading.Event()
        returned: list[float] = []

        def claim_then_wait() -> None:
            backend.claim(group, "w1", 1, timing.long_lease, 3)
            ready.set()
            backend.wait_for_work(group, timeout)
            returned.append(time.monotonic())

        thread = threading.Thread(target=claim_then_wait, daemon=True)
        thread.start()
        ready.wait(timeout)
        _settle()
        backend.interrupt_waits()
        interrupted_at = time.monotonic()
        thread.join(timeout + kit_settings.deadline(5.0))
        assert returned, violated("interrupt_waits must end a blocked wait_for_work")
        assert returned[0] - interrupted_at < timeout / 3, violated(
            "interrupt_waits must end a blocked wait_for_work soon, not at its timeout",
            got=f"{returned[0] - interrupted_at:.2f}s after the call",
        )


def _get(result: Result[Any], timeout: float) -> Any:
    """``result.get`` for the tests that expect it to raise (``raises`` names the guarantee)."""
    return result.get(timeout=timeout)


def _settle() -> None:
    # Give a freshly started waiter thread a moment to block inside the backend; the tests
    # pass either way (a waiter that has not blocked yet sees the outcome at once), this only
    # makes the measured wake-up the interesting case.
    time.sleep(0.1)


class _Waiter(threading.Thread):
    def __init__(self, backend: Backend, task_id: str, timeout: float) -> None:
        super().__init__(daemon=True)
        self.backend, self.task_id, self.timeout = backend, task_id, timeout
        self.outcome: Outcome | None = None
        self.returned_at: float | None = None
        self._started = threading.Event()

    def run(self) -> None:
        self._started.set()
        self.outcome = self.backend.wait_for_outcome(self.task_id, self.timeout)
        self.returned_at = time.monotonic()

    def start_and_settle(self) -> None:
        self.start()
        self._started.wait(self.timeout)
        _settle()
