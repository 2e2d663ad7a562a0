"""Concurrency: many threads and real processes claim each task exactly once."""

from __future__ import annotations

import pickle
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from taskkit import Backend, LeaseLost, TaskState

from .._base import BackendPool, KitSettings, KitTestBase, Timing
from ..helpers import Ledger, TaskMaker, chunks, violated, wait_until
from . import _children
from ._processes import Children

__all__ = ["ConcurrencyTests", "check_exactly_once"]


def check_exactly_once(deliveries: Counter[str], expected: set[str]) -> None:
    """Assert that every expected task was delivered once and nothing else was delivered."""
    twice = {tid: n for tid, n in deliveries.items() if n > 1}
    assert not twice, violated(
        f"{len(twice)} task(s) were claimed more than once with nothing failing (double "
        f"claim), e.g. {next(iter(twice))!r} {max(twice.values())} times"
    )
    missing = expected - set(deliveries)
    assert not missing, violated(
        f"{len(missing)} task(s) put() reported as stored were lost (never claimed)"
    )
    extra = set(deliveries) - expected
    assert not extra, violated(f"{len(extra)} task(s) were claimed that nobody put")


class ConcurrencyTests(KitTestBase):
    """No task is ever held by two valid claims, however many claimers race."""

    def test_threads_claim_each_task_once(
        self,
        backends: BackendPool,
        tasks: TaskMaker,
        timing: Timing,
        kit_settings: KitSettings,
        record_property: Any,
    ) -> None:
        made = tasks.many(kit_settings.size(600))
        for batch in chunks(made, 200):
            backends.primary.put(batch)
        # Two backend instances, two threads on each: races inside one instance and across.
        instances = [backends.new(), backends.new()]
        deliveries: Counter[str] = Counter()
        lost: list[str] = []
        errors: list[BaseException] = []
        lock = threading.Lock()
        start = threading.Barrier(4)

        def claimer(index: int) -> None:
            backend = instances[index % 2]
            try:
                start.wait()
                while True:
                    batch = backend.claim(
                        tasks.group, f"t{index}", 1 + index % 3, timing.long_lease, 3
                    )
                    if not batch.claims:
                        return
                    for claim in batch.claims:
                        with lock:
                            deliveries[claim.task.id] += 1
                        try:
                            backend.complete(claim, b"")
                        except LeaseLost:
                            lost.append(claim.task.id)
            except BaseException as exc:
                errors.append(exc)

        began = time.monotonic()
        threads = [threading.Thread(target=claimer, args=(i,)) for i in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(kit_settings.deadline(120.0))
        record_property("threads_tasks_per_s", round(len(made) / (time.monotonic() - began), 1))
        assert not errors, violated(
            "claim() and complete() must not raise under concurrent use", got=errors[0]
        )
        check_exactly_once(deliveries, {t.id for t in made})
        assert not lost, violated(f"{len(lost)} current claim(s) were rejected as stale")
        stats = backends.primary.stats(tasks.group)
        assert (stats.queued, stats.running) == (0, 0), violated(
            "stats() must count nothing queued or running once every task completed", got=stats
        )

    def test_clone_reaches_the_same_store(self, backend: Backend, tasks: TaskMaker) -> None:
        clone = backend.clone()
        try:
            task = tasks.one()
            clone.put([task])
            assert backend.get_outcome(task.id) is not None, violated(
                "Backend.clone() must reach the same store"
            )
        finally:
            if clone is not backend:
                clone.close()

    @pytest.mark.taskkit_processes  # in real time: a fake clock cannot cross processes
    @pytest.mark.taskkit_requires("supports_processes")
    def test_backend_pickles_by_configuration(self, backend: Backend, tasks: TaskMaker) -> None:
        copy = pickle.loads(pickle.dumps(backend))  # noqa: S301 - our own bytes
        try:
            task = tasks.one()
            backend.put([task])
            assert copy.get_outcome(task.id) is not None, violated(
                "a pickled backend must rebuild from its configuration and reach the same store"
            )
        finally:
            copy.close()

    @pytest.mark.taskkit_slow
    @pytest.mark.taskkit_processes
    @pytest.mark.taskkit_requires("supports_processes")
    def test_processes_claim_each_task_once(
        self,
        backend: Backend,
        picklable_factory: Callable[[], Backend],
        tasks: TaskMaker,
        kit_settings: KitSettings,
        tmp_path: Path,
        record_property: Any,
    ) -> None:
        """3 processes x 4 threads claim 5,000 tasks (x scale), each exactly once."""
        made = tasks.many(kit_settings.size(5000))
        for batch in chunks(made, 500):
            backend.put(batch)
        ledger = Ledger(tmp_path / "ledger.log")
        began = time.monotonic()
        with Children() as children:
            stop = children.event()
            for n in range(3):
                children.start(
                    _children.claim_loop,
                    picklable_factory,
                    tasks.group,
                    f"proc-{n}",
                    4,
                    str(ledger.path),
                    stop,
                    60.0,
                )
            try:
                wait_until(
                    lambda: ledger.count("end") >= len(made) or bool(ledger.events("error")),
                    kit_settings.deadline(240.0),
                    interval=0.05,
                    message="3 worker processes must finish every task (claim, complete)",
                )
                wait_until(
                    lambda: _drained(backend, tasks.group),
                    kit_settings.deadline(30.0),
                    message="stats() must count nothing queued or running once every task ended",
                )
            finally:
                stop.set()
            children.join_all(kit_settings.deadline(30.0))
            exits = [p.exitcode for p in children.processes]
        took = time.monotonic() - began
        record_property("processes_tasks_per_s", round(len(made) / took, 1))
        errors = ledger.events("error")
        assert not errors, violated(
            "claim() and complete() must not raise in worker processes", got=errors[0]
        )
        assert exits == [0, 0, 0], violated(
            "worker processes on the backend must exit cleanly when stopped", got=exits
        )
        check_exactly_once(Counter(f[0] for f in ledger.events("start")), {t.id for t in made})
        assert not ledger.events("lost"), violated("a current claim was rejected as stale")
        unfinished = [
            t.id
            for t in made
            if (o := backend.get_outcome(t.id)) is None or o.state is not TaskState.SUCCEEDED
        ]
        assert not unfinished, violated(f"{len(unfinished)} completed task(s) are not SUCCEEDED")


def _drained(backend: Backend, group: str) -> bool:
    stats = backend.stats(group)
    return stats.queued == 0 and stats.running == 0
