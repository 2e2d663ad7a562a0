"""A stateful property test: random operation sequences against a backend and the reference.

Hypothesis drives put / claim / renew / complete / retry / fail / discard /
acknowledge_cancel / release / release_worker / cancel / requeue and "a worker dies" (a claim
whose lease then expires, on the fake clock or by waiting out a short lease) against the
backend under test and, step by step, against :class:`taskkit.MemoryBackend` as the model.
After every step they must agree, and these invariants must hold:

- each task is in exactly one state, the same as the model's;
- a finished task never returns to QUEUED (except a dead letter re-queued on request);
- a result never changes once written;
- a stale fencing token never wins.

Needs the ``hypothesis`` extra: ``pip install "taskkit-testing[hypothesis]"``. Use it like
the main suite::

    from taskkit_testing.stateful import StatefulBackendTests

    class TestMyBackendStateful(StatefulBackendTests):
        pass   # with the same backend_factory fixture
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import pytest

try:
    from hypothesis import HealthCheck, settings
    from hypothesis import strategies as st
    from hypothesis.stateful import (
        Bundle,
        RuleBasedStateMachine,
        initialize,
        invariant,
        multiple,
        rule,
        run_state_machine_as_test,
    )
except ImportError as exc:  # pragma: no cover - depends on the install
    raise ImportError(
        'taskkit_testing.stateful needs Hypothesis: pip install "taskkit-testing[hypothesis]"'
    ) from exc

from taskkit import Backend, Claim, FakeClock, LeaseLost, MemoryBackend, Task, TaskState

from ._base import BackendPool, KitSettings, KitTestBase
from .helpers import unique_name, violated, wait_until

__all__ = ["BackendStateMachine", "StatefulBackendTests"]

#: Deliveries before a task whose workers keep dying becomes a dead letter.
MAX_DELIVERIES = 2
#: A lease nothing in one example outlives.
LONG_LEASE = 1e6
#: "Far in the future" relative to an example's start, in either clock.
FAR = 1e7


@dataclass(frozen=True)
class ClaimPair:
    """The same claim as the backend and the model handed it out (tokens differ)."""

    task_id: str
    real: Claim
    model: Claim


class BackendStateMachine(RuleBasedStateMachine):
    """Compares a backend with the reference model; configure by subclassing (see
    :func:`machine_for`)."""

    backend: ClassVar[Backend]
    shared_clock: ClassVar[FakeClock | None]
    short_lease: ClassVar[float] = 0.3
    deadline: ClassVar[float] = 10.0

    claims = Bundle("claims")
    task_ids = Bundle("task_ids")

    def __init__(self) -> None:
        super().__init__()
        self.group = unique_name("sm")
        # With a fake clock both stores read the same one; otherwise the model keeps its own
        # and "a worker dies" moves it by hand while the backend's lease runs out for real.
        self.model_clock = self.shared_clock or FakeClock()
        self.model = MemoryBackend(clock=self.model_clock)
        self.real_start = self.backend.now()
        self.model_start = self.model.now()
        self.seq = itertools.count(1)
        self.known: list[str] = []
        self.results: dict[str, bytes | None] = {}
        self.finished: dict[str, TaskState] = {}
        self.requeued: set[str] = set()
        self.last_step = "start"

    # ------------------------------------------------------------------ helpers

    def _worker(self, n: int) -> str:
        return f"{self.group}-w{n}"

    def _due(self, start: float, n: int, future: bool) -> float:
        # Due times mirror each other in both clocks, so claim order agrees too.
        return start + (FAR if future else -1000.0) + n * 1e-3

    def _task_pair(self, task_id: str, n: int, future: bool) -> tuple[Task, Task]:
        def make(start: float) -> Task:
            due = self._due(start, n, future)
            return Task(
                task_id,
                self.group,
                "job",
                f"data-{n}".encode(),
                due,
                start - 2000.0 + n * 1e-3,
                ttl=FAR,
            )

        return make(self.real_start), make(self.model_start)

    def _disagree(self, what: str, real: object, model: object) -> None:
        pytest.fail(
            violated(
                f"the backend disagrees with the reference model after {self.last_step}: "
                f"{what}: backend {real!r}, model {model!r}"
            )
        )

    def _fenced(self, op: str, pair: ClaimPair, call: Callable[[Backend, Claim], None]) -> None:
        self.last_step = f"{op}({pair.task_id})"
        model_lost = real_lost = False
        try:
            call(self.model, pair.model)
        except LeaseLost:
            model_lost = True
        try:
            call(self.backend, pair.real)
        except LeaseLost:
            real_lost = True
        if model_lost and not real_lost:
            pytest.fail(violated(f"a stale fencing token was accepted by {op}()"))
        if real_lost and not model_lost:
            pytest.fail(violated(f"{op}() with the current fencing token was rejected as stale"))

    def _claim(self, worker: int, lease_real: float, lease_model: float) -> list[ClaimPair]:
        wid = self._worker(worker)
        real = self.backend.claim(self.group, wid, 100, lease_real, MAX_DELIVERIES)
        model = self.model.claim(self.group, wid, 100, lease_model, MAX_DELIVERIES)
        real_ids = sorted(c.task.id for c in real.claims)
        model_ids = sorted(c.task.id for c in model.claims)
        if real_ids != model_ids:
            if set(real_ids) - set(model_ids) and all(
                (o := self.model.get_outcome(t)) is not None and o.state is TaskState.RUNNING
                for t in set(real_ids) - set(model_ids)
            ):
                pytest.fail(violated("a task held under a valid lease was claimed again"))
            self._disagree("claimed tasks", real_ids, model_ids)
        dead_real = sorted(o.task.id for o in real.dead_lettered)
        dead_model = sorted(o.task.id for o in model.dead_lettered)
        if dead_real != dead_model:
            self._disagree("dead-lettered tasks", dead_real, dead_model)
        by_id = {c.task.id: c for c in model.claims}
        pairs = []
        for claim in real.claims:
            twin = by_id[claim.task.id]
            if claim.task.deliveries != twin.task.deliveries:
                self._disagree(
                    f"deliveries of {claim.task.id}", claim.task.deliveries, twin.task.deliveries
                )
            pairs.append(ClaimPair(claim.task.id, claim, twin))
        return pairs

    # ------------------------------------------------------------------ rules

    @initialize()
    def start(self) -> None:
        self.last_step = "start"

    @rule(target=task_ids, count=st.integers(1, 3), future=st.booleans())
    def put(self, count: int, future: bool) -> Any:
        self.last_step = f"put({count}, future={future})"
        real_tasks, model_tasks = [], []
        for _ in range(count):
            n = next(self.seq)
            real, model = self._task_pair(f"{self.group}-{n}", n, future)
            real_tasks.append(real)
            model_tasks.append(model)
        real_answer = self.backend.put(real_tasks)
        model_answer = self.model.put(model_tasks)
        if real_answer != model_answer:
            self._disagree("put answers", real_answer, model_answer)
        self.known.extend(t.id for t in real_tasks)
        return multiple(*(t.id for t in real_tasks))

    @rule(task_id=task_ids)
    def put_again(self, task_id: str) -> None:
        self.last_step = f"put_again({task_id})"
        n = next(self.seq)
        real, model = self._task_pair(task_id, n, False)
        real_answer, model_answer = self.backend.put([real]), self.model.put([model])
        if real_answer != model_answer:
            self._disagree("a repeated put's answer", real_answer, model_answer)

    @rule(target=claims, worker=st.integers(0, 2))
    def claim(self, worker: int) -> Any:
        self.last_step = f"claim(w{worker})"
        return multiple(*self._claim(worker, LONG_LEASE, LONG_LEASE))

    def _lose_worker(self, worker: int) -> list[ClaimPair]:
        """A worker claims, then stops renewing (dies); its leases run out."""
        if self.shared_clock is not None:
            pairs = self._claim(worker, 5.0, 5.0)
            self.shared_clock.advance(6.0)
            return pairs
        pairs = self._claim(worker, self.short_lease, 5.0)
        if pairs:
            last = max(p.real.lease_expires for p in pairs)
            wait_until(
                lambda: self.backend.now() > last,
                self.deadline,
                message="the backend's clock (now()) must pass the end of a short lease",
            )
        self.model_clock.advance(6.0)
        return pairs

    @rule(target=claims, worker=st.integers(0, 2))
    def claim_and_lose_the_worker(self, worker: int) -> Any:
        self.last_step = f"claim_and_lose_the_worker(w{worker})"
        return multiple(*self._lose_worker(worker))

    @rule(target=claims, dying=st.integers(0, 2), rescuer=st.integers(0, 2))
    def a_worker_dies_and_another_takes_over(self, dying: int, rescuer: int) -> Any:
        """The dead worker's claims stay in the bundle: from now on their tokens are stale."""
        self.last_step = f"a_worker_dies_and_another_takes_over(w{dying}, w{rescuer})"
        zombies = self._lose_worker(dying)
        fresh = self._claim(rescuer, LONG_LEASE, LONG_LEASE)
        return multiple(*zombies, *fresh)

    @rule(pairs=st.lists(claims, max_size=4))
    def renew(self, pairs: list[ClaimPair]) -> None:
        self.last_step = f"renew({[p.task_id for p in pairs]})"
        real = self.backend.renew([p.real for p in pairs], LONG_LEASE)
        model = self.model.renew([p.model for p in pairs], LONG_LEASE)
        for r, m in zip(real, model):
            if m.value == "lost" and r.value != "lost":
                pytest.fail(violated("a stale fencing token was accepted by renew()"))
        if real != model:
            self._disagree("renew answers", [s.value for s in real], [s.value for s in model])

    @rule(pair=claims)
    def complete(self, pair: ClaimPair) -> None:
        result = f"result-{next(self.seq)}".encode()
        self._fenced("complete", pair, lambda b, c: b.complete(c, result))

    @rule(pair=claims, future=st.booleans())
    def retry(self, pair: ClaimPair, future: bool) -> None:
        n = next(self.seq)

        def call(b: Backend, c: Claim) -> None:
            start = self.model_start if b is self.model else self.real_start
            b.retry(c, self._due(start, n, future), f"retry {n}")

        self._fenced("retry", pair, call)

    @rule(pair=claims)
    def fail(self, pair: ClaimPair) -> None:
        self._fenced("fail", pair, lambda b, c: b.fail(c, "Traceback: failed"))

    @rule(pair=claims)
    def discard(self, pair: ClaimPair) -> None:
        self._fenced("discard", pair, lambda b, c: b.discard(c, "discarded"))

    @rule(pair=claims)
    def acknowledge_cancel(self, pair: ClaimPair) -> None:
        self._fenced("acknowledge_cancel", pair, lambda b, c: b.acknowledge_cancel(c, "stopped"))

    @rule(pair=claims)
    def release(self, pair: ClaimPair) -> None:
        self.last_step = f"release({pair.task_id})"
        self.model.release([pair.model])
        self.backend.release([pair.real])

    @rule(worker=st.integers(0, 2))
    def release_worker(self, worker: int) -> None:
        self.last_step = f"release_worker(w{worker})"
        real = self.backend.release_worker(self._worker(worker))
        model = self.model.release_worker(self._worker(worker))
        if real != model:
            self._disagree("leases released", real, model)

    @rule(task_id=task_ids)
    def cancel(self, task_id: str) -> None:
        self.last_step = f"cancel({task_id})"
        real, model = (
            self.backend.cancel(task_id, "cancelled"),
            self.model.cancel(task_id, "cancelled"),
        )
        if real is not model:
            self._disagree("cancel answer", real.value, model.value)

    @rule(task_id=task_ids)
    def requeue_dead_letter(self, task_id: str) -> None:
        self.last_step = f"requeue_dead_letter({task_id})"
        real = self.backend.requeue_dead_letter(task_id)
        model = self.model.requeue_dead_letter(task_id)
        if real != model:
            self._disagree("requeue answer", real, model)
        if real:
            self.requeued.add(task_id)

    # ------------------------------------------------------------------ invariants

    @invariant()
    def backend_agrees_with_the_model(self) -> None:
        for task_id in self.known:
            real = self.backend.get_outcome(task_id)
            model = self.model.get_outcome(task_id)
            if real is None or model is None:
                if real is not model:
                    self._disagree(f"existence of {task_id}", real, model)
                continue
            if real.state is not model.state:
                self._disagree(f"state of {task_id}", real.state.value, model.state.value)
            for field in ("retry_count", "deliveries", "data", "name"):
                a, b = getattr(real.task, field), getattr(model.task, field)
                if a != b:
                    self._disagree(f"{field} of {task_id}", a, b)
            if real.result != model.result and (real.result or b"") != (model.result or b""):
                self._disagree(f"result of {task_id}", real.result, model.result)
            if real.state.finished and real.error != model.error:
                self._disagree(f"error of {task_id}", real.error, model.error)
        real_stats, model_stats = self.backend.stats(self.group), self.model.stats(self.group)
        if real_stats != model_stats:
            self._disagree("stats", real_stats, model_stats)

    @invariant()
    def finished_tasks_stay_finished(self) -> None:
        for task_id in self.known:
            outcome = self.backend.get_outcome(task_id)
            if outcome is None:
                continue
            before = self.finished.get(task_id)
            if before is not None and outcome.state is not before:
                if before is TaskState.DEAD and task_id in self.requeued:
                    self.requeued.discard(task_id)
                    del self.finished[task_id]
                else:
                    pytest.fail(
                        violated(
                            f"a {before.value.upper()} task became {outcome.state.value.upper()} "
                            f"after {self.last_step}: a finished task never changes state"
                        )
                    )
            if outcome.state.finished:
                self.finished[task_id] = outcome.state
            if outcome.state is TaskState.SUCCEEDED:
                kept = self.results.setdefault(task_id, outcome.result)
                if kept != outcome.result:
                    pytest.fail(violated("a result changed after it was written"))

    def teardown(self) -> None:
        self.model.close()


