"""Task headers: stored with the task and returned unchanged by every read and every state
change (retry, defer, bury and requeue, reclaim), and readable in a handler."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import ClassVar

import pytest
from taskkit import Backend, Claim, Kit, TaskState
from taskkit.backend import MAX_HEADERS, MAX_HEADERS_SIZE, encode_headers

from .._base import BackendPool, KitSettings, KitTestBase, Timing
from ..helpers import TaskMaker, claim_one, outcome_of, result_value, violated
from ._handlers import ConformanceHandler
from .runtime import _config, running

__all__ = ["HeadersTests"]

#: What a tracing plugin injects, plus the characters a careless encoding would break on.
HEADERS = {
    "traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    "tracestate": "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7",
    "tenant": 'Zürich "north" \\ 東京 | a:b {c} [d]*?',
    "empty": "",
}


def _largest_headers() -> dict[str, str]:
    """:data:`MAX_HEADERS` headers whose stored form takes exactly :data:`MAX_HEADERS_SIZE`
    bytes, with multi-byte characters: what a backend must keep whole."""
    headers = {f"x-header-{i:02d}": "é" for i in range(MAX_HEADERS)}
    spare = MAX_HEADERS_SIZE - len(encode_headers(headers).encode("utf-8"))
    per, extra = spare // MAX_HEADERS, spare % MAX_HEADERS
    for i, name in enumerate(headers):
        headers[name] += "v" * (per + (1 if i < extra else 0))
    return headers


class HeadersTests(KitTestBase):
    """``Task.headers`` round-trips through the backend and survives every state change.

    :cvar worker_start_method: how the runtime test starts its worker processes (as for
        :class:`~taskkit_testing.RuntimeTests`).
    """

    worker_start_method: ClassVar[str | None] = "spawn"

    def _claim(self, backend: Backend, group: str, worker: str, lease: float, what: str) -> Claim:
        return claim_one(backend, group, worker, lease, 5, f"{what} must be claimable")

    def _expect(self, headers: Mapping[str, str], want: Mapping[str, str], guarantee: str) -> None:
        assert dict(headers) == dict(want), violated(guarantee, got=dict(headers))

    # ------------------------------------------------------------------ reads

    def test_headers_round_trip_through_put_claim_and_outcome(
        self, backend: Backend, tasks: TaskMaker, timing: Timing
    ) -> None:
        task = tasks.one(headers=HEADERS)
        backend.put([task])
        queued = outcome_of(
            backend, task.id, "a stored task must be QUEUED", state=TaskState.QUEUED
        )
        self._expect(queued.task.headers, HEADERS, "get_outcome() must return the headers put")
        claim = self._claim(backend, task.group, "w1", timing.long_lease, "a task with headers")
        self._expect(claim.task.headers, HEADERS, "claim() must hand out the task's headers")
        backend.complete(claim, b"done")
        done = outcome_of(
            backend, task.id, "complete() must finish the task", state=TaskState.SUCCEEDED
        )
        self._expect(done.task.headers, HEADERS, "a finished task's outcome must keep its headers")

    def test_tasks_without_headers_stay_without(
        self, backend: Backend, tasks: TaskMaker, timing: Timing
    ) -> None:
        plain, with_headers = tasks.one(), tasks.one(headers={"only": "mine"})
        backend.put([plain, with_headers])
        claims = backend.claim(tasks.group, "w1", 2, timing.long_lease, 5).claims
        by_id = {c.task.id: c.task for c in claims}
        assert set(by_id) == {plain.id, with_headers.id}, violated(
            "claim(limit=2) must hand out both due tasks", got=sorted(by_id)
        )
        self._expect(by_id[plain.id].headers, {}, "a task put without headers must claim without")
        self._expect(
            by_id[with_headers.id].headers,
            {"only": "mine"},
            "one task's headers must not leak to another of the same put",
        )
        for claim in claims:
            backend.complete(claim, b"ok")
        plain_done = outcome_of(backend, plain.id, "complete() must finish the task")
        self._expect(plain_done.task.headers, {}, "a task without headers must finish without")

    def test_the_largest_allowed_headers_are_kept_whole(
        self, backend: Backend, tasks: TaskMaker, timing: Timing
    ) -> None:
        largest = _largest_headers()
        task = tasks.one(headers=largest)
        backend.put([task])
        claim = self._claim(backend, task.group, "w1", timing.long_lease, "a task with headers")
        self._expect(
            claim.task.headers,
            largest,
            f"{MAX_HEADERS} headers of {MAX_HEADERS_SIZE} bytes encoded must be kept whole",
        )

    def test_headers_stored_by_aput_come_back(self, backend: Backend, tasks: TaskMaker) -> None:
        task = tasks.one(headers=HEADERS)
        answer = asyncio.run(backend.aput([task]))
        assert answer == [True], violated("aput() of a new task must answer [True]", got=answer)
        outcome = outcome_of(backend, task.id, "a task aput() reported as stored was lost")
        self._expect(outcome.task.headers, HEADERS, "aput() must store the task's headers")

    # ------------------------------------------------------------------ state changes

    def test_headers_survive_a_retry(
        self, backend: Backend, tasks: TaskMaker, timing: Timing
    ) -> None:
        task = tasks.one(headers=HEADERS)
        backend.put([task])
        claim = self._claim(backend, task.group, "w1", timing.long_lease, "a task with headers")
        backend.retry(claim, timing.now(), "RuntimeError: try again")
        queued = outcome_of(
            backend, task.id, "retry() must queue the task again", state=TaskState.QUEUED
        )
        self._expect(queued.task.headers, HEADERS, "a retried task must keep its headers")
        again = self._claim(backend, task.group, "w2", timing.long_lease, "a retried task")
        assert again.task.retry_count == 1, violated(
            "the claim after a retry must count it", got=again.task.retry_count
        )
        self._expect(again.task.headers, HEADERS, "the next attempt must carry the headers")
        backend.complete(again, b"second time")

    def test_headers_survive_a_defer(
        self, backend: Backend, tasks: TaskMaker, timing: Timing
    ) -> None:
        task = tasks.one(headers=HEADERS)
        backend.put([task])
        claim = self._claim(backend, task.group, "w1", timing.long_lease, "a task with headers")
        backend.defer(claim, timing.now(), "unknown task: not deployed yet")
        again = self._claim(backend, task.group, "w2", timing.long_lease, "a deferred task")
        self._expect(again.task.headers, HEADERS, "a deferred task must keep its headers")
        backend.complete(again, b"ran once known")

    def test_headers_survive_bury_and_requeue_of_a_dead_letter(
        self, backend: Backend, tasks: TaskMaker, timing: Timing
    ) -> None:
        task = tasks.one(headers=HEADERS)
        backend.put([task])
        claim = self._claim(backend, task.group, "w1", timing.long_lease, "a task with headers")
        backend.bury(claim, "unknown task: nobody runs it")
        listed = {o.task.id: o for o in backend.list_dead_letters(task.group)}
        assert task.id in listed, violated(
            "bury() must make the task a listed dead letter", got=sorted(listed)
        )
        self._expect(
            listed[task.id].task.headers, HEADERS, "list_dead_letters() must return the headers"
        )
        assert backend.requeue_dead_letter(task.id) is True, violated(
            "requeue_dead_letter() of a dead letter must answer True"
        )
        again = self._claim(backend, task.group, "w2", timing.long_lease, "a re-queued dead letter")
        self._expect(again.task.headers, HEADERS, "a re-queued dead letter must keep its headers")
        backend.complete(again, b"finally")

    def test_a_dead_letter_made_by_claim_keeps_its_headers(
        self, backend: Backend, tasks: TaskMaker, timing: Timing
    ) -> None:
        task = tasks.one(headers=HEADERS)
        backend.put([task])
        claim_one(backend, task.group, "dying", timing.long_lease, 1)
        backend.release_worker("dying")
        batch = backend.claim(task.group, "reaper", 1, timing.long_lease, 1)
        dead = {o.task.id: o for o in batch.dead_lettered}
        assert task.id in dead, violated(
            "a task out of deliveries whose worker was released must be dead-lettered by the "
            "next claim",
            got=f"{len(batch.claims)} claim(s), {len(batch.dead_lettered)} dead-lettered",
        )
        self._expect(
            dead[task.id].task.headers, HEADERS, "ClaimBatch.dead_lettered must carry the headers"
        )

    # ------------------------------------------------------------------ crash recovery

    def test_headers_survive_a_reclaim_after_the_lease_expired(
        self, backends: BackendPool, tasks: TaskMaker, timing: Timing
    ) -> None:
        task = tasks.one(headers=HEADERS)
        backends.primary.put([task])
        lost = self._claim(
            backends.primary, task.group, "lost", timing.short_lease, "a task with headers"
        )
        timing.advance_past(lost.lease_expires)
        reclaimed = self._claim(
            backends.new(), task.group, "rescuer", timing.long_lease, "a task whose lease expired"
        )
        assert reclaimed.task.deliveries == 2, violated(
            "a reclaim must count another delivery", got=reclaimed.task.deliveries
        )
        self._expect(reclaimed.task.headers, HEADERS, "a reclaimed task must keep its headers")

    def test_headers_survive_a_reclaim_after_release_worker(
        self, backend: Backend, tasks: TaskMaker, timing: Timing
    ) -> None:
        task = tasks.one(headers=HEADERS)
        backend.put([task])
        self._claim(backend, task.group, "died", timing.long_lease, "a task with headers")
        released = backend.release_worker("died")
        assert released == 1, violated(
            "release_worker() must expire the dead worker's one lease", got=released
        )
        reclaimed = self._claim(
            backend, task.group, "rescuer", timing.long_lease, "a released worker's task"
        )
        self._expect(
            reclaimed.task.headers, HEADERS, "a task reclaimed after release_worker keeps them"
        )

    # ------------------------------------------------------------------ the kit

    def test_the_kit_stores_the_headers_given_at_enqueue(self, kit: Kit, group: str) -> None:
        one = kit.initiate_task(group, "job", {"n": 1}, headers=HEADERS)
        bulk = kit.initiate_tasks(
            {"group": group, "name": "job", "data": 2, "headers": {"batch": "b-7"}},
            {"group": group, "name": "job", "data": 3},
        )
        stored = {r.id: outcome_of(kit.backend, r.id, "an initiated task was lost") for r in bulk}
        self._expect(
            outcome_of(kit.backend, one.id, "an initiated task was lost").task.headers,
            HEADERS,
            "initiate_task(headers=...) must store the headers",
        )
        self._expect(
            stored[bulk[0].id].task.headers,
            {"batch": "b-7"},
            "an initiate_tasks item's headers must be stored",
        )
        self._expect(
            stored[bulk[1].id].task.headers, {}, "an item without headers must be stored without"
        )

    @pytest.mark.taskkit_processes
    def test_a_handler_reads_its_headers_through_current_task(
        self, backend: Backend, group: str, kit_settings: KitSettings
    ) -> None:
        kit = Kit(backend, ConformanceHandler(), _config(kit_settings))
        first = kit.initiate_task(group, "headers", {"fail_first": False}, headers=HEADERS)
        retried = kit.initiate_task(group, "headers", {"fail_first": True}, headers=HEADERS)
        plain = kit.initiate_task(group, "headers", {"fail_first": False})
        deadline = kit_settings.deadline(60.0)
        with running(kit, 1, {group: 2}, kit_settings.deadline(30.0), self.worker_start_method):
            seen = result_value(first, deadline, "a worker must run a task with headers")
            assert seen == HEADERS, violated(
                "a handler must read its task's headers as current_task().task.headers", got=seen
            )
            seen = result_value(retried, deadline, "a retried task with headers must run again")
            assert seen == HEADERS, violated(
                "the attempt after a retry must read the same headers", got=seen
            )
            seen = result_value(plain, deadline, "a worker must run a task without headers")
            assert seen == {}, violated(
                "a task enqueued without headers must show none in its handler", got=seen
            )
