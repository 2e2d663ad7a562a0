"""Async tasks end to end: coroutines on the worker's event loop, on the backend under test.

``async def`` tasks run as coroutines of one event loop per worker process, a group's count
being their concurrency. The backend sees the same claims, renewals and outcome writes as
for threads, but many more of them at once from one process, and a lease keeper that must
keep every coroutine's lease alive while they all wait. Process-capable backends get real
worker processes (``spawn``), the others the runtime's thread workers.
"""

from __future__ import annotations

import asyncio
import os
import signal
import threading
from collections import Counter
from pathlib import Path
from typing import Any, ClassVar

import pytest
from taskkit import Backend, Kit, KitConfig, Task, TaskHandler, TaskState, current_task

from .._base import KitSettings, KitTestBase
from ..helpers import Ledger, outcome_of, violated, wait_until
from .runtime import _Waiter, running

__all__ = ["AsyncConformanceHandler", "AsyncTaskTests"]

#: The concurrency of the async group in the SIGKILL test (one process's coroutines).
CONCURRENCY = 50


class AsyncConformanceHandler(TaskHandler):
    """``async def handle``, so every group is async. Task names: ``add`` ({a, b} -> a +
    b), ``boom`` (raises, never retried), ``whoami`` (the task id ``current_task()`` names
    after the coroutine yielded to the others), ``hold`` ({flag}: waits until the file
    ``flag`` exists; logs ``started``), ``sleep`` ({seconds}: logs ``start``/``end`` to the
    ledger, returns the task id).

    :param ledger_path: where ``hold`` and ``sleep`` log, if anywhere.
    """

    def __init__(self, ledger_path: str | None = None) -> None:
        self.ledger_path = ledger_path
        self._ledger: Ledger | None = None
        self._lock = threading.Lock()

    def __getstate__(self) -> dict[str, Any]:
        return {"ledger_path": self.ledger_path}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["ledger_path"])  # type: ignore[misc]

    def _log(self, event: str, *fields: object) -> None:
        if self.ledger_path is None:
            return
        with self._lock:
            if self._ledger is None:
                self._ledger = Ledger(self.ledger_path)
        self._ledger.write(event, *fields)  # one os.write per line: never torn

    async def handle(self, task: Task) -> Any:
        data = self.decode_data(task)
        if task.name == "add":
            await asyncio.sleep(0)
            return data["a"] + data["b"]
        if task.name == "boom":
            await asyncio.sleep(0)
            raise ValueError(f"boom from {task.id}")
        if task.name == "whoami":
            await asyncio.sleep(0.02)  # the other coroutines of the batch run meanwhile
            context = current_task()
            return None if context is None else context.task.id
        if task.name == "hold":
            self._log("started", task.id, task.deliveries, os.getpid())
            while not os.path.exists(data["flag"]):
                await asyncio.sleep(0.02)
            return "released"
        if task.name == "sleep":
            self._log("start", task.id, task.deliveries, os.getpid())
            await asyncio.sleep(data["seconds"])  # the work: kills land in the middle of it
            self._log("end", task.id, os.getpid())
            return task.id
        raise ValueError(f"no such conformance task {task.name!r}")

    def get_retry_interval(self, task: Task, exception: Exception) -> float | None:
        return None


def _config(settings: KitSettings, **changes: Any) -> KitConfig:
    options: dict[str, Any] = {
        "lease_seconds": 3.0,
        "heartbeat_interval": 0.5,
        "max_idle_wait": 0.2,
        "control_interval": 0.2,
        "grace_period": settings.deadline(5.0),
        "default_timeout": settings.deadline(60.0),
        **changes,
    }
    return KitConfig(**options)


