"""Fencing: a stale token never changes anything, so a cut-off worker cannot win."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import replace

import pytest
from taskkit import Backend, Claim, LeaseLost, LeaseStatus, Outcome, OutcomeWrite, TaskState

from .._base import BackendPool, KitTestBase, Timing
from ..helpers import TaskMaker, violated

__all__ = ["STATE_CHANGES", "FencingTests"]

#: Every fenced state change, as ``name -> call(backend, claim)``.
STATE_CHANGES: dict[str, Callable[[Backend, Claim], None]] = {
    "complete": lambda b, c: b.complete(c, b"stale result"),
    "retry": lambda b, c: b.retry(c, b.now(), "stale retry"),
    "fail": lambda b, c: b.fail(c, "stale failure"),
    "discard": lambda b, c: b.discard(c, "stale discard"),
    "acknowledge_cancel": lambda b, c: b.acknowledge_cancel(c, "stale cancel"),
}


def _same(a: Outcome | None, b: Outcome | None) -> bool:
    return (
        a is not None
        and b is not None
        and (a.state, a.result, a.error, a.task)
        == (
            b.state,
            b.result,
            b.error,
            b.task,
        )
    )


class FencingTests(KitTestBase):
    """Completing, retrying, failing, discarding, cancelling or renewing with a stale token is
    rejected with ``LeaseLost`` (renew: LOST) and changes nothing."""

    def _stale_and_current(
        self, backends: BackendPool, tasks: TaskMaker, timing: Timing
    ) -> tuple[Backend, Claim, Backend, Claim]:
        """A task claimed by worker 1 whose lease expired and that worker 2 then claimed."""
        first, second = backends.primary, backends.new()
        task = tasks.one()
        first.put([task])
        (stale,) = first.claim(task.group, "w1", 1, timing.short_lease, 3).claims
        timing.advance_past(stale.lease_expires)
        batch = second.claim(task.group, "w2", 1, timing.long_lease, 3)
        assert batch.claims, violated(
            "a task whose lease expired was not claimable by another worker"
        )
        return first, stale, second, batch.claims[0]

    @pytest.mark.parametrize("operation", sorted(STATE_CHANGES))
    def test_stale_token_is_rejected(
        self, operation: str, backends: BackendPool, tasks: TaskMaker, timing: Timing
    ) -> None:
        first, stale, second, current = self._stale_and_current(backends, tasks, timing)
        before = second.get_outcome(current.task.id)
        with pytest.raises(LeaseLost):
            STATE_CHANGES[operation](first, stale)
            pytest.fail(violated(f"a stale fencing token was accepted by {operation}()"))
        after = second.get_outcome(current.task.id)
        assert _same(before, after), violated(
            f"{operation}() with a stale token raised LeaseLost but changed the task"
        )
        second.complete(current, b"fresh")
        final = second.get_outcome(current.task.id)
        assert final is not None and final.state is TaskState.SUCCEEDED
        assert final.result == b"fresh", violated("the current claim's outcome must win")

    def test_stale_renew_is_lost_and_extends_nothing(
        self, backends: BackendPool, tasks: TaskMaker, timing: Timing
    ) -> None:
        first, stale, second, current = self._stale_and_current(backends, tasks, timing)
        assert first.renew([stale, current], timing.long_lease) == [
            LeaseStatus.LOST,
            LeaseStatus.OK,
        ], violated("renew with a stale fencing token must answer LOST (and a current one OK)")
        outcome = second.get_outcome(current.task.id)
        assert outcome is not None and outcome.state is TaskState.RUNNING
        second.complete(current, b"ok")

    @pytest.mark.parametrize("operation", sorted(STATE_CHANGES))
    def test_token_is_stale_once_the_task_finished(
        self, operation: str, backend: Backend, tasks: TaskMaker, timing: Timing
    ) -> None:
        task = tasks.one()
        backend.put([task])
        (claim,) = backend.claim(task.group, "w1", 1, timing.long_lease, 3).claims
        backend.complete(claim, b"first")
        before = backend.get_outcome(task.id)
        with pytest.raises(LeaseLost):
            STATE_CHANGES[operation](backend, claim)
            pytest.fail(violated(f"{operation}() after the task finished was accepted"))
        assert _same(before, backend.get_outcome(task.id)), violated(
            "a result never changes once written"
        )
        assert backend.renew([claim], timing.long_lease) == [LeaseStatus.LOST]

    def test_token_is_stale_after_a_retry(
        self, backend: Backend, tasks: TaskMaker, timing: Timing
    ) -> None:
        task = tasks.one()
        backend.put([task])
        (claim,) = backend.claim(task.group, "w1", 1, timing.long_lease, 3).claims
        backend.retry(claim, timing.now() + timing.future, "again")
        with pytest.raises(LeaseLost):
            backend.complete(claim, b"late")
            pytest.fail(violated("a stale fencing token was accepted by complete() after retry()"))
        outcome = backend.get_outcome(task.id)
        assert outcome is not None and outcome.state is TaskState.QUEUED

    def test_token_is_stale_after_a_release(
        self, backend: Backend, tasks: TaskMaker, timing: Timing
    ) -> None:
        task = tasks.one()
        backend.put([task])
        (claim,) = backend.claim(task.group, "w1", 1, timing.long_lease, 3).claims
        backend.release([claim])
        with pytest.raises(LeaseLost):
            backend.fail(claim, "late")
            pytest.fail(violated("a stale fencing token was accepted by fail() after release()"))

    def test_forged_token_is_rejected(
        self, backend: Backend, tasks: TaskMaker, timing: Timing
    ) -> None:
        task = tasks.one()
        backend.put([task])
        (claim,) = backend.claim(task.group, "w1", 1, timing.long_lease, 3).claims
        forged = replace(claim, token=secrets.token_hex(16))
        with pytest.raises(LeaseLost):
            backend.complete(forged, b"forged")
            pytest.fail(violated("a forged fencing token was accepted by complete()"))
        assert backend.renew([forged], timing.long_lease) == [LeaseStatus.LOST]
        backend.complete(claim, b"real")
        outcome = backend.get_outcome(task.id)
        assert outcome is not None and outcome.result == b"real"

    def test_claim_of_an_unknown_task_is_rejected(
        self, backend: Backend, tasks: TaskMaker, timing: Timing
    ) -> None:
        ghost = Claim(tasks.one(), secrets.token_hex(16), timing.now() + 60, "w1")
        with pytest.raises(LeaseLost):
            backend.complete(ghost, b"")
            pytest.fail(violated("complete() of a task that does not exist was accepted"))
        assert backend.get_outcome(ghost.task.id) is None

    def test_record_outcomes_writes_each_like_its_primitive(
        self, backends: BackendPool, tasks: TaskMaker, timing: Timing
    ) -> None:
        first, stale, second, current = self._stale_and_current(backends, tasks, timing)
        other_group = f"{tasks.group}-b"
        batch = tasks.many(3) + tasks.many(2, group=other_group)
        first.put(batch)
        claims = first.claim(tasks.group, "w1", 3, timing.long_lease, 3).claims
        claims += first.claim(other_group, "w1", 2, timing.long_lease, 3).claims
        assert len(claims) == 5
        due = timing.now() + timing.future
        writes = [
            OutcomeWrite(claims[0], "complete", b"\x00one\xff"),
            OutcomeWrite(claims[1], "fail", "Traceback: two"),
            OutcomeWrite(stale, "complete", b"stale"),
            OutcomeWrite(claims[2], "retry", "three again", due),
            OutcomeWrite(claims[3], "discard", "four unknown"),
            OutcomeWrite(claims[4], "acknowledge_cancel", "five stopped"),
        ]
        assert first.record_outcomes(writes) == [True, True, False, True, True, True], violated(
            "record_outcomes must answer True for each applied write and False for a stale token"
        )
        expected = {
            claims[0].task.id: (TaskState.SUCCEEDED, b"\x00one\xff", None),
            claims[1].task.id: (TaskState.FAILED, None, "Traceback: two"),
            claims[2].task.id: (TaskState.QUEUED, None, "three again"),
            claims[3].task.id: (TaskState.DISCARDED, None, "four unknown"),
            claims[4].task.id: (TaskState.CANCELLED, None, "five stopped"),
        }
        for task_id, (state, result, error) in expected.items():
            outcome = first.get_outcome(task_id)
            assert outcome is not None and outcome.state is state, violated(
                f"record_outcomes must leave the task {state.value}, as its primitive does"
            )
            if result is not None:
                assert outcome.result == result, violated("a result must be stored byte for byte")
            assert outcome.error == error, violated("record_outcomes must keep the error text")
        retried = first.get_outcome(claims[2].task.id)
        assert retried is not None and retried.task.retry_count == 1
        assert abs(retried.task.due - due) < 1e-3, violated("a batched retry keeps its due time")
        untouched = second.get_outcome(current.task.id)
        assert untouched is not None and untouched.state is TaskState.RUNNING, violated(
            "a stale write in a batch must change nothing"
        )
        second.complete(current, b"fresh")

    def test_record_outcomes_applies_a_claim_once(
        self, backend: Backend, tasks: TaskMaker, timing: Timing
    ) -> None:
        task = tasks.one()
        backend.put([task])
        (claim,) = backend.claim(task.group, "w1", 1, timing.long_lease, 3).claims
        twice = [OutcomeWrite(claim, "complete", b"first"), OutcomeWrite(claim, "fail", "second")]
        assert backend.record_outcomes(twice) == [True, False], violated(
            "a claim's token is stale once one outcome of it is written, even within one batch"
        )
        outcome = backend.get_outcome(task.id)
        assert outcome is not None and outcome.result == b"first"
        assert backend.record_outcomes([]) == []
