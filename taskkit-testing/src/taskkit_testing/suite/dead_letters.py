"""Retries, bounded deliveries and dead letters."""

from __future__ import annotations

import pytest
from taskkit import Backend, TaskState

from .._base import BackendPool, KitTestBase, Timing
from ..helpers import TaskMaker, claim_one, outcome_of, violated, wait_until

__all__ = ["DeadLetterTests", "RetryTests"]


class RetryTests(KitTestBase):
    """``retry`` puts a task back at a later due time and starts a fresh attempt."""

    def test_retry_requeues_at_the_given_due_time(
        self, backend: Backend, tasks: TaskMaker, timing: Timing
    ) -> None:
        task = tasks.one()
        backend.put([task])
        claim = claim_one(backend, task.group, "w1", timing.long_lease, 3)
        due = timing.now() + timing.future
        backend.retry(claim, due, "ValueError: try again")
        outcome = outcome_of(
            backend,
            task.id,
            "retry must put the task back to QUEUED, count the retry, reset the deliveries and "
            "keep the failure text as the last error",
            state=TaskState.QUEUED,
            task__retry_count=1,
            task__deliveries=0,
            error="ValueError: try again",
        )
        assert outcome.task.due == pytest.approx(due, abs=1e-3), violated(
            "retry must store the due time it was given", got=f"{outcome.task.due - due:+.3f}s off"
        )
        batch = backend.claim(task.group, "w1", 1, timing.long_lease, 3)
        if timing.now() < due:
            assert batch.claims == [], violated("a retried task was claimed before its due time")
        timing.advance_past(due)
        again = claim_one(
            backend,
            task.group,
            "w2",
            timing.long_lease,
            3,
            "a retried task must be claimable once its due time passed",
        )
        assert (again.task.retry_count, again.task.deliveries) == (1, 1), violated(
            "the claim of a retried task carries its retry count and one fresh delivery",
            got=(again.task.retry_count, again.task.deliveries),
        )
        backend.complete(again, b"ok")

    def test_retries_accumulate(self, backend: Backend, tasks: TaskMaker, timing: Timing) -> None:
        task = tasks.one()
        backend.put([task])
        for n in range(1, 4):
            claim = claim_one(
                backend,
                task.group,
                "w1",
                timing.long_lease,
                3,
                "a task retried with a due time of now must be claimable at once",
            )
            assert claim.task.retry_count == n - 1, violated(
                "each retry must count once", got=claim.task.retry_count
            )
            backend.retry(claim, timing.now(), f"attempt {n}")
        outcome_of(backend, task.id, "three retries must count 3", task__retry_count=3)

    def test_retry_starts_a_fresh_delivery_count(
        self, backend: Backend, tasks: TaskMaker, timing: Timing
    ) -> None:
        task = tasks.one()
        backend.put([task])
        first = claim_one(backend, task.group, "w1", timing.short_lease, 2)
        timing.advance_past(first.lease_expires)
        second = claim_one(
            backend,
            task.group,
            "w2",
            timing.long_lease,
            2,
            "a task whose lease expired must be claimable by another worker",
        )
        assert second.task.deliveries == 2, violated(
            "a reclaim must count another delivery", got=second.task.deliveries
        )
        backend.retry(second, timing.now(), "retry")
        third = claim_one(
            backend,
            task.group,
            "w3",
            timing.short_lease,
            2,
            "a task retried with a due time of now must be claimable at once",
        )
        assert third.task.deliveries == 1, violated(
            "deliveries count one attempt: a retry must reset them", got=third.task.deliveries
        )
        timing.advance_past(third.lease_expires)
        batch = backend.claim(task.group, "w4", 1, timing.long_lease, 2)
        assert [c.task.id for c in batch.claims] == [task.id], violated(
            "a task was dead-lettered for deliveries of an earlier attempt"
        )