class AsyncTaskTests(KitTestBase):
    """``async def`` tasks through the worker runtime: outcomes, leases renewed past their
    length, time limits, cancellation, and no loss when a process running 50 coroutines is
    SIGKILLed."""

    #: How workers start (``spawn``, as in ``RuntimeTests``; None: the platform's default).
    worker_start_method: ClassVar[str | None] = "spawn"

    def _running(
        self, kit: Kit, processes: int, groups: dict[str, int], settings: KitSettings
    ) -> Any:
        return running(kit, processes, groups, settings.deadline(30.0), self.worker_start_method)

    @pytest.mark.taskkit_processes
    def test_async_tasks_run_to_their_outcomes(
        self, backend: Backend, group: str, kit_settings: KitSettings
    ) -> None:
        kit = Kit(backend, AsyncConformanceHandler(), _config(kit_settings))
        count = kit_settings.size(40)
        adds = [kit.initiate_task(group, "add", {"a": i, "b": 1}) for i in range(count)]
        whoami = [kit.initiate_task(group, "whoami", None) for _ in range(20)]
        boom = kit.initiate_task(group, "boom", None)
        with self._running(kit, 1, {group: 20}, kit_settings) as handles:
            waiter = _Waiter(handles, kit_settings.deadline(60.0))
            values = [waiter.get(r) for r in adds]
            assert values == [("ok", i + 1) for i in range(count)], violated(
                "async tasks run by the worker runtime did not return their results",
                got=[v for v, i in zip(values, range(count)) if v != ("ok", i + 1)][:3],
            )
            names = [waiter.get(r) for r in whoami]
            assert names == [("ok", r.id) for r in whoami], violated(
                "current_task() inside a coroutine must name that coroutine's own task, "
                "while 20 of them interleave on one loop"
            )
            kind, message = waiter.get(boom)
            assert kind == "failed" and "ValueError: boom" in message, violated(
                "a failing async task must end FAILED with its traceback", got=(kind, message)
            )

    @pytest.mark.taskkit_processes
    def test_leases_are_renewed_while_a_coroutine_runs_past_its_lease(
        self, backend: Backend, group: str, kit_settings: KitSettings, tmp_path: Path
    ) -> None:
        lease = 1.0
        config = _config(kit_settings, lease_seconds=lease, heartbeat_interval=0.2)
        kit = Kit(backend, AsyncConformanceHandler(), config)
        flag = tmp_path / "release"
        held = [kit.initiate_task(group, "hold", {"flag": str(flag)}) for _ in range(3)]
        with self._running(kit, 1, {group: 5}, kit_settings) as handles:
            waiter = _Waiter(handles, kit_settings.deadline(60.0))

            def all_running() -> bool:
                outcomes = [backend.get_outcome(r.id) for r in held]
                return all(o is not None and o.state is TaskState.RUNNING for o in outcomes)

            wait_until(
                all_running,
                kit_settings.deadline(60.0),
                message="a worker must claim and start async tasks",
            )
            since = backend.now()
            wait_until(
                lambda: backend.now() > since + 3 * lease,
                kit_settings.deadline(30.0),
                message="the backend's clock must move on",
            )
            stolen = backend.claim(group, "intruder", 5, 600.0, 5).claims
            assert not stolen, violated(
                "the leases of running coroutines must be renewed past their length (3 "
                "coroutines held their tasks for 3 leases; another worker could claim them)",
                got=[c.task.id for c in stolen],
            )
            flag.touch()
            values = [waiter.get(r) for r in held]
            assert values == [("ok", "released")] * len(held), violated(
                "coroutines that ran past their lease must still complete", got=values
            )
        for result in held:
            outcome_of(
                backend,
                result.id,
                "a coroutine whose lease was renewed runs once (one delivery)",
                state=TaskState.SUCCEEDED,
                task__deliveries=1,
            )

    @pytest.mark.taskkit_processes
    def test_a_time_limit_and_a_cancel_stop_coroutines(
        self, backend: Backend, group: str, kit_settings: KitSettings, tmp_path: Path
    ) -> None:
        kit = Kit(backend, AsyncConformanceHandler(), _config(kit_settings))
        never = {"flag": str(tmp_path / "never")}
        timed = kit.initiate_task(group, "hold", never, timeout=0.5)
        doomed = kit.initiate_task(group, "hold", never)
        with self._running(kit, 1, {group: 4}, kit_settings) as handles:
            waiter = _Waiter(handles, kit_settings.deadline(60.0))
            wait_until(
                lambda: (
                    (o := backend.get_outcome(doomed.id)) is not None
                    and o.state is TaskState.RUNNING
                ),
                kit_settings.deadline(60.0),
                message="a worker must claim and start an async task",
            )
            kit.cancel(doomed.id)
            kind, message = waiter.get(timed)
            assert (kind, message) == ("failed", "timed out after 0.5s"), violated(
                "a coroutine past its time limit must be cancelled and its task fail "
                '"timed out after 0.5s"',
                got=(kind, message),
            )
            kind, message = waiter.get(doomed)
            assert kind == "failed", violated(
                "a cancel request must stop a running coroutine", got=(kind, message)
            )
            after = kit.initiate_task(group, "add", {"a": 1, "b": 1})
            assert waiter.get(after) == ("ok", 2), violated(
                "the worker's loop must serve on after it cancelled coroutines"
            )
        outcome_of(
            backend,
            doomed.id,
            "a coroutine stopped by a cancel request must end CANCELLED",
            state=TaskState.CANCELLED,
        )

    @pytest.mark.taskkit_slow
    @pytest.mark.taskkit_processes
    @pytest.mark.taskkit_requires("supports_processes")
    def test_sigkill_a_process_running_50_coroutines(
        self,
        backend: Backend,
        group: str,
        kit_settings: KitSettings,
        tmp_path: Path,
        record_property: Any,
    ) -> None:
        """Each coroutine holds its slot until its outcome is stored, so a killed process
        can make at most its concurrency's worth of tasks run twice."""
        ledger = Ledger(tmp_path / "ledger.log")
        kit = Kit(backend, AsyncConformanceHandler(str(ledger.path)), _config(kit_settings))
        count = kit_settings.size(300, minimum=150)
        results = [kit.initiate_task(group, "sleep", {"seconds": 0.3}) for _ in range(count)]
        groups = {group: CONCURRENCY}
        with self._running(kit, 1, groups, kit_settings) as victims:
            victim = victims[0]

            def victim_mid_task() -> bool:
                lines = ledger.lines()
                started = {
                    ln.fields[0]
                    for ln in lines
                    if ln.event == "start" and int(ln.fields[2]) == victim.pid
                }
                ended = {ln.fields[0] for ln in lines if ln.event == "end"}
                return len(started - ended) >= CONCURRENCY // 2

            # The second process starts once the victim runs coroutines: started together,
            # it could drain the queue before the victim's first claim.
            wait_until(
                victim_mid_task,
                kit_settings.deadline(60.0),
                interval=0.02,
                message=f"a worker process must run {CONCURRENCY // 2} or more coroutines at once",
            )
            with self._running(kit, 1, groups, kit_settings) as rescuers:
                waiter = _Waiter(rescuers, kit_settings.deadline(120.0))
                wait_until(
                    lambda: ledger.count("end") >= count // 4 and victim_mid_task(),
                    kit_settings.deadline(120.0),
                    interval=0.02,
                    message="two worker processes must run async tasks side by side",
                )
                os.kill(victim.pid, signal.SIGKILL)
                victim.join(10)
                # What the supervisor does when it sees a worker process die.
                released = backend.release_worker(victim.worker_id)
                outcomes = [waiter.get(r) for r in results]
        record_property("leases_released", released)
        assert released >= 1, violated(
            "release_worker must expire the leases a SIGKILLed worker held mid-task",
            got=released,
        )
        lost = sum(1 for o, r in zip(outcomes, results) if o != ("ok", r.id))
        assert not lost, violated(
            f"{lost} async task(s) did not complete after a worker process running "
            f"{CONCURRENCY} coroutines was SIGKILLed"
        )
        starts = Counter(f[0] for f in ledger.events("start"))
        duplicates = sum(starts.values()) - len(starts)
        record_property("duplicates", duplicates)
        assert duplicates <= CONCURRENCY, violated(
            f"{duplicates} duplicate runs after one kill of a process running {CONCURRENCY} "
            f"coroutines (at most {CONCURRENCY} may run twice)"
        )
