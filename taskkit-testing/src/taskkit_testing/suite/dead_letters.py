"""Retries, bounded deliveries and dead letters."""

from __future__ import annotations

import pytest
from taskkit import Backend, TaskState

from .._base import BackendPool, KitTestBase, Timing
from ..helpers import TaskMaker, violated, wait_until

__all__ = ["DeadLetterTests", "RetryTests"]


class RetryTests(KitTestBase):
    """``retry`` puts a task back at a later due time and starts a fresh attempt."""

    def test_retry_requeues_at_the_given_due_time(
        self, backend: Backend, tasks: TaskMaker, timing: Timing
    ) -> None:
        task = tasks.one()
        backend.put([task])
        (claim,) = backend.claim(task.group, "w1", 1, timing.long_lease, 3).claims
        due = timing.now() + timing.future
        backend.retry(claim, due, "ValueError: try again")
        outcome = backend.get_outcome(task.id)
        assert outcome is not None and outcome.state is TaskState.QUEUED, violated(
            "retry must put the task back to QUEUED"
        )
        assert outcome.task.retry_count == 1, violated("retry must count the retry")
        assert outcome.task.deliveries == 0, violated("retry must reset the deliveries")
        assert outcome.task.due == pytest.approx(due, abs=1e-3)
        assert outcome.error == "ValueError: try again", violated(
            "retry must keep the failure text as the last error"
        )
        batch = backend.claim(task.group, "w1", 1, timing.long_lease, 3)
        if timing.now() < due:
            assert batch.claims == [], violated("a retried task was claimed before its due time")
        timing.advance_past(due)
        (again,) = backend.claim(task.group, "w2", 1, timing.long_lease, 3).claims
        assert again.task.retry_count == 1 and again.task.deliveries == 1
        backend.complete(again, b"ok")

    def test_retries_accumulate(self, backend: Backend, tasks: TaskMaker, timing: Timing) -> None:
        task = tasks.one()
        backend.put([task])
        for n in range(1, 4):
            (claim,) = backend.claim(task.group, "w1", 1, timing.long_lease, 3).claims
            assert claim.task.retry_count == n - 1
            backend.retry(claim, timing.now(), f"attempt {n}")
        outcome = backend.get_outcome(task.id)
        assert outcome is not None and outcome.task.retry_count == 3

    def test_retry_starts_a_fresh_delivery_count(
        self, backend: Backend, tasks: TaskMaker, timing: Timing
    ) -> None:
        task = tasks.one()
        backend.put([task])
        (first,) = backend.claim(task.group, "w1", 1, timing.short_lease, 2).claims
        timing.advance_past(first.lease_expires)
        (second,) = backend.claim(task.group, "w2", 1, timing.long_lease, 2).claims
        assert second.task.deliveries == 2
        backend.retry(second, timing.now(), "retry")
        (third,) = backend.claim(task.group, "w3", 1, timing.short_lease, 2).claims
        assert third.task.deliveries == 1, violated(
            "deliveries count one attempt: a retry must reset them"
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
        assert deliveries == [1, 2, 3], violated("each reclaim must count one more delivery")
        batch = backends.new().claim(tasks.group, "survivor", 5, timing.long_lease, 3)
        assert batch.claims == [], violated(
            "a task was delivered again after max_deliveries deliveries"
        )
        assert [o.task.id for o in batch.dead_lettered] == [task_id], violated(
            "the claim that dead-letters a task must report it in dead_lettered"
        )
        outcome = backends.primary.get_outcome(task_id)
        assert outcome is not None and outcome.state is TaskState.DEAD, violated(
            "a task whose deliveries are exhausted must end DEAD"
        )
        assert outcome.error is not None and "worker lost" in outcome.error, violated(
            'a dead letter must keep its reason ("worker lost")'
        )
        assert outcome.finished is not None

    def test_release_worker_deaths_count_too(
        self, backends: BackendPool, tasks: TaskMaker, timing: Timing
    ) -> None:
        backend = backends.primary
        task = tasks.one()
        backend.put([task])
        for n in range(2):
            batch = backend.claim(task.group, f"proc-{n}", 1, timing.long_lease, 2)
            assert len(batch.claims) == 1
            assert backend.release_worker(f"proc-{n}") == 1
        batch = backend.claim(task.group, "proc-2", 1, timing.long_lease, 2)
        assert batch.claims == [] and len(batch.dead_lettered) == 1, violated(
            "a task whose workers keep dying must become a dead letter after max_deliveries"
        )

    def test_dead_letters_are_listed_newest_first(
        self, backends: BackendPool, tasks: TaskMaker, timing: Timing
    ) -> None:
        backend = backends.primary
        made = []
        for n in range(3):
            task = tasks.one()
            backend.put([task])
            assert len(backend.claim(task.group, f"p{n}", 1, timing.long_lease, 1).claims) == 1
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
            "list_dead_letters(group) must list the group's dead letters, newest first"
        )
        assert [o.task.id for o in backend.list_dead_letters(tasks.group, limit=2)] == listed[:2]
        everything = {o.task.id for o in backend.list_dead_letters(None, limit=10_000)}
        assert set(made) | {other.id} <= everything
        assert all(o.state is TaskState.DEAD for o in backend.list_dead_letters(tasks.group))

    def test_requeue_dead_letter(
        self, backends: BackendPool, tasks: TaskMaker, timing: Timing
    ) -> None:
        task_id, _ = self._kill_until_dead(backends, tasks, timing, 1)
        backend = backends.primary
        backend.claim(tasks.group, "reaper", 1, timing.long_lease, 1)
        assert backend.requeue_dead_letter(task_id) is True
        outcome = backend.get_outcome(task_id)
        assert outcome is not None and outcome.state is TaskState.QUEUED, violated(
            "requeue_dead_letter must put the task back to QUEUED"
        )
        assert backend.list_dead_letters(tasks.group) == []
        assert backend.requeue_dead_letter(task_id) is False, violated(
            "requeue_dead_letter of a task that is not a dead letter must answer False"
        )
        (claim,) = backend.claim(tasks.group, "w", 1, timing.long_lease, 1).claims
        assert claim.task.deliveries == 1, violated(
            "a re-queued dead letter starts with 0 deliveries"
        )
        backend.complete(claim, b"finally")
        assert backend.requeue_dead_letter(task_id) is False
        assert backend.requeue_dead_letter("no-such-task") is False

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
        outcome = backend.get_outcome(task.id)
        assert outcome is not None and outcome.state is TaskState.DEAD and outcome.finished
        timing.advance_past(outcome.finished + ttl)
        try:
            wait_until(
                lambda: (
                    backend.get_outcome(task.id) is None
                    and not backend.list_dead_letters(task.group)
                ),
                timing.settings.deadline(10.0),
            )
        except AssertionError:
            pytest.fail(
                violated("a dead letter outlived its TTL (dead letters must be bounded by age)")
            )
