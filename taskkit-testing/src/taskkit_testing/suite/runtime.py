"""End to end through the worker runtime: ``kit.start_processes`` on the backend under test.

Process-capable backends get real worker processes (``spawn``); single-process backends get
the runtime's thread workers. Both must run tasks to the right outcome, survive bad input,
and (processes only) lose nothing when a worker process is SIGKILLed mid-task.
"""

from __future__ import annotations

import os
import signal
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ClassVar

import pytest
from taskkit import (
    Backend,
    Failed,
    Kit,
    KitConfig,
    NotFound,
    Result,
    ResultGetTimedOut,
    Task,
    TaskState,
)

from .._base import KitSettings, KitTestBase
from ..helpers import Ledger, outcome_of, result_value, violated, wait_until
from ._handlers import ConformanceHandler

__all__ = ["RuntimeTests"]


def _config(settings: KitSettings, prefetch: int | None = None) -> KitConfig:
    # Shrunk intervals, as in the reliability battery's test profile.
    return KitConfig(
        lease_seconds=3.0,
        heartbeat_interval=0.5,
        max_idle_wait=0.2,
        control_interval=0.2,
        grace_period=settings.deadline(5.0),
        default_timeout=settings.deadline(60.0),
        prefetch=prefetch,
    )


@contextmanager
def running(
    kit: Kit, processes: int, groups: dict[str, int], timeout: float, start_method: str | None
) -> Iterator[list[Any]]:
    """Worker handles from ``kit.start_processes``, always stopped (SIGKILL as last resort)."""
    handles = kit.start_processes(processes, groups, start_method=start_method)
    try:
        yield handles
    finally:
        for handle in handles:
            if handle.is_alive():
                handle.terminate()
        deadline = time.monotonic() + timeout
        for handle in handles:
            handle.join(max(0.0, deadline - time.monotonic()))
            if handle.is_alive() and getattr(handle, "pid", None) != os.getpid():
                os.kill(handle.pid, signal.SIGKILL)
                handle.join(5)


class _Waiter:
    """Reads results while watching the workers, so a crashed worker fails fast."""

    def __init__(self, handles: list[Any], timeout: float) -> None:
        self.handles = handles
        self.timeout = timeout
        self.expected_dead: set[int] = set()

    def get(self, result: Result[Any]) -> tuple[str, Any]:
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                return "ok", result.get(timeout=min(1.0, max(0.0, deadline - time.monotonic())))
            except NotFound as exc:
                return "not_found", exc.reason
            except Failed as exc:
                return "failed", exc.message
            except ResultGetTimedOut:
                if time.monotonic() >= deadline:
                    return "timed_out", f"no outcome within {self.timeout:g}s"
            dead = [
                h
                for i, h in enumerate(self.handles)
                if i not in self.expected_dead and not h.is_alive()
            ]
            if dead:
                pytest.fail(
                    violated(
                        "worker processes on the backend must keep running",
                        got=f"a worker exited with code {dead[0].exitcode}; its log says why (a "
                        "backend that cannot be rebuilt in a child process, for instance)",
                    )
                )


