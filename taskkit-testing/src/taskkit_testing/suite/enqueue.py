"""Enqueue, due times and ordering; bulk put; idempotent put."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import pytest
from taskkit import Backend, Task, TaskState

from .._base import KitSettings, KitTestBase, Timing
from ..helpers import TaskMaker, claim_one, field_differences, outcome_of, raises, violated

__all__ = ["EnqueueTests"]


class EnqueueTests(KitTestBase):
    """What ``put`` stores, when it becomes claimable, and in which order."""

    def test_put_stores_the_task_as_queued(self, backend: Backend, tasks: TaskMaker) -> None:
        task = tasks.one(name="send", data=bytes(range(256)), timeout=12.5, ttl=3600.0)
        answer = backend.put([task])
        assert answer == [True], violated("put() of a new task must answer [True]", got=answer)
        outcome = outcome_of(backend, task.id, "a task put() reported as stored was lost")
        assert outcome.state is TaskState.QUEUED, violated(
            "a new task must be QUEUED", got=outcome.state
        )
        assert not (diff := field_differences(outcome.task, task)), violated(
            "a stored task must come back field for field (binary data included)", got=diff
        )
        assert outcome.result is None and outcome.finished is None, violated(
            "a QUEUED task has no result and no finished time",
            got=f"result={outcome.result!r}, finished={outcome.finished!r}",
        )

    def test_every_stored_task_is_kept(
        self, backend: Backend, tasks: TaskMaker, kit_settings: KitSettings
    ) -> None:
        made = tasks.many(kit_settings.size(50))
        answers = backend.put(made[:10]) + [a for t in made[10:] for a in backend.put([t])]
        assert answers == [True] * len(made), violated(
            "put() must answer True for each new task", got=answers
        )
        lost = [t.id for t in made if backend.get_outcome(t.id) is None]
        assert not lost, violated(f"{len(lost)} task(s) put() reported as stored were lost")

    def test_put_empty_batch(self, backend: Backend) -> None:
        answer = backend.put([])
        assert answer == [], violated("put([]) must answer []", got=answer)

    def test_put_is_idempotent(self, backend: Backend, tasks: TaskMaker) -> None:
        task = tasks.one(data=b"first")
        answer = backend.put([task])
        assert answer == [True], violated("put() of a new task must answer [True]", got=answer)
        again = task.evolve(data=b"second", name="other")
        answer = backend.put([again])
        assert answer == [False], violated(
            "putting a task whose id exists must be a no-op reported as False", got=answer
        )
        outcome = outcome_of(backend, task.id, "a repeated put() lost the stored task")
        assert not (diff := field_differences(outcome.task, task)), violated(
            "a repeated put changed the stored task", got=diff
        )

    def test_put_is_idempotent_after_the_task_finished(
        self, backend: Backend, tasks: TaskMaker, timing: Timing
    ) -> None:
        task = tasks.one()
        backend.put([task])
        claim = claim_one(backend, task.group, "w1", timing.long_lease, 3)
        backend.complete(claim, b"done")
        answer = backend.put([task])
        assert answer == [False], violated(
            "putting the id of a finished task (before its record expires) must be a no-op",
            got=answer,
        )
        outcome_of(
            backend,
            task.id,
            "a repeated put changed a finished task",
            state=TaskState.SUCCEEDED,
            result=b"done",
        )

    def test_bulk_put_reports_each_task(
        self, backend: Backend, tasks: TaskMaker, kit_settings: KitSettings, timing: Timing
    ) -> None:
        batch = tasks.many(kit_settings.size(200))
        existing = batch[::7]
        answer = backend.put(existing)
        assert answer == [True] * len(existing), violated(
            "put() must answer True for each new task", got=answer
        )
        lost = [t.id for t in existing if backend.get_outcome(t.id) is None]
        assert not lost, violated(f"{len(lost)} task(s) put() reported as stored were lost")
        answer = backend.put(batch)
        expected = [i % 7 != 0 for i in range(len(batch))]
        assert answer == expected, violated(
            "bulk put must answer True for each new task and False for each existing id",
            got=f"{sum(a != e for a, e in zip(answer, expected))} wrong answer(s) of "
            f"{len(expected)}"
            if len(answer) == len(expected)
            else f"{len(answer)} answers",
        )
        claimed = _drain(backend, batch[0].group, timing.long_lease)
        assert sorted(claimed) == sorted(t.id for t in batch), violated(
            f"{len(set(t.id for t in batch) - set(claimed))} task(s) put() reported as stored "
            "were lost (never claimable)"
        )

    def test_bulk_put_with_a_repeated_id_inside_the_batch(
        self, backend: Backend, tasks: TaskMaker
    ) -> None:
        task = tasks.one(data=b"a")
        other = tasks.one()
        answer = backend.put([task, other, task.evolve(data=b"b")])
        assert answer == [True, True, False], violated(
            "a bulk put stores the first of two tasks with the same id and answers False for "
            "the second",
            got=answer,
        )
        outcome_of(
            backend,
            task.id,
            "the first task of a repeated id must be the one stored",
            task__data=b"a",
        )

    def test_claim_takes_tasks_in_due_order(
        self, backend: Backend, tasks: TaskMaker, timing: Timing
    ) -> None:
        now = timing.now()
        made = [tasks.one(due=now - 100 + i, created=now - 1000 - i) for i in range(12)]
        shuffled = made[:]
        random.Random(7).shuffle(shuffled)
        backend.put(shuffled)
        order = [_claim_one(backend, made[0].group, timing.long_lease) for _ in made]
        assert order == [t.id for t in made], violated(
            "claims must take tasks in due order, whatever the put order",
            got=f"task numbers {[_index(made, i) for i in order]}",
        )

    def test_claim_breaks_due_ties_by_creation(
        self, backend: Backend, tasks: TaskMaker, timing: Timing
    ) -> None:
        now = timing.now()
        made = [tasks.one(due=now - 10, created=now - 100 + i) for i in range(8)]
        backend.put(list(reversed(made)))
        order = [_claim_one(backend, made[0].group, timing.long_lease) for _ in made]
        assert order == [t.id for t in made], violated(
            "claims must take tasks with the same due time in creation order",
            got=f"task numbers {[_index(made, i) for i in order]}",
        )

    def test_future_task_waits_for_its_due_time(
        self, backend: Backend, tasks: TaskMaker, timing: Timing
    ) -> None:
        task = tasks.one(delay=timing.future)
        backend.put([task])
        batch = backend.claim(task.group, "w1", 10, timing.long_lease, 3)
        checked_at = timing.now()
        if checked_at < task.due:
            assert batch.claims == [], violated("a task was claimed before its due time")
            assert batch.next_due == pytest.approx(task.due, abs=1e-3), violated(
                "claim's next_due must name the due time of the earliest delayed task",
                got=f"next_due {batch.next_due!r}, due {task.due!r}",
            )
        timing.advance_past(task.due)
        claimed = _drain(backend, task.group, timing.long_lease)
        assert claimed == [task.id], violated(
            "a task was not claimable after its due time", got=claimed
        )

    def test_claim_takes_only_its_own_group(
        self, backend: Backend, tasks: TaskMaker, timing: Timing
    ) -> None:
        mine = tasks.one()
        other = tasks.one(group=mine.group + "-other")
        backend.put([mine, other])
        claimed = _drain(backend, mine.group, timing.long_lease)
        assert claimed == [mine.id], violated("a claim took a task of another group", got=claimed)
        theirs = _drain(backend, other.group, timing.long_lease)
        assert theirs == [other.id], violated(
            "a claim of a group must take that group's task", got=theirs
        )

    def test_empty_group_claims_nothing(self, backend: Backend, group: str) -> None:
        batch = backend.claim(group, "w1", 5, 30.0, 3)
        assert batch.claims == [] and batch.dead_lettered == [], violated(
            "a claim of an empty group must hand out nothing", got=batch
        )
        assert batch.next_due is None, violated("next_due must be None when nothing is pending")

    def test_stats_count_queued_and_running(
        self, backend: Backend, tasks: TaskMaker, timing: Timing
    ) -> None:
        made = tasks.many(5)
        backend.put(made)
        backend.claim(made[0].group, "w1", 2, timing.long_lease, 3)
        stats = backend.stats(made[0].group)
        assert (stats.queued, stats.running) == (3, 2), violated(
            "stats() must count a group's queued and running tasks (3 queued, 2 running)",
            got=stats,
        )

    @pytest.mark.taskkit_requires("supports_transactional_put")
    def test_put_joins_the_callers_transaction(
        self, backend: Backend, tasks: TaskMaker, backend_transaction: Callable[[], Any]
    ) -> None:
        rolled_back, committed = tasks.one(), tasks.one()

        class Rollback(Exception):
            pass

        with raises(Rollback, "backend_transaction() must let the caller's exception through"):
            with backend_transaction():
                backend.put([rolled_back])
                raise Rollback
        with backend_transaction():
            backend.put([committed])
        assert backend.get_outcome(rolled_back.id) is None, violated(
            "a put inside a rolled-back transaction must leave nothing behind"
        )
        assert backend.get_outcome(committed.id) is not None, violated(
            "a put inside a committed transaction must be stored"
        )


def _index(made: list[Task], task_id: str | None) -> int | None:
    """The position of ``task_id`` in ``made`` (None: not one of them, or nothing claimed)."""
    return next((n for n, t in enumerate(made) if t.id == task_id), None)


def _claim_one(backend: Backend, group: str, lease: float) -> str | None:
    batch = backend.claim(group, "w-order", 1, lease, 3)
    return batch.claims[0].task.id if batch.claims else None


def _drain(backend: Backend, group: str, lease: float) -> list[str]:
    """Claim (and complete) until nothing is claimable; the claimed ids in order."""
    ids: list[str] = []
    while True:
        batch = backend.claim(group, "w-drain", 50, lease, 3)
        if not batch.claims:
            return ids
        for claim in batch.claims:
            ids.append(claim.task.id)
            backend.complete(claim, b"")
