"""The producer's asyncio primitives: ``aput``, ``aget_outcome``, ``await_outcome``.

Each test runs its coroutines with ``asyncio.run`` (no pytest-asyncio needed). Workers stay
blocking code in threads, as in production: a finish from another thread must wake the
coroutines waiting on that task.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import pytest
from taskkit import Backend, Outcome, TaskState

from .._base import BackendPool, KitSettings, KitTestBase, Timing
from ..helpers import TaskMaker, claim_one, field_differences, outcome_of, violated
from .results import FINISHERS

__all__ = ["AsyncProducerTests"]

T = TypeVar("T")

#: Concurrent waiters of the fan-in test, and how many of them wait on each task.
WAITERS = 500
WAITERS_PER_TASK = 10


def _run(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run ``coroutine`` on a fresh event loop whose default executor has two threads.

    Two threads, so that a wait that held a thread for its whole duration would starve
    everything else that needs one (the guarantee that waits hold no thread).
    """

    async def main() -> T:
        executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="kit-loop-executor")
        asyncio.get_running_loop().set_default_executor(executor)
        return await coroutine

    return asyncio.run(main())


#: Lets freshly started waiters arm their notification before the finish. The tests pass
#: either way (a waiter that has not armed yet sees the outcome at once); this only makes the
#: measured wake-up the interesting case.
SETTLE = 0.1


