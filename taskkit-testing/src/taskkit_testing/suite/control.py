"""Cancellation and control events."""

from __future__ import annotations

import pytest
from taskkit import Backend, CancelResult, LeaseStatus, TaskState

from .._base import BackendPool, KitTestBase, Timing
from ..helpers import TaskMaker, violated

__all__ = ["CancelTests", "ControlEventTests"]


class CancelTests(KitTestBase):
    """Queued tasks cancel at once; running ones get a request their lease holder sees."""

    def test_cancel_a_queued_task(self, backend: Backend, tasks: TaskMaker, timing: Timing) -> None:
        task = tasks.one()
        backend.put([task])
        assert backend.cancel(task.id, "not needed") is CancelResult.CANCELLED
        outcome = backend.get_outcome(task.id)
        assert outcome is not None and outcome.state is TaskState.CANCELLED, violated(
            "cancel of a QUEUED task must make it CANCELLED at once"
        )
        assert outcome.error == "not needed", violated("a cancelled task keeps its reason")
        assert backend.claim(task.group, "w", 5, timing.long_lease, 3).claims == [], violated(
            "a cancelled task was claimed"
        )

    def test_cancel_a_delayed_task(
        self, backend: Backend, tasks: TaskMaker, timing: Timing
    ) -> None:
        task = tasks.one(delay=timing.future)
        backend.put([task])
        assert backend.cancel(task.id) is CancelResult.CANCELLED
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
        (claim,) = worker.claim(task.group, "w1", 1, timing.long_lease, 3).claims
        assert operator.cancel(task.id) is CancelResult.REQUESTED
        outcome = operator.get_outcome(task.id)
        assert outcome is not None and outcome.state is TaskState.RUNNING, violated(
            "cancel of a RUNNING task only requests it; the lease holder stops it"
        )
        assert worker.renew([claim], timing.long_lease) == [LeaseStatus.CANCEL_REQUESTED], violated(
            "renew must report a pending cancel request to the lease holder"
        )
        worker.acknowledge_cancel(claim, "stopped by request")
        outcome = operator.get_outcome(task.id)
        assert outcome is not None and outcome.state is TaskState.CANCELLED
        assert outcome.error == "stopped by request"

    def test_running_task_may_still_finish_after_a_cancel_request(
        self, backend: Backend, tasks: TaskMaker, timing: Timing
    ) -> None:
        task = tasks.one()
        backend.put([task])
        (claim,) = backend.claim(task.group, "w1", 1, timing.long_lease, 3).claims
        backend.cancel(task.id)
        backend.complete(claim, b"made it")
        outcome = backend.get_outcome(task.id)
        assert outcome is not None and outcome.state is TaskState.SUCCEEDED
        assert backend.cancel(task.id) is CancelResult.FINISHED

    @pytest.mark.parametrize("end", ["complete", "fail", "cancel"])
    def test_cancel_a_finished_task_changes_nothing(
        self, end: str, backend: Backend, tasks: TaskMaker, timing: Timing
    ) -> None:
        task = tasks.one()
        backend.put([task])
        if end == "cancel":
            backend.cancel(task.id, "first")
        else:
            (claim,) = backend.claim(task.group, "w1", 1, timing.long_lease, 3).claims
            backend.complete(claim, b"r") if end == "complete" else backend.fail(claim, "e")
        before = backend.get_outcome(task.id)
        assert backend.cancel(task.id, "second") is CancelResult.FINISHED
        after = backend.get_outcome(task.id)
        assert before is not None and after is not None
        assert (after.state, after.result, after.error) == (
            before.state,
            before.result,
            before.error,
        ), violated("cancel of a finished task changed it")

    def test_cancel_an_unknown_task(self, backend: Backend) -> None:
        assert backend.cancel("no-such-task") is CancelResult.NOT_FOUND


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
            "control event numbers must increase strictly"
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
        assert not mine & {e.seq for e in reader.read_control(sent[2].seq)}
        later = [e.seq for e in reader.read_control(sent[0].seq) if e.seq in mine]
        assert later == [sent[1].seq, sent[2].seq], violated(
            "read_control(after_seq) must return exactly the events numbered above after_seq"
        )