def machine_for(
    backend: Backend, clock: FakeClock | None, kit_settings: KitSettings
) -> type[BackendStateMachine]:
    """A state machine class bound to ``backend`` (and its fake clock, if it follows one)."""
    return type(
        "BoundBackendStateMachine",
        (BackendStateMachine,),
        {
            "backend": backend,
            "shared_clock": clock,
            "short_lease": 0.2,
            "deadline": kit_settings.deadline(10.0),
        },
    )


class StatefulBackendTests(KitTestBase):
    """The stateful property test as a suite class: subclass it with your ``backend_factory``.

    :cvar max_examples: sequences per run with a fake clock (scaled by ``--taskkit-scale``);
        a fifth of that without one, since each "worker dies" step then waits out a lease.
    :cvar step_count: operations per sequence.
    """

    max_examples: ClassVar[int] = 50
    step_count: ClassVar[int] = 30
    #: Extra :func:`hypothesis.settings` arguments (``{"phases": ...}``, ``{"database": None}``).
    hypothesis_settings: ClassVar[dict[str, Any]] = {}

    def test_backend_matches_the_reference_model(
        self, backends: BackendPool, kit_settings: KitSettings
    ) -> None:
        machine = machine_for(backends.primary, backends.clock, kit_settings)
        examples = (
            self.max_examples if backends.clock is not None else max(1, self.max_examples // 5)
        )
        run_state_machine_as_test(
            machine,
            settings=settings(
                max_examples=kit_settings.size(examples),
                stateful_step_count=self.step_count,
                deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
                **self.hypothesis_settings,
            ),
        )