class RuntimeTests(KitTestBase):
    """The worker runtime on the backend: outcomes, bad input, crash recovery.

    :cvar worker_start_method: how ``kit.start_processes`` starts worker processes. ``spawn``
        (the default here) proves the backend rebuilds from its pickled configuration in a
        fresh interpreter; None uses the platform's default.
    """

    worker_start_method: ClassVar[str | None] = "spawn"

    def _running(
        self, kit: Kit, processes: int, groups: dict[str, int], settings: KitSettings
    ) -> Any:
        return running(kit, processes, groups, settings.deadline(30.0), self.worker_start_method)

    @pytest.mark.taskkit_processes
    def test_workers_run_tasks_to_their_outcomes(
        self, backend: Backend, group: str, kit_settings: KitSettings
    ) -> None:
        kit = Kit(backend, ConformanceHandler(), _config(kit_settings))
        adds = [
            kit.initiate_task(group, "add", {"a": i, "b": 1}) for i in range(kit_settings.size(20))
        ]
        boom = kit.initiate_task(group, "boom", None)
        flaky = kit.initiate_task(group, "flaky", None)
        unknown = kit.initiate_task(group, "no-such-task", None)
        undecodable = kit.initiate_tasks(
            Task(f"{group}-raw", group, "add", b"\xff\xfe not json", time.time(), time.time())
        )[0]
        unknown_group = kit.initiate_task(group + "-nobody", "add", {"a": 1, "b": 1})
        with self._running(kit, 2, {group: 2}, kit_settings) as handles:
            waiter = _Waiter(handles, kit_settings.deadline(60.0))
            values = [waiter.get(r) for r in adds]
            assert values == [("ok", i + 1) for i in range(len(adds))], violated(
                "tasks run by the worker runtime did not return their results"
            )
            assert waiter.get(flaky) == ("ok", "ok"), violated("a retried task did not run again")
            kind, message = waiter.get(boom)
            assert kind == "failed" and "ValueError: boom" in message, violated(
                "a failing task must end FAILED with its traceback"
            )
            kind, reason = waiter.get(unknown)
            assert kind == "not_found" and "unknown task" in reason, violated(
                "a task with an unknown name must end DISCARDED with a reason"
            )
            kind, message = waiter.get(undecodable)
            assert kind == "failed" and message, violated(
                "a task whose data cannot be decoded must end FAILED with a reason"
            )
            after = kit.initiate_task(group, "add", {"a": 40, "b": 2})
            assert waiter.get(after) == ("ok", 42), violated(
                "a worker stopped working after bad input"
            )
            assert all(h.is_alive() for h in handles), violated("bad input killed a worker")
            outcome_of(
                backend,
                unknown_group.id,
                "a task of a group no worker serves must stay QUEUED",
                state=TaskState.QUEUED,
            )
        outcome_of(
            backend, flaky.id, "a task retried once must count one retry", task__retry_count=1
        )

    @pytest.mark.taskkit_processes
    def test_workers_pick_up_work_promptly(
        self, backend: Backend, group: str, kit_settings: KitSettings, record_property: Any
    ) -> None:
        kit = Kit(backend, ConformanceHandler(), _config(kit_settings))
        with self._running(kit, 1, {group: 2}, kit_settings) as handles:
            first = kit.initiate_task(group, "add", {"a": 0, "b": 0})
            got = _Waiter(handles, kit_settings.deadline(60.0)).get(first)
            assert got == ("ok", 0), violated(
                "a task run by the worker runtime must return its result", got=got
            )
            latencies = []
            for i in range(5):
                started = time.monotonic()
                value = result_value(
                    kit.initiate_task(group, "add", {"a": i, "b": i}),
                    kit_settings.deadline(30.0),
                    "running workers must pick up and finish a new task",
                )
                latencies.append(time.monotonic() - started)
                assert value == 2 * i, violated(
                    "a task run by the worker runtime must return its result", got=value
                )
        record_property("initiate_to_result_s_max", round(max(latencies), 4))
        record_property("initiate_to_result_s_min", round(min(latencies), 4))

    @pytest.mark.taskkit_processes
    @pytest.mark.taskkit_requires("supports_processes")
    @pytest.mark.parametrize("prefetch", [0, 2], ids=["no-prefetch", "prefetch"])
    def test_sigkill_a_worker_process_mid_task(
        self,
        backend: Backend,
        group: str,
        kit_settings: KitSettings,
        tmp_path: Path,
        record_property: Any,
        prefetch: int,
    ) -> None:
        # The duplicate bound: the killed process's running tasks, plus the outcomes its
        # executors had not seen written yet (up to twice the prefetch, see KitConfig).
        ledger = Ledger(tmp_path / "ledger.log")
        kit = Kit(backend, ConformanceHandler(str(ledger.path)), _config(kit_settings, prefetch))
        count, threads = kit_settings.size(60), 3
        bound = threads + 2 * prefetch
        results = [kit.initiate_task(group, "sleep", {"seconds": 0.05}) for _ in range(count)]
        with self._running(kit, 2, {group: threads}, kit_settings) as handles:
            waiter = _Waiter(handles, kit_settings.deadline(90.0))
            wait_until(
                lambda: ledger.count("end") >= count // 4,
                kit_settings.deadline(60.0),
                message="worker processes must run tasks on the backend",
            )
            victim = handles[0]
            waiter.expected_dead.add(0)
            os.kill(victim.pid, signal.SIGKILL)
            victim.join(10)
            killed_at = time.monotonic()
            # What the supervisor does when it sees a worker process die.
            released = backend.release_worker(victim.worker_id)
            outcomes = [waiter.get(r) for r in results]
            drained = time.monotonic() - killed_at
        record_property("leases_released", released)
        record_property("kill_to_drained_s", round(drained, 3))
        assert outcomes == [("ok", r.id) for r in results], violated(
            f"{sum(1 for o, r in zip(outcomes, results) if o != ('ok', r.id))} task(s) did not "
            "complete after a worker process was SIGKILLed mid-task"
        )
        starts = Counter(f[0] for f in ledger.events("start"))
        duplicates = sum(starts.values()) - len(starts)
        record_property("duplicates", duplicates)
        assert duplicates <= bound, violated(
            f"{duplicates} duplicate runs after one kill of a {threads}-thread process "
            f"(prefetch {prefetch}; at most {bound} may run twice)"
        )
