"""Deferral and burial: handing a claim back unrun (``defer``) and making it a dead letter
(``bury``), the two outcome actions a worker uses for task names it does not know yet."""

from __future__ import annotations

import threading
import time

import pytest
from taskkit import Backend, LeaseLost, Outcome, OutcomeWrite, TaskState

from .._base import BackendPool, KitSettings, KitTestBase, Timing
from ..helpers import TaskMaker, claim_one, field_differences, outcome_of, raises, violated
from .fencing import _stale_and_current

__all__ = ["DeferralTests"]

#: The reason the tests defer and bury with, as a worker that does not know the name would.
REASON = "unknown task: no handler for this name yet"


class DeferralTests(KitTestBase):
    """``defer`` queues a task again at a due time without counting the delivery or the retry;
    ``bury`` makes it a dead letter; both are fenced like every end of a claim."""

    # ------------------------------------------------------------------ defer

    def test_defer_queues_the_task_again_at_its_due_time(
        self, backend: Backend, tasks: TaskMaker, timing: Timing
    ) -> None:
        task = tasks.one()
        backend.put([task])
        claim = claim_one(backend, task.group, "w1", timing.long_lease, 3)
        due = timing.now() + timing.future
        answer = backend.record_outcomes([OutcomeWrite(claim, "defer", REASON, due)])
        assert answer == [True], violated(
            "record_outcomes must answer True for a defer of a current claim", got=answer
        )
        outcome = outcome_of(
            backend,
            task.id,
            "defer must put the task back to QUEUED with its reason as the last error",
            state=TaskState.QUEUED,
            error=REASON,
        )
        assert outcome.task.due == pytest.approx(due, abs=1e-3), violated(
            "defer must store the due time it was given", got=f"{outcome.task.due - due:+.3f}s off"
        )
        batch = backend.claim(task.group, "w1", 1, timing.long_lease, 3)
        if timing.now() < due:
            assert batch.claims == [], violated("a deferred task was claimed before its due time")
            assert batch.next_due == pytest.approx(due, abs=1e-3), violated(
                "claim's next_due must name a deferred task's due time", got=batch.next_due
            )
        timing.advance_past(due)
        again = claim_one(
            backend,
            task.group,
            "w2",
            timing.long_lease,
            3,
            "a deferred task must be claimable once its due time passed",
        )
        assert again.task.deliveries == 1, violated(
            "the claim after a defer counts one delivery (the deferred one was handed back)",
            got=again.task.deliveries,
        )
        backend.complete(again, b"ran once known")

    def test_defer_hands_back_the_delivery_of_its_claim(
        self, backend: Backend, tasks: TaskMaker, timing: Timing
    ) -> None:
        task = tasks.one()
        backend.put([task])
        lost = claim_one(backend, task.group, "w1", timing.short_lease, 3)
        timing.advance_past(lost.lease_expires)
        reclaimed = claim_one(
            backend,
            task.group,
            "w2",
            timing.long_lease,
            3,
            "a task whose lease expired must be claimable by another worker",
        )
        assert reclaimed.task.deliveries == 2, violated(
            "a reclaim must count another delivery", got=reclaimed.task.deliveries
        )
        backend.defer(reclaimed, timing.now(), REASON)
        outcome_of(
            backend,
            task.id,
            "defer must take back only its own claim's delivery: the lost one stays counted",
            state=TaskState.QUEUED,
            task__deliveries=1,
        )

    def test_a_task_deferred_again_and_again_is_never_dead_lettered(
        self, backend: Backend, tasks: TaskMaker, timing: Timing
    ) -> None:
        task = tasks.one()
        backend.put([task])
        max_deliveries = 3
        for n in range(max_deliveries + 2):
            claim = claim_one(
                backend,
                task.group,
                "w1",
                timing.long_lease,
                max_deliveries,
                f"a task deferred to now must be claimable at once (round {n + 1})",
            )
            assert claim.task.deliveries == 1, violated(
                "a deferred delivery must not be counted",
                got=f"{claim.task.deliveries} deliveries at claim {n + 1} (deferred {n} times)",
            )
            backend.defer(claim, timing.now(), REASON)
        last = claim_one(backend, task.group, "w1", timing.short_lease, max_deliveries)
        timing.advance_past(last.lease_expires)
        batch = backend.claim(task.group, "w2", 1, timing.long_lease, max_deliveries)
        delivered = [c.task.id for c in batch.claims] == [task.id] and not batch.dead_lettered
        assert delivered, violated(
            f"a task deferred {max_deliveries + 2} times, then lost once, must still be "
            f"delivered (max_deliveries {max_deliveries})",
            got=f"{len(batch.claims)} claim(s), {len(batch.dead_lettered)} dead-lettered",
        )
        backend.complete(batch.claims[0], b"")

    def test_defer_keeps_the_retry_count(
        self, backend: Backend, tasks: TaskMaker, timing: Timing
    ) -> None:
        task = tasks.one()
        backend.put([task])
        first = claim_one(backend, task.group, "w1", timing.long_lease, 3)
        backend.retry(first, timing.now(), "ValueError: try again")
        second = claim_one(
            backend,
            task.group,
            "w1",
            timing.long_lease,
            3,
            "a task retried with a due time of now must be claimable at once",
        )
        backend.defer(second, timing.now(), REASON)
        outcome_of(
            backend,
            task.id,
            "defer must leave the retry count as it was (1 retry)",
            state=TaskState.QUEUED,
            task__retry_count=1,
        )
        third = claim_one(
            backend,
            task.group,
            "w1",
            timing.long_lease,
            3,
            "a task deferred to now must be claimable at once",
        )
        assert third.task.retry_count == 1, violated(
            "the claim after a defer carries the unchanged retry count", got=third.task.retry_count
        )
        backend.complete(third, b"")

    @pytest.mark.taskkit_requires("supports_notifications")
    def test_defer_wakes_the_groups_waiting_claimers(
        self, backends: BackendPool, tasks: TaskMaker, timing: Timing, kit_settings: KitSettings
    ) -> None:
        claimer, worker = backends.primary, backends.new()
        task = tasks.one()
        worker.put([task])
        claim = claim_one(worker, task.group, "w1", timing.long_lease, 3)
        timeout = kit_settings.deadline(10.0)
        ready = threading.Event()
        returned: list[float] = []

        def claim_then_wait() -> None:
            claimer.claim(task.group, "w2", 1, timing.long_lease, 3)  # nothing: the task is held
            ready.set()
            claimer.wait_for_work(task.group, timeout)
            returned.append(time.monotonic())

        thread = threading.Thread(target=claim_then_wait, daemon=True)
        thread.start()
        ready.wait(timeout)
        worker.defer(claim, worker.now(), REASON)
        deferred_at = time.monotonic()
        thread.join(timeout + kit_settings.deadline(5.0))
        assert returned, violated("wait_for_work never returned after a defer")
        assert returned[0] - deferred_at < timeout / 2, violated(
            "a defer must wake the group's waiting claimers, as a put does",
            got=f"woke {returned[0] - deferred_at:.2f}s after the defer",
        )
        again = claim_one(
            claimer,
            task.group,
            "w2",
            timing.long_lease,
            3,
            "the woken claimer must find the task deferred to now",
        )
        claimer.complete(again, b"")

    # ------------------------------------------------------------------ bury

    def test_bury_makes_a_dead_letter_that_can_be_requeued(
        self, backend: Backend, tasks: TaskMaker, timing: Timing
    ) -> None:
        task = tasks.one()
        backend.put([task])
        claim = claim_one(backend, task.group, "w1", timing.long_lease, 3)
        answer = backend.record_outcomes([OutcomeWrite(claim, "bury", REASON)])
        assert answer == [True], violated(
            "record_outcomes must answer True for a bury of a current claim", got=answer
        )
        outcome = outcome_of(
            backend,
            task.id,
            "bury must make the task DEAD with its reason",
            state=TaskState.DEAD,
            error=REASON,
        )
        assert outcome.finished is not None, violated("a buried task must stamp its finished time")
        listed = [o.task.id for o in backend.list_dead_letters(task.group)]
        assert listed == [task.id], violated(
            "a buried task must be listed by list_dead_letters", got=listed
        )
        again = backend.record_outcomes([OutcomeWrite(claim, "bury", "twice")])
        assert again == [False], violated(
            "a buried task's claim is stale: a second write must answer False", got=again
        )
        requeued = backend.requeue_dead_letter(task.id)
        assert requeued is True, violated(
            "requeue_dead_letter of a buried task must answer True", got=requeued
        )
        revived = claim_one(
            backend,
            task.group,
            "w2",
            timing.long_lease,
            3,
            "a requeued buried task must be claimable at once",
        )
        assert revived.task.deliveries == 1, violated(
            "a requeued buried task starts with 0 deliveries",
            got=f"{revived.task.deliveries} deliveries at its first claim",
        )
        backend.complete(revived, b"known at last")
        outcome_of(
            backend,
            task.id,
            "a requeued buried task runs like any other",
            state=TaskState.SUCCEEDED,
            result=b"known at last",
        )

    @pytest.mark.taskkit_requires("supports_notifications")
    def test_bury_wakes_the_tasks_result_waiters(
        self, backends: BackendPool, tasks: TaskMaker, timing: Timing, kit_settings: KitSettings
    ) -> None:
        observer, worker = backends.primary, backends.new()
        task = tasks.one()
        worker.put([task])
        claim = claim_one(worker, task.group, "w1", timing.long_lease, 3)
        timeout = kit_settings.deadline(10.0)
        seen: list[tuple[Outcome | None, float]] = []
        waiter = threading.Thread(
            target=lambda: seen.append(
                (observer.wait_for_outcome(task.id, timeout), time.monotonic())
            ),
            daemon=True,
        )
        waiter.start()
        worker.bury(claim, REASON)
        buried_at = time.monotonic()
        waiter.join(timeout + kit_settings.deadline(5.0))
        assert seen, violated("wait_for_outcome never returned after a bury")
        outcome, woke = seen[0][0], seen[0][1]
        assert outcome is not None and outcome.state is TaskState.DEAD, violated(
            "wait_for_outcome must answer the buried task's DEAD outcome", got=outcome
        )
        assert woke - buried_at < timeout / 2, violated(
            "a bury must wake the task's result waiters, as every finish does",
            got=f"woke {woke - buried_at:.2f}s after the bury",
        )

    # ------------------------------------------------------------------ both

    @pytest.mark.parametrize("action", ["defer", "bury"])
    def test_a_stale_token_is_rejected(
        self, action: str, backends: BackendPool, tasks: TaskMaker, timing: Timing
    ) -> None:
        first, stale, second, current = _stale_and_current(backends, tasks, timing)
        before = second.get_outcome(current.task.id)
        due = timing.now() if action == "defer" else None
        answer = first.record_outcomes([OutcomeWrite(stale, action, REASON, due)])  # type: ignore[arg-type]
        assert answer == [False], violated(
            f"record_outcomes must answer False for a {action} with a stale token", got=answer
        )
        with raises(LeaseLost, f"a stale fencing token was accepted by {action}()"):
            if action == "defer":
                first.defer(stale, timing.now(), REASON)
            else:
                first.bury(stale, REASON)
        after = second.get_outcome(current.task.id)
        assert after is not None and not (diff := field_differences(after, before)), violated(
            f"a {action} with a stale token must change nothing",
            got=diff if after is not None else "the record is gone",
        )
        assert second.list_dead_letters(tasks.group) == [], violated(
            f"a {action} with a stale token must not make a dead letter"
        )
        second.complete(current, b"fresh")

    def test_defer_and_bury_in_one_batch_with_the_other_actions(
        self, backends: BackendPool, tasks: TaskMaker, timing: Timing
    ) -> None:
        first, stale, second, current = _stale_and_current(backends, tasks, timing)
        other_group = f"{tasks.group}-b"
        first.put(tasks.many(2) + tasks.many(2, group=other_group))
        claims = first.claim(tasks.group, "w1", 2, timing.long_lease, 3).claims
        claims += first.claim(other_group, "w1", 2, timing.long_lease, 3).claims
        assert len(claims) == 4, violated(
            "claim() must hand out as many due tasks as its limit allows (2 + 2)", got=len(claims)
        )
        due = timing.now() + timing.future
        writes = [
            OutcomeWrite(claims[0], "defer", "deferred a", due),
            OutcomeWrite(claims[1], "complete", b"done b"),
            OutcomeWrite(stale, "bury", "stale"),
            OutcomeWrite(claims[2], "bury", "buried c"),
            OutcomeWrite(claims[3], "defer", "deferred d", due),
        ]
        answer = first.record_outcomes(writes)
        assert answer == [True, True, False, True, True], violated(
            "record_outcomes must answer each write of a mixed batch in order (a stale one False)",
            got=answer,
        )
        expected = {
            claims[0].task.id: (TaskState.QUEUED, "deferred a"),
            claims[1].task.id: (TaskState.SUCCEEDED, None),
            claims[2].task.id: (TaskState.DEAD, "buried c"),
            claims[3].task.id: (TaskState.QUEUED, "deferred d"),
        }
        for task_id, (state, error) in expected.items():
            outcome_of(
                first,
                task_id,
                f"a batched write must leave the task {state.value} with its reason, as its "
                "single-claim method does",
                state=state,
                error=error,
                task__deliveries=0 if state is TaskState.QUEUED else 1,
            )
        outcome_of(
            second,
            current.task.id,
            "a stale write in a batch must change nothing",
            state=TaskState.RUNNING,
        )
        second.complete(current, b"fresh")

    def test_a_defer_without_a_due_time_writes_nothing(
        self, backend: Backend, tasks: TaskMaker, timing: Timing
    ) -> None:
        made = tasks.many(2)
        backend.put(made)
        claims = backend.claim(tasks.group, "w1", 2, timing.long_lease, 3).claims
        assert len(claims) == 2, violated(
            "claim() must hand out as many due tasks as its limit allows (2)", got=len(claims)
        )
        batch = [OutcomeWrite(claims[0], "bury", REASON), OutcomeWrite(claims[1], "defer", REASON)]
        with raises(ValueError, "record_outcomes must refuse a defer without a due time"):
            backend.record_outcomes(batch)
        for claim in claims:
            outcome_of(
                backend,
                claim.task.id,
                "a refused batch must write nothing, not even its valid writes",
                state=TaskState.RUNNING,
            )
        backend.record_outcomes([OutcomeWrite(c, "complete", b"") for c in claims])