class AsyncProducerTests(KitTestBase):
    """``aput`` stores what ``put`` stores; ``await_outcome`` keeps ``wait_for_outcome``'s word."""

    def test_aput_stores_the_task_as_put_does(self, backend: Backend, tasks: TaskMaker) -> None:
        task = tasks.one(name="send", data=bytes(range(256)), timeout=12.5, ttl=3600.0)
        answer = _run(backend.aput([task]))
        assert answer == [True], violated("aput() of a new task must answer [True]", got=answer)
        outcome = outcome_of(backend, task.id, "a task aput() reported as stored was lost")
        assert outcome.state is TaskState.QUEUED, violated(
            "a task stored by aput() must be QUEUED", got=outcome.state
        )
        assert not (diff := field_differences(outcome.task, task)), violated(
            "a task stored by aput() must come back field for field (binary data included)",
            got=diff,
        )
        assert _run(backend.aput([])) == [], violated("aput([]) must answer []")

    def test_aput_is_idempotent_with_put(self, backend: Backend, tasks: TaskMaker) -> None:
        first, second = tasks.one(data=b"first"), tasks.one(data=b"second")
        backend.put([first])
        answer = _run(backend.aput([first.evolve(data=b"changed"), second]))
        assert answer == [False, True], violated(
            "aput() must answer False for an id put() stored and True for a new one", got=answer
        )
        answer = backend.put([second.evolve(data=b"changed")])
        assert answer == [False], violated(
            "put() of an id aput() stored must be a no-op reported as False", got=answer
        )
        again = _run(backend.aput([second.evolve(name="other")]))
        assert again == [False], violated(
            "aput() of an id it stored before must be a no-op reported as False", got=again
        )
        for task in (first, second):
            outcome = outcome_of(backend, task.id, "a repeated aput() lost the stored task")
            assert not (diff := field_differences(outcome.task, task)), violated(
                "a repeated aput() changed the stored task", got=diff
            )

    def test_aput_stores_a_batch_of_several_groups(
        self, backend: Backend, tasks: TaskMaker, timing: Timing
    ) -> None:
        other_group = tasks.group + "-b"
        batch = tasks.many(5) + tasks.many(5, group=other_group)
        answer = _run(backend.aput(batch))
        assert answer == [True] * len(batch), violated(
            "aput() of new tasks must answer True for each, whatever their groups", got=answer
        )
        for group in (tasks.group, other_group):
            got = backend.claim(group, "w1", 100, timing.long_lease, 3)
            claimed = sorted(c.task.id for c in got.claims)
            expected = sorted(t.id for t in batch if t.group == group)
            assert claimed == expected, violated(
                f"every task aput() stored must be claimable from its group {group!r}",
                got=f"{len(claimed)} of {len(expected)} claimed",
            )

    def test_aget_outcome_reads_what_get_outcome_reads(
        self, backend: Backend, tasks: TaskMaker, timing: Timing
    ) -> None:
        assert _run(backend.aget_outcome("no-such-task-id")) is None, violated(
            "aget_outcome of an unknown id must be None"
        )
        task = tasks.one()
        backend.put([task])
        queued = _run(backend.aget_outcome(task.id))
        assert queued == backend.get_outcome(task.id), violated(
            "aget_outcome must answer what get_outcome answers", got=queued
        )
        claim = claim_one(backend, task.group, "w1", timing.long_lease, 3)
        backend.complete(claim, b"\x00result\xff")
        done = _run(backend.aget_outcome(task.id))
        assert done is not None and done.state is TaskState.SUCCEEDED, violated(
            "aget_outcome must see a completed task SUCCEEDED", got=done and done.state
        )
        assert done.result == b"\x00result\xff", violated(
            "aget_outcome must return the stored result byte for byte", got=done.result
        )

    def test_await_outcome_of_a_finished_task_returns_at_once(
        self, backend: Backend, tasks: TaskMaker, timing: Timing, kit_settings: KitSettings
    ) -> None:
        task = tasks.one()
        _run(backend.aput([task]))
        claim = claim_one(backend, task.group, "w1", timing.long_lease, 3)
        backend.complete(claim, b"done")
        started = time.monotonic()
        outcome = _run(backend.await_outcome(task.id, kit_settings.deadline(30.0)))
        assert time.monotonic() - started < kit_settings.deadline(5.0), violated(
            "await_outcome of a finished task must return at once, not wait"
        )
        assert outcome is not None and outcome.result == b"done", violated(
            "await_outcome of a finished task must return its outcome",
            got=outcome and outcome.result,
        )

    def test_await_outcome_of_an_unknown_task_returns_none_at_once(
        self, backend: Backend, kit_settings: KitSettings
    ) -> None:
        started = time.monotonic()
        outcome = _run(backend.await_outcome("no-such-task", kit_settings.deadline(30.0)))
        assert outcome is None, violated(
            "await_outcome of an unknown task must return None", got=outcome
        )
        assert time.monotonic() - started < kit_settings.deadline(5.0), violated(
            "await_outcome of an unknown task must return None at once, not wait"
        )

    def test_await_outcome_honours_its_timeout(
        self, backend: Backend, tasks: TaskMaker, kit_settings: KitSettings, record_property: Any
    ) -> None:
        task = tasks.one()
        backend.put([task])
        started = time.monotonic()
        outcome = _run(backend.await_outcome(task.id, 0.5))
        took = time.monotonic() - started
        record_property("await_outcome_0.5s_took_s", round(took, 3))
        assert outcome is not None and outcome.state is TaskState.QUEUED, violated(
            "await_outcome must return the unfinished outcome when it times out",
            got=outcome and outcome.state,
        )
        assert took >= 0.5 - 0.02, violated(
            "await_outcome of an unfinished task returned before its timeout (0.5s)",
            got=f"{took:.3f}s",
        )
        assert took <= 0.5 + kit_settings.deadline(1.0), violated(
            f"await_outcome(timeout=0.5) waited {took:.2f}s"
        )

    @pytest.mark.parametrize("operation", sorted(FINISHERS))
    def test_await_outcome_wakes_when_a_worker_thread_finishes_the_task(
        self,
        operation: str,
        backends: BackendPool,
        tasks: TaskMaker,
        timing: Timing,
        kit_settings: KitSettings,
        record_property: Any,
    ) -> None:
        producer, worker = backends.primary, backends.new()
        task = tasks.one()
        _run(producer.aput([task]))
        claim = claim_one(worker, task.group, "w1", timing.long_lease, 3)
        finish, state = FINISHERS[operation]
        timeout = kit_settings.deadline(10.0)

        async def scenario() -> tuple[Outcome | None, float]:
            waiter = asyncio.create_task(producer.await_outcome(task.id, timeout))
            await asyncio.sleep(SETTLE)
            finished = await asyncio.to_thread(_finish_at, finish, worker, claim)
            return await waiter, time.monotonic() - finished

        outcome, latency = _run(scenario())
        record_property(f"await_wake_latency_{operation}_s", round(latency, 4))
        assert latency < timeout / 2, violated(
            f"await_outcome did not wake when another thread finished the task ({operation}): "
            f"it returned {latency:.2f}s later, with a {timeout:.0f}s timeout"
        )
        assert outcome is not None and outcome.state is state, violated(
            f"await_outcome must return the finished outcome ({state.value})",
            got=outcome and outcome.state,
        )

    def test_many_concurrent_waiters_on_one_loop_are_all_woken(
        self,
        backends: BackendPool,
        tasks: TaskMaker,
        timing: Timing,
        kit_settings: KitSettings,
        record_property: Any,
    ) -> None:
        producer, worker = backends.primary, backends.new()
        count = kit_settings.size(WAITERS, minimum=WAITERS_PER_TASK)
        made = tasks.many(max(1, count // WAITERS_PER_TASK))
        _run(producer.aput(made))
        claims = worker.claim(tasks.group, "w1", len(made), timing.long_lease, 3).claims
        assert len(claims) == len(made), violated(
            "claim() must hand out every task aput() stored", got=f"{len(claims)} claim(s)"
        )
        timeout = kit_settings.deadline(30.0)

        async def scenario() -> tuple[list[Outcome | None], float]:
            waiters = [
                asyncio.create_task(producer.await_outcome(made[i % len(made)].id, timeout))
                for i in range(count)
            ]
            await asyncio.sleep(SETTLE)

            def finish_all() -> float:
                for claim in claims:
                    worker.complete(claim, claim.task.id.encode())
                return time.monotonic()

            finished = await asyncio.to_thread(finish_all)
            outcomes = await asyncio.gather(*waiters)
            return outcomes, time.monotonic() - finished

        outcomes, took = _run(scenario())
        record_property(f"await_{count}_waiters_all_woken_s", round(took, 3))
        wrong = [
            (i, o and o.state)
            for i, o in enumerate(outcomes)
            if o is None or o.result != made[i % len(made)].id.encode()
        ]
        assert not wrong, violated(
            f"every one of {count} concurrent waiters must return its task's finished outcome",
            got=f"{len(wrong)} did not, e.g. {wrong[:3]}",
        )
        assert took < timeout / 2, violated(
            f"{count} concurrent waiters must all wake when their tasks finish",
            got=f"the last returned {took:.2f}s after the finishes, with a {timeout:.0f}s timeout",
        )

    def test_waiters_hold_no_thread_while_they_wait(
        self, backend: Backend, tasks: TaskMaker, kit_settings: KitSettings
    ) -> None:
        waited, other = tasks.one(), tasks.one()
        backend.put([waited])
        count = 20  # ten times the loop's executor threads (see ``_run``)
        # The waits outlast the check; short enough that a broken backend's blocked threads
        # (which asyncio.run waits for at its end) do not hold the run for long.
        wait, limit = kit_settings.deadline(12.0), kit_settings.deadline(5.0)

        async def scenario() -> tuple[list[bool], float]:
            waiters = [
                asyncio.create_task(backend.await_outcome(waited.id, wait)) for _ in range(count)
            ]
            await asyncio.sleep(SETTLE)
            started = time.monotonic()
            # Were each wait holding a thread, these would queue behind the waits.
            stored = await asyncio.wait_for(backend.aput([other]), limit)
            await asyncio.wait_for(backend.aget_outcome(other.id), limit)
            took = time.monotonic() - started
            for waiter in waiters:
                waiter.cancel()
            await asyncio.gather(*waiters, return_exceptions=True)
            return stored, took

        try:
            stored, took = _run(scenario())
        except asyncio.TimeoutError:
            pytest.fail(
                violated(
                    f"with {count} coroutines in await_outcome, aput and aget_outcome on the same "
                    "loop must still run: a wait must hold no thread"
                )
            )
        assert stored == [True], violated("aput() must store while others wait", got=stored)
        assert took < limit, violated(
            "aput and aget_outcome must not wait for the waits in progress", got=f"{took:.2f}s"
        )

    def test_cancelled_waits_end_at_once_and_later_waits_still_wake(
        self,
        backends: BackendPool,
        tasks: TaskMaker,
        timing: Timing,
        kit_settings: KitSettings,
    ) -> None:
        producer, worker = backends.primary, backends.new()
        task = tasks.one()
        producer.put([task])
        claim = claim_one(worker, task.group, "w1", timing.long_lease, 3)
        timeout = kit_settings.deadline(30.0)

        async def scenario() -> tuple[float, Outcome | None, float]:
            doomed = [
                asyncio.create_task(producer.await_outcome(task.id, timeout)) for _ in range(50)
            ]
            await asyncio.sleep(SETTLE)
            started = time.monotonic()
            for waiter in doomed:
                waiter.cancel()
            results = await asyncio.gather(*doomed, return_exceptions=True)
            cancel_took = time.monotonic() - started
            others = [
                type(r).__name__ for r in results if not isinstance(r, asyncio.CancelledError)
            ]
            assert not others, violated(
                "a cancelled await_outcome must end with CancelledError", got=others[:3]
            )
            waiter = asyncio.create_task(producer.await_outcome(task.id, timeout))
            await asyncio.sleep(SETTLE)
            finished = await asyncio.to_thread(_finish_at, FINISHERS["complete"][0], worker, claim)
            return cancel_took, await waiter, time.monotonic() - finished

        cancel_took, outcome, latency = _run(scenario())
        assert cancel_took < kit_settings.deadline(5.0), violated(
            "cancelling waits in await_outcome must end them at once", got=f"{cancel_took:.2f}s"
        )
        assert outcome is not None and outcome.state is TaskState.SUCCEEDED, violated(
            "a wait that starts after others on the same task were cancelled must still see the "
            "task finish",
            got=outcome and outcome.state,
        )
        assert latency < timeout / 2, violated(
            "a wait that starts after others on the same task were cancelled must still wake",
            got=f"it returned {latency:.2f}s after the finish",
        )

    def test_one_backend_serves_several_event_loops(
        self, backend: Backend, tasks: TaskMaker, kit_settings: KitSettings
    ) -> None:
        # asyncio.run twice in a row, and a loop in another thread at the same time.
        first, second, third = tasks.one(), tasks.one(), tasks.one()
        assert _run(backend.aput([first])) == [True], violated("aput() must store a new task")
        assert _run(backend.aput([second])) == [True], violated(
            "a backend must serve a second event loop after the first one ended"
        )
        answers: list[list[bool]] = []
        thread = threading.Thread(target=lambda: answers.append(_run(backend.aput([third]))))
        thread.start()
        outcome = _run(backend.await_outcome(first.id, 0.05))
        thread.join(kit_settings.deadline(10.0))
        assert answers == [[True]], violated(
            "a backend must serve event loops in two threads at once", got=answers
        )
        assert outcome is not None and outcome.state is TaskState.QUEUED, violated(
            "await_outcome must read the task on any loop", got=outcome and outcome.state
        )


def _finish_at(finish: Any, backend: Backend, claim: Any) -> float:
    """Finish ``claim`` (a worker's step, in its own thread); returns when it returned."""
    finish(backend, claim)
    return time.monotonic()
