"""Fencing: a stale token never changes anything, so a cut-off worker cannot win."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import replace

import pytest
from taskkit import Backend, Claim, LeaseLost, LeaseStatus, Outcome, OutcomeWrite, TaskState

from .._base import BackendPool, KitTestBase, Timing
from ..helpers import (
    TaskMaker,
    claim_one,
    field_differences,
    outcome_of,
    raises,
    short,
    violated,
)

__all__ = ["STATE_CHANGES", "FencingTests"]

#: Every fenced state change, as ``name -> call(backend, claim)``.
STATE_CHANGES: dict[str, Callable[[Backend, Claim], None]] = {
    "complete": lambda b, c: b.complete(c, b"stale result"),
    "retry": lambda b, c: b.retry(c, b.now(), "stale retry"),
    "fail": lambda b, c: b.fail(c, "stale failure"),
    "discard": lambda b, c: b.discard(c, "stale discard"),
    "acknowledge_cancel": lambda b, c: b.acknowledge_cancel(c, "stale cancel"),
}


def _changes(before: Outcome | None, after: Outcome | None) -> str:
    """What changed between two reads of one task, in words ("" when nothing did)."""
    if before is None or after is None:
        return f"the record went from {short(before)} to {short(after)}"
    fields = {"state": before.state, "result": before.result, "error": before.error}
    return "; ".join(
        d
        for d in (field_differences(after, fields), field_differences(after.task, before.task))
        if d
    )


def _stale_and_current(
    backends: BackendPool, tasks: TaskMaker, timing: Timing
) -> tuple[Backend, Claim, Backend, Claim]:
    """A task claimed by worker 1 whose lease expired and that worker 2 then claimed: a stale
    claim and the current one (also used by the deferral topic)."""
    first, second = backends.primary, backends.new()
    task = tasks.one()
    first.put([task])
    stale = claim_one(first, task.group, "w1", timing.short_lease, 3)
    timing.advance_past(stale.lease_expires)
    batch = second.claim(task.group, "w2", 1, timing.long_lease, 3)
    assert batch.claims, violated("a task whose lease expired was not claimable by another worker")
    return first, stale, second, batch.claims[0]


class FencingTests(KitTestBase):
    """Completing, retrying, failing, discarding, cancelling or renewing with a stale token is
    rejected with ``LeaseLost`` (renew: LOST) and changes nothing."""

    @pytest.mark.parametrize("operation", sorted(STATE_CHANGES))
    def test_stale_token_is_rejected(
        self, operation: str, backends: BackendPool, tasks: TaskMaker, timing: Timing
    ) -> None:
        first, stale, second, current = _stale_and_current(backends, tasks, timing)
        before = second.get_outcome(current.task.id)
        with raises(LeaseLost, f"a stale fencing token was accepted by {operation}()"):
            STATE_CHANGES[operation](first, stale)
        after = second.get_outcome(current.task.id)
        assert not (diff := _changes(before, after)), violated(
            f"{operation}() with a stale token raised LeaseLost but changed the task", got=diff
        )
        second.complete(current, b"fresh")
        outcome_of(
            second,
            current.task.id,
            "the current claim's outcome must win over a stale one",
            state=TaskState.SUCCEEDED,
            result=b"fresh",
        )

    def test_stale_renew_is_lost_and_extends_nothing(
        self, backends: BackendPool, tasks: TaskMaker, timing: Timing
    ) -> None:
        first, stale, second, current = _stale_and_current(backends, tasks, timing)
        answer = first.renew([stale, current], timing.long_lease)
        assert answer == [LeaseStatus.LOST, LeaseStatus.OK], violated(
            "renew with a stale fencing token must answer LOST (and a current one OK)",
            got=[s.value for s in answer],
        )
        outcome_of(
            second,
            current.task.id,
            "a stale renew must leave the current claim's task RUNNING",
            state=TaskState.RUNNING,
        )
        second.complete(current, b"ok")

    @pytest.mark.parametrize("operation", sorted(STATE_CHANGES))
    def test_token_is_stale_once_the_task_finished(
        self, operation: str, backend: Backend, tasks: TaskMaker, timing: Timing
    ) -> None:
        task = tasks.one()
        backend.put([task])
        claim = claim_one(backend, task.group, "w1", timing.long_lease, 3)
        backend.complete(claim, b"first")
        before = backend.get_outcome(task.id)
        with raises(LeaseLost, f"{operation}() after the task finished was accepted"):
            STATE_CHANGES[operation](backend, claim)
        assert not (diff := _changes(before, backend.get_outcome(task.id))), violated(
            "a result never changes once written", got=diff
        )
        answer = backend.renew([claim], timing.long_lease)
        assert answer == [LeaseStatus.LOST], violated(
            "renew of a finished task's claim must answer LOST", got=[s.value for s in answer]
        )

    def test_token_is_stale_after_a_retry(
        self, backend: Backend, tasks: TaskMaker, timing: Timing
    ) -> None:
        task = tasks.one()
        backend.put([task])
        claim = claim_one(backend, task.group, "w1", timing.long_lease, 3)
        backend.retry(claim, timing.now() + timing.future, "again")
        with raises(LeaseLost, "a stale fencing token was accepted by complete() after retry()"):
            backend.complete(claim, b"late")
        outcome_of(
            backend,
            task.id,
            "a stale complete() after retry() must leave the task QUEUED",
            state=TaskState.QUEUED,
        )

    def test_token_is_stale_after_a_release(
        self, backend: Backend, tasks: TaskMaker, timing: Timing
    ) -> None:
        task = tasks.one()
        backend.put([task])
        claim = claim_one(backend, task.group, "w1", timing.long_lease, 3)
        backend.release([claim])
        with raises(LeaseLost, "a stale fencing token was accepted by fail() after release()"):
            backend.fail(claim, "late")

    def test_forged_token_is_rejected(
        self, backend: Backend, tasks: TaskMaker, timing: Timing
    ) -> None:
        task = tasks.one()
        backend.put([task])
        claim = claim_one(backend, task.group, "w1", timing.long_lease, 3)
        forged = replace(claim, token=secrets.token_hex(16))
        with raises(LeaseLost, "a forged fencing token was accepted by complete()"):
            backend.complete(forged, b"forged")
        answer = backend.renew([forged], timing.long_lease)
        assert answer == [LeaseStatus.LOST], violated(
            "renew with a forged fencing token must answer LOST", got=[s.value for s in answer]
        )
        backend.complete(claim, b"real")
        outcome_of(backend, task.id, "the real claim's result must be stored", result=b"real")

    def test_claim_of_an_unknown_task_is_rejected(
        self, backend: Backend, tasks: TaskMaker, timing: Timing
    ) -> None:
        ghost = Claim(tasks.one(), secrets.token_hex(16), timing.now() + 60, "w1")
        with raises(LeaseLost, "complete() of a task that does not exist was accepted"):
            backend.complete(ghost, b"")
        assert backend.get_outcome(ghost.task.id) is None, violated(
            "a rejected complete() of an unknown task must store nothing"
        )

    def test_record_outcomes_writes_each_like_its_primitive(
        self, backends: BackendPool, tasks: TaskMaker, timing: Timing
    ) -> None:
        first, stale, second, current = _stale_and_current(backends, tasks, timing)
        other_group = f"{tasks.group}-b"
        batch = tasks.many(3) + tasks.many(2, group=other_group)
        first.put(batch)
        claims = first.claim(tasks.group, "w1", 3, timing.long_lease, 3).claims
        claims += first.claim(other_group, "w1", 2, timing.long_lease, 3).claims
        assert len(claims) == 5, violated(
            "claim() must hand out as many due tasks as its limit allows (3 + 2)", got=len(claims)
        )
        due = timing.now() + timing.future
        writes = [
            OutcomeWrite(claims[0], "complete", b"\x00one\xff"),
            OutcomeWrite(claims[1], "fail", "Traceback: two"),
            OutcomeWrite(stale, "complete", b"stale"),
            OutcomeWrite(claims[2], "retry", "three again", due),
            OutcomeWrite(claims[3], "discard", "four unknown"),
            OutcomeWrite(claims[4], "acknowledge_cancel", "five stopped"),
        ]
        answer = first.record_outcomes(writes)
        assert answer == [True, True, False, True, True, True], violated(
            "record_outcomes must answer True for each applied write and False for a stale token",
            got=answer,
        )
        expected = {
            claims[0].task.id: (TaskState.SUCCEEDED, b"\x00one\xff", None),
            claims[1].task.id: (TaskState.FAILED, None, "Traceback: two"),
            claims[2].task.id: (TaskState.QUEUED, None, "three again"),
            claims[3].task.id: (TaskState.DISCARDED, None, "four unknown"),
            claims[4].task.id: (TaskState.CANCELLED, None, "five stopped"),
        }
        for task_id, (state, result, error) in expected.items():
            fields: dict[str, object] = {"state": state, "error": error}
            if result is not None:
                fields["result"] = result
            outcome_of(
                first,
                task_id,
                f"record_outcomes must leave the task {state.value} with its result and error "
                "text, as its primitive does",
                **fields,
            )
        retried = outcome_of(
            first,
            claims[2].task.id,
            "a batched retry must count the retry",
            task__retry_count=1,
        )
        assert abs(retried.task.due - due) < 1e-3, violated(
            "a batched retry keeps its due time", got=f"{retried.task.due - due:+.3f}s off"
        )
        outcome_of(
            second,
            current.task.id,
            "a stale write in a batch must change nothing",
            state=TaskState.RUNNING,
        )
        second.complete(current, b"fresh")

    def test_record_outcomes_applies_a_claim_once(
        self, backend: Backend, tasks: TaskMaker, timing: Timing
    ) -> None:
        task = tasks.one()
        backend.put([task])
        claim = claim_one(backend, task.group, "w1", timing.long_lease, 3)
        twice = [OutcomeWrite(claim, "complete", b"first"), OutcomeWrite(claim, "fail", "second")]
        answer = backend.record_outcomes(twice)
        assert answer == [True, False], violated(
            "a claim's token is stale once one outcome of it is written, even within one batch",
            got=answer,
        )
        outcome_of(
            backend, task.id, "the first write of a claim must be the one kept", result=b"first"
        )
        empty = backend.record_outcomes([])
        assert empty == [], violated("record_outcomes([]) must answer []", got=empty)