class DeadLetterTests(KitTestBase):
    """A task that keeps losing its worker ends DEAD ("worker lost"); dead letters are listed,
    re-queued on request and expire with their TTL."""

    def _kill_until_dead(
        self, backends: BackendPool, tasks: TaskMaker, timing: Timing, max_deliveries: int
    ) -> tuple[str, list[int]]:
        """Deliver a task ``max_deliveries`` times to workers that die; the next claim buries it."""
        task = tasks.one()
        backends.primary.put([task])
        deliveries = []
        for n in range(max_deliveries):
            backend = backends.new()
            batch = backend.claim(task.group, f"dying-{n}", 1, timing.short_lease, max_deliveries)
            assert [c.task.id for c in batch.claims] == [task.id], violated(
                f"delivery {n + 1} of {max_deliveries} did not happen"
            )
            deliveries.append(batch.claims[0].task.deliveries)
            timing.advance_past(batch.claims[0].lease_expires)
        return task.id, deliveries

    def test_exhausted_deliveries_make_a_dead_letter(
        self, backends: BackendPool, tasks: TaskMaker, timing: Timing
    ) -> None:
        task_id, deliveries = self._kill_until_dead(backends, tasks, timing, 3)
        assert deliveries == [1, 2, 3], violated(
            "each reclaim must count one more delivery", got=deliveries
        )
        batch = backends.new().claim(tasks.group, "survivor", 5, timing.long_lease, 3)
        assert batch.claims == [], violated(
            "a task was delivered again after max_deliveries deliveries"
        )
        assert [o.task.id for o in batch.dead_lettered] == [task_id], violated(
            "the claim that dead-letters a task must report it in dead_lettered"
        )
        outcome = outcome_of(
            backends.primary,
            task_id,
            "a task whose deliveries are exhausted must end DEAD",
            state=TaskState.DEAD,
        )
        assert outcome.error is not None and "worker lost" in outcome.error, violated(
            'a dead letter must keep its reason ("worker lost")', got=outcome.error
        )
        assert outcome.finished is not None, violated("a dead letter must stamp its finished time")

    def test_release_worker_deaths_count_too(
        self, backends: BackendPool, tasks: TaskMaker, timing: Timing
    ) -> None:
        backend = backends.primary
        task = tasks.one()
        backend.put([task])
        for n in range(2):
            claim_one(
                backend,
                task.group,
                f"proc-{n}",
                timing.long_lease,
                2,
                f"delivery {n + 1} of 2 of a task whose worker died must happen",
            )
            released = backend.release_worker(f"proc-{n}")
            assert released == 1, violated(
                "release_worker must expire the dead worker's one lease", got=released
            )
        batch = backend.claim(task.group, "proc-2", 1, timing.long_lease, 2)
        assert batch.claims == [] and len(batch.dead_lettered) == 1, violated(
            "a task whose workers keep dying must become a dead letter after max_deliveries",
            got=f"{len(batch.claims)} claim(s), {len(batch.dead_lettered)} dead-lettered",
        )

    def test_dead_letters_are_listed_newest_first(
        self, backends: BackendPool, tasks: TaskMaker, timing: Timing
    ) -> None:
        backend = backends.primary
        made = []
        for n in range(3):
            task = tasks.one()
            backend.put([task])
            claim_one(backend, task.group, f"p{n}", timing.long_lease, 1)
            backend.release_worker(f"p{n}")
            timing.pass_seconds(0.01)
            backend.claim(task.group, "reaper", 1, timing.long_lease, 1)
            made.append(task.id)
        other = tasks.one(group=tasks.group + "-x")
        backend.put([other])
        backend.claim(other.group, "q", 1, timing.long_lease, 1)
        backend.release_worker("q")
        backend.claim(other.group, "reaper", 1, timing.long_lease, 1)
        listed = [o.task.id for o in backend.list_dead_letters(tasks.group)]
        assert listed == list(reversed(made)), violated(
            "list_dead_letters(group) must list the group's dead letters, newest first",
            got=f"{len(listed)} listed of {len(made)}",
        )
        limited = [o.task.id for o in backend.list_dead_letters(tasks.group, limit=2)]
        assert limited == listed[:2], violated(
            "list_dead_letters(group, limit=2) must list the two newest", got=limited
        )
        everything = {o.task.id for o in backend.list_dead_letters(None, limit=10_000)}
        assert set(made) | {other.id} <= everything, violated(
            "list_dead_letters(None) must list the dead letters of every group",
            got=f"{len(set(made) | {other.id} - everything)} missing",
        )
        states = {o.state for o in backend.list_dead_letters(tasks.group)}
        assert states == {TaskState.DEAD}, violated(
            "list_dead_letters must list DEAD tasks only", got=states
        )

    def test_requeue_dead_letter(
        self, backends: BackendPool, tasks: TaskMaker, timing: Timing
    ) -> None:
        task_id, _ = self._kill_until_dead(backends, tasks, timing, 1)
        backend = backends.primary
        batch = backend.claim(tasks.group, "reaper", 1, timing.long_lease, 1)
        assert [o.task.id for o in batch.dead_lettered] == [task_id], violated(
            "a task delivered max_deliveries times whose lease expired must be dead-lettered by "
            "the next claim",
            got=f"{len(batch.claims)} claim(s), {len(batch.dead_lettered)} dead-lettered",
        )
        answer = backend.requeue_dead_letter(task_id)
        assert answer is True, violated(
            "requeue_dead_letter of a dead letter must answer True", got=answer
        )
        outcome_of(
            backend,
            task_id,
            "requeue_dead_letter must put the task back to QUEUED",
            state=TaskState.QUEUED,
        )
        left = backend.list_dead_letters(tasks.group)
        assert left == [], violated(
            "a re-queued dead letter is no longer listed", got=[o.task.id for o in left]
        )
        answer = backend.requeue_dead_letter(task_id)
        assert answer is False, violated(
            "requeue_dead_letter of a task that is not a dead letter must answer False",
            got=answer,
        )
        claim = claim_one(
            backend,
            tasks.group,
            "w",
            timing.long_lease,
            1,
            "a re-queued dead letter must be claimable at once",
        )
        assert claim.task.deliveries == 1, violated(
            "a re-queued dead letter starts with 0 deliveries",
            got=f"{claim.task.deliveries} deliveries at its first claim",
        )
        backend.complete(claim, b"finally")
        answers = backend.requeue_dead_letter(task_id), backend.requeue_dead_letter("no-such-task")
        assert answers == (False, False), violated(
            "requeue_dead_letter of a finished or unknown task must answer False", got=answers
        )

    def test_dead_letters_expire_with_their_ttl(
        self, backends: BackendPool, tasks: TaskMaker, timing: Timing
    ) -> None:
        backend = backends.primary
        ttl = 120.0 if timing.fake else 1.0
        task = tasks.one(ttl=ttl)
        backend.put([task])
        backend.claim(task.group, "p", 1, timing.long_lease, 1)
        backend.release_worker("p")
        backend.claim(task.group, "reaper", 1, timing.long_lease, 1)
        outcome = outcome_of(
            backend,
            task.id,
            "a task whose worker died on its last allowed delivery must end DEAD",
            state=TaskState.DEAD,
        )
        assert outcome.finished, violated("a dead letter must stamp its finished time")
        timing.advance_past(outcome.finished + ttl)
        wait_until(
            lambda: (
                backend.get_outcome(task.id) is None and not backend.list_dead_letters(task.group)
            ),
            timing.settings.deadline(10.0),
            message="a dead letter must be gone once its TTL passed (dead letters are bounded "
            "by age)",
        )
