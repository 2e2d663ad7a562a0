"""Crash recovery with real processes and SIGKILL: orphaned tasks run again, none is lost."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from taskkit import Backend, Claim, LeaseLost, TaskState

from .._base import KitSettings, KitTestBase
from ..helpers import Ledger, TaskMaker, chunks, outcome_of, raises, violated, wait_until
from . import _children
from ._processes import Children

__all__ = ["RecoveryTests"]


class RecoveryTests(KitTestBase):
    """A worker process killed mid-task loses nothing; a task that keeps killing its worker
    ends as a dead letter."""

    def _hang_and_kill(
        self,
        factory: Callable[[], Backend],
        children: Children,
        tasks: TaskMaker,
        ledger: Ledger,
        count: int,
        lease: float,
        settings: KitSettings,
    ) -> tuple[list[tuple[str, ...]], float]:
        """A child claims ``count`` tasks and is SIGKILLed while 'running' them."""
        victim = children.start(
            _children.claim_and_hang,
            factory,
            tasks.group,
            "victim",
            count,
            str(ledger.path),
            lease,
            settings.deadline(60.0),
        )
        wait_until(
            lambda: ledger.count("hanging") == 1,
            settings.deadline(60.0),
            message=f"a worker process must be able to claim {count} due tasks",
        )
        held = ledger.events("held")
        assert len(held) == count, violated(
            f"a worker process must be able to claim {count} due tasks", got=len(held)
        )
        children.kill(victim)
        return held, time.monotonic()

    @pytest.mark.taskkit_processes
    @pytest.mark.taskkit_requires("supports_processes")
    def test_killed_workers_tasks_run_again_after_release_worker(
        self,
        backend: Backend,
        picklable_factory: Callable[[], Backend],
        tasks: TaskMaker,
        kit_settings: KitSettings,
        tmp_path: Path,
        record_property: Any,
    ) -> None:
        made = tasks.many(4)
        backend.put(made)
        ledger = Ledger(tmp_path / "ledger.log")
        with Children() as children:
            held, killed_at = self._hang_and_kill(
                picklable_factory, children, tasks, ledger, 4, 600.0, kit_settings
            )
            assert backend.release_worker("victim") == 4, violated(
                "release_worker must expire every lease of a dead worker process"
            )
            batch = backend.claim(tasks.group, "rescuer", 10, 600.0, 5)
            record_property(
                "recovery_after_release_worker_s", round(time.monotonic() - killed_at, 4)
            )
        assert sorted(c.task.id for c in batch.claims) == sorted(t.id for t in made), violated(
            "the tasks of a SIGKILLed worker did not run again after release_worker"
        )
        assert all(c.task.deliveries == 2 for c in batch.claims), violated(
            "a reclaim after release_worker must count another delivery",
            got=[c.task.deliveries for c in batch.claims],
        )
        by_id = {c.task.id: c for c in batch.claims}
        for task_id, token, lease_expires in held:
            stale = Claim(by_id[task_id].task, token, float(lease_expires), "victim")
            with raises(LeaseLost, "the dead worker's stale token was accepted by complete()"):
                backend.complete(stale, b"zombie")
        for claim in batch.claims:
            backend.complete(claim, b"rescued")
        assert all(
            (o := backend.get_outcome(t.id)) is not None and o.state is TaskState.SUCCEEDED
            for t in made
        ), violated("a rescued task did not end SUCCEEDED")

    @pytest.mark.taskkit_processes
    @pytest.mark.taskkit_requires("supports_processes")
    def test_killed_workers_tasks_run_again_after_the_lease_expires(
        self,
        backend: Backend,
        picklable_factory: Callable[[], Backend],
        tasks: TaskMaker,
        kit_settings: KitSettings,
        tmp_path: Path,
        record_property: Any,
    ) -> None:
        made = tasks.many(3)
        backend.put(made)
        ledger = Ledger(tmp_path / "ledger.log")
        lease = kit_settings.deadline(1.5)
        with Children() as children:
            held, killed_at = self._hang_and_kill(
                picklable_factory, children, tasks, ledger, 3, lease, kit_settings
            )
        expiry = max(float(f[2]) for f in held)
        reclaimed: list[Claim] = []

        def reclaim() -> bool:
            checked = backend.now()
            batch = backend.claim(tasks.group, "rescuer", 10, 600.0, 5)
            if batch.claims and checked < min(float(f[2]) for f in held) - 1e-3:
                pytest.fail(violated("a lease was taken over before it expired"))
            reclaimed.extend(batch.claims)
            return len(reclaimed) == len(made)

        waited = wait_until(
            reclaim,
            max(0.0, expiry - backend.now()) + kit_settings.deadline(15.0),
            message="the tasks of a SIGKILLed worker must be claimable once their lease expired",
        )
        record_property("recovery_by_lease_expiry_s", round(time.monotonic() - killed_at, 3))
        record_property("recovery_wait_after_kill_s", round(waited, 3))
        assert sorted(c.task.id for c in reclaimed) == sorted(t.id for t in made), violated(
            "the tasks of a SIGKILLed worker did not run again after their lease expired"
        )
        for claim in reclaimed:
            backend.complete(claim, b"ok")

    @pytest.mark.taskkit_processes
    @pytest.mark.taskkit_requires("supports_processes")
    def test_a_task_that_kills_its_worker_ends_as_a_dead_letter(
        self,
        backend: Backend,
        picklable_factory: Callable[[], Backend],
        tasks: TaskMaker,
        kit_settings: KitSettings,
        tmp_path: Path,
    ) -> None:
        now = backend.now()
        poison = tasks.one(name="poison", due=now - 10)
        normal = tasks.many(3, due=now - 5)
        backend.put([poison, *normal])
        ledger = Ledger(tmp_path / "ledger.log")
        max_deliveries = 3
        with Children() as children:
            for n in range(max_deliveries):
                worker = children.start(
                    _children.claim_and_die,
                    picklable_factory,
                    tasks.group,
                    f"proc-{n}",
                    str(ledger.path),
                    600.0,
                    max_deliveries,
                    kit_settings.deadline(30.0),
                )
                worker.join(kit_settings.deadline(60.0))
                assert worker.exitcode == -9, violated(
                    f"delivery {n + 1} of {max_deliveries} of the poison task must happen (the "
                    "worker kills itself when it gets it)",
                    got=f"exit code {worker.exitcode}, ledger {ledger.lines()[-1:]}",
                )
                # What a supervisor does when it sees a worker process die.
                released = backend.release_worker(f"proc-{n}")
                assert released == 1, violated(
                    "release_worker must expire the dead worker process's one lease", got=released
                )
        took = ledger.events("took")
        assert [t[0] for t in took] == [poison.id] * max_deliveries, violated(
            "the poison task (first in due order) was not the one delivered after each death"
        )
        assert [int(t[1]) for t in took] == list(range(1, max_deliveries + 1)), violated(
            "each death of a worker must count one delivery"
        )
        batch = backend.claim(tasks.group, "healthy", 10, 600.0, max_deliveries)
        assert poison.id not in {c.task.id for c in batch.claims}, violated(
            f"a task that killed its worker {max_deliveries} times was delivered again "
            f"(max_deliveries={max_deliveries})"
        )
        assert [o.task.id for o in batch.dead_lettered] == [poison.id], violated(
            "the claim that dead-letters a task must report it in dead_lettered",
            got=[o.task.id for o in batch.dead_lettered],
        )
        outcome = outcome_of(
            backend,
            poison.id,
            "a task that kills its worker every time must end DEAD after max_deliveries",
            state=TaskState.DEAD,
        )
        assert outcome.error and "worker lost" in outcome.error, violated(
            'a dead letter must keep its reason ("worker lost")', got=outcome.error
        )
        assert poison.id in {o.task.id for o in backend.list_dead_letters(tasks.group)}, violated(
            "list_dead_letters(group) must list the poison task"
        )
        assert sorted(c.task.id for c in batch.claims) == sorted(t.id for t in normal), violated(
            "the poison task took normal tasks down with it"
        )

    @pytest.mark.taskkit_slow
    @pytest.mark.taskkit_processes
    @pytest.mark.taskkit_requires("supports_processes")
    def test_sigkill_under_load_loses_nothing(
        self,
        backend: Backend,
        picklable_factory: Callable[[], Backend],
        tasks: TaskMaker,
        kit_settings: KitSettings,
        tmp_path: Path,
        record_property: Any,
    ) -> None:
        """3 processes x 4 threads; one is SIGKILLed mid-run and replaced, as a supervisor does."""
        # At least 200: fewer, and fast workers can drain them before the victim holds claims.
        made = tasks.many(kit_settings.size(400, minimum=200))
        for batch in chunks(made, 500):
            backend.put(batch)
        ledger = Ledger(tmp_path / "ledger.log")
        threads = 4
        with Children() as children:
            stop = children.event()

            def start(name: str, work_seconds: float = 0.01) -> Any:
                return children.start(
                    _children.claim_loop,
                    picklable_factory,
                    tasks.group,
                    name,
                    threads,
                    str(ledger.path),
                    stop,
                    600.0,
                    work_seconds,
                )

            # The victim's "handler" is slow, so its threads nearly always hold a claim.
            victim = start("proc-0", 0.2)
            victim_pid = victim.pid

            def victim_mid_task() -> bool:
                lines = ledger.lines()
                started = {
                    ln.fields[0]
                    for ln in lines
                    if ln.event == "start" and int(ln.fields[2]) == victim_pid
                }
                ended = {ln.fields[0] for ln in lines if ln.event == "end"}
                return len(started) >= threads and bool(started - ended)

            try:
                # The others start once the victim holds claims: started together, the fast
                # ones could drain the queue before the victim's first claim (on a slow store
                # they sometimes did, and the test then waited in vain).
                wait_until(
                    victim_mid_task,
                    kit_settings.deadline(60.0),
                    interval=0.02,
                    message="a worker process must claim and run tasks",
                )
                for n in (1, 2):
                    start(f"proc-{n}")
                wait_until(
                    lambda: ledger.count("end") >= len(made) // 4 and victim_mid_task(),
                    kit_settings.deadline(120.0),
                    interval=0.02,
                    message="a worker process must claim and run tasks alongside two others",
                )
                children.kill(victim)
                killed_at = time.monotonic()
                released = backend.release_worker("proc-0")
                start("proc-0b")
                wait_until(
                    lambda: _drained(backend, tasks.group),
                    kit_settings.deadline(180.0),
                    interval=0.05,
                    message="every task must end after a worker process was SIGKILLed (none lost)",
                )
            finally:
                stop.set()
            children.join_all(kit_settings.deadline(30.0))
        starts = ledger.events("start")
        per_task = Counter(f[0] for f in starts)
        orphans = {f[0] for f in starts if int(f[2]) == victim_pid} & {
            tid for tid, n in per_task.items() if n > 1
        }
        recovery = [
            float(f[4]) - killed_at for f in starts if f[0] in orphans and int(f[2]) != victim_pid
        ]
        record_property("orphans", len(orphans))
        record_property("leases_released", released)
        assert released >= 1, violated(
            "release_worker must expire the leases a SIGKILLed worker held mid-task", got=released
        )
        if recovery:
            record_property("kill_to_restart_of_orphans_max_s", round(max(recovery), 3))
        assert not ledger.events("error"), violated(
            "claim() and complete() must not raise in worker processes",
            got=ledger.events("error")[0],
        )
        ended = {f[0] for f in ledger.events("end")}
        lost = [
            t.id
            for t in made
            if t.id not in ended
            or (o := backend.get_outcome(t.id)) is None
            or o.state is not TaskState.SUCCEEDED
        ]
        assert not lost, violated(f"{len(lost)} task(s) were lost after a SIGKILL")
        duplicates = len(starts) - len(per_task)
        record_property("duplicates", duplicates)
        assert duplicates <= threads, violated(
            f"{duplicates} duplicate runs after one kill of a {threads}-thread process "
            f"(at most {threads} tasks can be in flight there)"
        )


def _drained(backend: Backend, group: str) -> bool:
    stats = backend.stats(group)
    return stats.queued == 0 and stats.running == 0
