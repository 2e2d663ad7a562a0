"""Cancellation and control events."""

from __future__ import annotations

import pytest
from taskkit import Backend, CancelResult, LeaseStatus, TaskState

from .._base import BackendPool, KitTestBase, Timing
from ..helpers import TaskMaker, claim_one, outcome_of, violated

__all__ = ["CancelTests", "ControlEventTests"]


class CancelTests(KitTestBase):
    """Queued tasks cancel at once; running ones get a request their lease holder sees."""

    def test_cancel_a_queued_task(self, backend: Backend, tasks: TaskMaker, timing: Timing) -> None:
        task = tasks.one()
        backend.put([task])
        answer = backend.cancel(task.id, "not needed")
        assert answer is CancelResult.CANCELLED, violated(
            "cancel of a QUEUED task must answer CANCELLED", got=answer
        )
        outcome_of(
            backend,
            task.id,
            "cancel of a QUEUED task must make it CANCELLED at once, keeping its reason",
            state=TaskState.CANCELLED,
            error="not needed",
        )
        assert backend.claim(task.group, "w", 5, timing.long_lease, 3).claims == [], violated(
            "a cancelled task was claimed"
        )

    def test_cancel_a_delayed_task(
        self, backend: Backend, tasks: TaskMaker, timing: Timing
    ) -> None:
        task = tasks.one(delay=timing.future)
        backend.put([task])
        answer = backend.cancel(task.id)
        assert answer is CancelResult.CANCELLED, violated(
            "cancel of a delayed QUEUED task must answer CANCELLED", got=answer
        )
        timing.advance_past(task.due)
        assert backend.claim(task.group, "w", 5, timing.long_lease, 3).claims == [], violated(
            "a cancelled task was claimed once its due time came"
        )

    def test_cancel_a_running_task_asks_its_worker(
        self, backends: BackendPool, tasks: TaskMaker, timing: Timing
    ) -> None:
        worker, operator = backends.primary, backends.new()
        task = tasks.one()
        worker.put([task])
        claim = claim_one(worker, task.group, "w1", timing.long_lease, 3)
        answer = operator.cancel(task.id)
        assert answer is CancelResult.REQUESTED, violated(
            "cancel of a RUNNING task must answer REQUESTED", got=answer
        )
        outcome_of(
            operator,
            task.id,
            "cancel of a RUNNING task only requests it; the lease holder stops it",
            state=TaskState.RUNNING,
        )
        renewed = worker.renew([claim], timing.long_lease)
        assert renewed == [LeaseStatus.CANCEL_REQUESTED], violated(
            "renew must report a pending cancel request to the lease holder",
            got=[s.value for s in renewed],
        )
        worker.acknowledge_cancel(claim, "stopped by request")
        outcome_of(
            operator,
            task.id,
            "acknowledge_cancel must make the task CANCELLED with its reason",
            state=TaskState.CANCELLED,
            error="stopped by request",
        )

    def test_running_task_may_still_finish_after_a_cancel_request(
        self, backend: Backend, tasks: TaskMaker, timing: Timing
    ) -> None:
        task = tasks.one()
        backend.put([task])
        claim = claim_one(backend, task.group, "w1", timing.long_lease, 3)
        backend.cancel(task.id)
        backend.complete(claim, b"made it")
        outcome_of(
            backend,
            task.id,
            "a running task may still complete after a cancel request",
            state=TaskState.SUCCEEDED,
        )
        answer = backend.cancel(task.id)
        assert answer is CancelResult.FINISHED, violated(
            "cancel of a finished task must answer FINISHED", got=answer
        )

    @pytest.mark.parametrize("end", ["complete", "fail", "cancel"])
    def test_cancel_a_finished_task_changes_nothing(
        self, end: str, backend: Backend, tasks: TaskMaker, timing: Timing
    ) -> None:
        task = tasks.one()
        backend.put([task])
        if end == "cancel":
            backend.cancel(task.id, "first")
        else:
            claim = claim_one(backend, task.group, "w1", timing.long_lease, 3)
            backend.complete(claim, b"r") if end == "complete" else backend.fail(claim, "e")
        before = outcome_of(backend, task.id, "a finished task must have an outcome")
        answer = backend.cancel(task.id, "second")
        assert answer is CancelResult.FINISHED, violated(
            "cancel of a finished task must answer FINISHED", got=answer
        )
        outcome_of(
            backend,
            task.id,
            "cancel of a finished task changed it",
            state=before.state,
            result=before.result,
            error=before.error,
        )

    def test_cancel_an_unknown_task(self, backend: Backend) -> None:
        answer = backend.cancel("no-such-task")
        assert answer is CancelResult.NOT_FOUND, violated(
            "cancel of an unknown id must answer NOT_FOUND", got=answer
        )


class ControlEventTests(KitTestBase):
    """Control events reach every backend instance, in order, with increasing numbers."""

    def test_control_events_are_ordered(self, backends: BackendPool, timing: Timing) -> None:
        publisher, reader = backends.primary, backends.new()
        start = max((e.seq for e in reader.read_control(0)), default=0)
        before = timing.now()
        sent = [
            publisher.publish_control("pause", ["mail", "video"]),
            publisher.publish_control("resume", None),
            publisher.publish_control("shutdown", ["mail"]),
        ]
        after = timing.now()
        assert sent[0].seq < sent[1].seq < sent[2].seq, violated(
            "control event numbers must increase strictly", got=[e.seq for e in sent]
        )
        mine = {e.seq for e in sent}
        everything = reader.read_control(start)
        assert [e.seq for e in everything] == sorted(e.seq for e in everything), violated(
            "read_control must return events oldest first"
        )
        # Other tests may publish into a shared store at the same time: look at ours only.
        seen = [e for e in everything if e.seq in mine]
        assert [(e.seq, e.kind, e.groups) for e in seen] == [
            (sent[0].seq, "pause", ("mail", "video")),
            (sent[1].seq, "resume", None),
            (sent[2].seq, "shutdown", ("mail",)),
        ], violated("read_control must return every later event, oldest first, as published")
        assert all(before - 1e-3 <= e.created <= after + 1e-3 for e in seen), violated(
            "a control event's created time is the backend's time of publication"
        )
        assert not mine & {e.seq for e in reader.read_control(sent[2].seq)}, violated(
            "read_control(after_seq) must not return the event numbered after_seq or older ones"
        )
        later = [e.seq for e in reader.read_control(sent[0].seq) if e.seq in mine]
        assert later == [sent[1].seq, sent[2].seq], violated(
            "read_control(after_seq) must return exactly the events numbered above after_seq",
            got=later,
        )
