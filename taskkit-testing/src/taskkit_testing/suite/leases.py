"""Claims and leases: tokens, expiry on the backend's clock, renewal, bulk claims, release."""

from __future__ import annotations

import pytest
from taskkit import Backend, LeaseStatus, TaskState

from .._base import BackendPool, KitTestBase, Timing
from ..helpers import TaskMaker, claim_one, outcome_of, violated

__all__ = ["LeaseTests"]


class LeaseTests(KitTestBase):
    """A claim hands a task to one worker under a lease that only the backend's clock ends."""

    def test_claim_hands_out_a_lease(
        self, backend: Backend, tasks: TaskMaker, timing: Timing
    ) -> None:
        task = tasks.one()
        backend.put([task])
        before = timing.now()
        claim = claim_one(backend, task.group, "worker-1", 60.0, 3)
        after = timing.now()
        assert (claim.task.id, claim.worker_id) == (task.id, "worker-1"), violated(
            "a claim must hand out the claimed task to the worker that asked",
            got=(claim.task.id, claim.worker_id),
        )
        assert claim.token, violated("a claim must carry a fencing token")
        assert claim.task.deliveries == 1, violated(
            "a claim must count the delivery", got=claim.task.deliveries
        )
        assert before + 60.0 - 1e-3 <= claim.lease_expires <= after + 60.0 + 1e-3, violated(
            "a lease must expire lease_seconds after the claim, on the backend's clock",
            got=f"lease_expires {claim.lease_expires - before:+.3f}s from the claim",
        )
        outcome_of(
            backend,
            task.id,
            "a claimed task must be RUNNING with the delivery counted",
            state=TaskState.RUNNING,
            task__deliveries=1,
        )

    def test_leased_task_is_not_claimable(
        self, backends: BackendPool, tasks: TaskMaker, timing: Timing
    ) -> None:
        first, second = backends.primary, backends.new()
        task = tasks.one()
        first.put([task])
        claim = claim_one(first, task.group, "w1", timing.long_lease, 3)
        batch = second.claim(task.group, "w2", 5, timing.long_lease, 3)
        assert batch.claims == [], violated("a task held under a valid lease was claimed again")
        assert batch.next_due == pytest.approx(claim.lease_expires, abs=1e-3), violated(
            "claim's next_due must name the expiry of the earliest lease",
            got=f"next_due {batch.next_due!r}, lease_expires {claim.lease_expires!r}",
        )

    def test_expired_lease_is_claimable_by_another_worker(
        self, backends: BackendPool, tasks: TaskMaker, timing: Timing
    ) -> None:
        first, second = backends.primary, backends.new()
        task = tasks.one()
        first.put([task])
        old = claim_one(first, task.group, "w1", timing.short_lease, 3)
        timing.advance_past(old.lease_expires)
        batch = second.claim(task.group, "w2", 1, timing.long_lease, 3)
        assert [c.task.id for c in batch.claims] == [task.id], violated(
            "a task whose lease expired was not claimable by another worker"
        )
        new = batch.claims[0]
        assert new.token != old.token, violated("a reclaim must issue a new fencing token")
        assert new.worker_id == "w2", violated(
            "a reclaim belongs to the worker that claimed it", got=new.worker_id
        )
        assert new.task.deliveries == 2, violated(
            "a reclaim must count another delivery", got=new.task.deliveries
        )

    def test_lease_is_not_expired_early(
        self, backends: BackendPool, tasks: TaskMaker, timing: Timing
    ) -> None:
        first, second = backends.primary, backends.new()
        task = tasks.one()
        first.put([task])
        claim = claim_one(first, task.group, "w1", timing.short_lease, 3)
        batch = second.claim(task.group, "w2", 1, timing.long_lease, 3)
        checked_at = timing.now()
        if checked_at < claim.lease_expires:
            assert batch.claims == [], violated("a lease was taken over before it expired")

    def test_renew_extends_the_lease(
        self, backends: BackendPool, tasks: TaskMaker, timing: Timing
    ) -> None:
        first, second = backends.primary, backends.new()
        task = tasks.one()
        first.put([task])
        claim = claim_one(first, task.group, "w1", timing.short_lease, 3)
        assert first.renew([claim], timing.long_lease) == [LeaseStatus.OK], violated(
            "renewing a current claim must answer OK"
        )
        timing.advance_past(claim.lease_expires)
        assert second.claim(task.group, "w2", 1, timing.long_lease, 3).claims == [], violated(
            "a renewed lease expired at its old time (renew did not extend it)"
        )
        first.complete(claim, b"ok")

    def test_renew_answers_each_claim_in_order(
        self, backend: Backend, tasks: TaskMaker, timing: Timing
    ) -> None:
        made = tasks.many(3)
        backend.put(made)
        claims = backend.claim(made[0].group, "w1", 3, timing.long_lease, 3).claims
        backend.complete(claims[1], b"")
        answer = backend.renew(claims, timing.long_lease)
        assert answer == [LeaseStatus.OK, LeaseStatus.LOST, LeaseStatus.OK], violated(
            "renew must answer each claim, in order; a finished task's claim is LOST",
            got=[s.value for s in answer],
        )
        empty = backend.renew([], timing.long_lease)
        assert empty == [], violated("renew([]) must answer []", got=empty)

    def test_bulk_claim_respects_the_limit(
        self, backend: Backend, tasks: TaskMaker, timing: Timing
    ) -> None:
        made = tasks.many(10)
        backend.put(made)
        sizes: list[int] = []
        seen: set[str] = set()
        for _ in range(4):
            batch = backend.claim(made[0].group, "w1", 4, timing.long_lease, 3)
            sizes.append(len(batch.claims))
            seen.update(c.task.id for c in batch.claims)
            if len(batch.claims) == 4:
                assert batch.next_due is not None and batch.next_due <= timing.now(), violated(
                    "when a claim stops at its limit with more work ready, next_due must be now"
                )
        assert sizes == [4, 4, 2, 0], violated(
            "a claim must take at most `limit` tasks (10 tasks, limit 4)", got=sizes
        )
        assert seen == {t.id for t in made}, violated(
            "repeated claims must hand out every due task",
            got=f"{len({t.id for t in made} - seen)} of {len(made)} never claimed",
        )

    def test_bulk_claim_tokens_are_distinct(
        self, backend: Backend, tasks: TaskMaker, timing: Timing
    ) -> None:
        made = tasks.many(6)
        backend.put(made)
        claims = backend.claim(made[0].group, "w1", 6, timing.long_lease, 3).claims
        assert len({c.token for c in claims}) == 6, violated(
            "each claim needs its own token (6 tasks claimed at once)",
            got=f"{len({c.token for c in claims})} distinct tokens for {len(claims)} claims",
        )

    def test_release_hands_the_task_back_uncounted(
        self, backends: BackendPool, tasks: TaskMaker, timing: Timing
    ) -> None:
        first, second = backends.primary, backends.new()
        task = tasks.one()
        first.put([task])
        claim = claim_one(first, task.group, "w1", timing.long_lease, 3)
        first.release([claim])
        outcome_of(
            first, task.id, "release must put the task back to QUEUED", state=TaskState.QUEUED
        )
        batch = second.claim(task.group, "w2", 1, timing.long_lease, 3)
        assert [c.task.id for c in batch.claims] == [task.id], violated(
            "a released task must be claimable at once"
        )
        assert batch.claims[0].task.deliveries == 1, violated(
            "release must not count the delivery it hands back",
            got=batch.claims[0].task.deliveries,
        )
        first.release([claim])  # stale now: ignored
        outcome_of(
            first,
            task.id,
            "release with a stale token must change nothing",
            state=TaskState.RUNNING,
        )

    def test_release_worker_expires_its_leases_now(
        self, backends: BackendPool, tasks: TaskMaker, timing: Timing
    ) -> None:
        first, second = backends.primary, backends.new()
        made = tasks.many(4)
        first.put(made)
        dead = first.claim(made[0].group, "dead-worker", 3, timing.long_lease, 3).claims
        alive = first.claim(made[0].group, "live-worker", 1, timing.long_lease, 3).claims
        released = second.release_worker("dead-worker")
        assert released == 3, violated(
            "release_worker must report how many leases it expired (3)", got=released
        )
        batch = second.claim(made[0].group, "rescuer", 10, timing.long_lease, 3)
        assert sorted(c.task.id for c in batch.claims) == sorted(c.task.id for c in dead), violated(
            "after release_worker the dead worker's tasks must be claimable at once, and only they"
        )
        assert all(c.task.deliveries == 2 for c in batch.claims), violated(
            "release_worker must keep the lost deliveries counted",
            got=[c.task.deliveries for c in batch.claims],
        )
        again, nobody = second.release_worker("dead-worker"), second.release_worker("nobody")
        assert (again, nobody) == (0, 0), violated(
            "release_worker of a worker holding no lease must expire none and answer 0",
            got=(again, nobody),
        )
        first.complete(alive[0], b"")

    def test_next_due_names_the_earliest_pending_time(
        self, backend: Backend, tasks: TaskMaker, timing: Timing
    ) -> None:
        leased = tasks.one()
        backend.put([leased])
        claim = claim_one(backend, leased.group, "w1", timing.long_lease, 3)
        later = tasks.one(delay=timing.long_lease + 100)
        sooner = tasks.one(delay=timing.long_lease / 2)
        backend.put([later, sooner])
        batch = backend.claim(leased.group, "w2", 5, timing.long_lease, 3)
        assert batch.claims == [], violated(
            "neither a leased nor a delayed task may be claimed", got=batch.claims
        )
        assert batch.next_due == pytest.approx(min(sooner.due, claim.lease_expires), abs=1e-3), (
            violated("next_due must be the earliest of the delayed due times and lease expiries")
        )
        backend.complete(claim, b"")
