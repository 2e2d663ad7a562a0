"""Rolling deploys end to end: a task name the running workers do not know yet is held
(deferred, its delivery uncounted), runs once a worker that knows it starts, and becomes a
dead letter only after ``KitConfig.unknown_task_window``. The worker side of ``defer`` and
``bury`` (``DeferralTests`` checks the primitives themselves)."""

from __future__ import annotations

from typing import Any, ClassVar

import pytest
from taskkit import Backend, Kit, KitConfig, Task, TaskHandler, TaskState

from .._base import KitSettings, KitTestBase
from ..helpers import outcome_of, violated, wait_until
from .runtime import _Waiter, running

__all__ = ["KnownNamesHandler", "UnknownTaskTests"]

#: What a worker stores with a task it holds back or buries (``UnknownTasks.reason``).
REASON = "unknown task: no function or handler for"


class KnownNamesHandler(TaskHandler):
    """Knows ``add`` ({a, b} -> a + b) and ``mul`` ({a, b} -> a * b) when ``names`` lists
    them; any other name goes to the base class, which raises ``UnknownTask``: a worker of
    an older deploy.

    :param names: the task names this deploy knows.
    """

    def __init__(self, names: tuple[str, ...]) -> None:
        self.names = names

    def handle(self, task: Task) -> Any:
        if task.name in self.names:
            data = self.decode_data(task)
            if task.name == "add":
                return data["a"] + data["b"]
            if task.name == "mul":
                return data["a"] * data["b"]
        return super().handle(task)


def _config(settings: KitSettings, **changes: Any) -> KitConfig:
    options: dict[str, Any] = {
        "lease_seconds": 3.0,
        "heartbeat_interval": 0.5,
        "max_idle_wait": 0.2,
        "control_interval": 0.2,
        "grace_period": settings.deadline(5.0),
        **changes,
    }
    return KitConfig(**options)


class UnknownTaskTests(KitTestBase):
    """Workers that do not know a task name hold the task for a worker that does."""

    #: How workers start (``spawn``, as in ``RuntimeTests``; None: the platform's default).
    worker_start_method: ClassVar[str | None] = "spawn"

    @pytest.mark.taskkit_processes
    def test_an_unknown_name_is_held_and_later_run(
        self, backend: Backend, group: str, kit_settings: KitSettings
    ) -> None:
        old = Kit(backend, KnownNamesHandler(("add",)), _config(kit_settings))
        new_task = old.initiate_task(group, "mul", {"a": 6, "b": 7})
        known = old.initiate_task(group, "add", {"a": 1, "b": 2})
        timeout = kit_settings.deadline(30.0)
        with running(old, 1, {group: 2}, timeout, self.worker_start_method) as handles:
            waiter = _Waiter(handles, kit_settings.deadline(60.0))
            assert waiter.get(known) == ("ok", 3), violated(
                "a worker must run the task names it knows"
            )

            def held_back() -> bool:
                outcome = backend.get_outcome(new_task.id)
                return (
                    outcome is not None
                    and outcome.state is TaskState.QUEUED
                    and REASON in (outcome.error or "")
                )

            wait_until(
                held_back,
                kit_settings.deadline(30.0),
                message="a worker that does not know a task name must hand the task back "
                "(QUEUED, with the reason as its last error), not discard it",
            )
        outcome_of(
            backend,
            new_task.id,
            "holding back an unknown task must count neither a delivery nor a retry",
            state=TaskState.QUEUED,
            task__deliveries=0,
            task__retry_count=0,
        )
        # The deploy: the old workers are gone, a worker with the new code starts.
        new = Kit(backend, KnownNamesHandler(("add", "mul")), _config(kit_settings))
        with running(new, 1, {group: 2}, timeout, self.worker_start_method) as handles:
            waiter = _Waiter(handles, kit_settings.deadline(60.0))
            assert waiter.get(new_task) == ("ok", 42), violated(
                "a task held back by a worker that did not know it must run once a worker "
                "that knows it starts"
            )

    @pytest.mark.taskkit_processes
    def test_an_unknown_name_becomes_a_dead_letter_after_the_window(
        self, backend: Backend, group: str, kit_settings: KitSettings
    ) -> None:
        config = _config(kit_settings, unknown_task_window=1.0)
        old = Kit(backend, KnownNamesHandler(("add",)), config)
        result = old.initiate_task(group, "mul", {"a": 2, "b": 3})
        timeout = kit_settings.deadline(30.0)
        with running(old, 1, {group: 2}, timeout, self.worker_start_method) as handles:
            waiter = _Waiter(handles, kit_settings.deadline(60.0))
            kind, message = waiter.get(result)
        assert kind == "failed" and f"{REASON} {group}/mul" in message, violated(
            "an unknown task older than unknown_task_window must become a dead letter with "
            '"unknown task: ..." as its reason',
            got=(kind, message),
        )
        outcome_of(backend, result.id, "a buried unknown task must be DEAD", state=TaskState.DEAD)
        listed = [o.task.id for o in old.dead_letters(group)]
        assert listed == [result.id], violated(
            "a buried unknown task must be listed among the group's dead letters", got=listed
        )
        assert old.requeue_dead_letter(result.id), violated(
            "a buried unknown task must be requeueable"
        )
        new = Kit(backend, KnownNamesHandler(("add", "mul")), config)
        with running(new, 1, {group: 2}, timeout, self.worker_start_method) as handles:
            waiter = _Waiter(handles, kit_settings.deadline(60.0))
            assert waiter.get(result) == ("ok", 6), violated(
                "a requeued dead letter must run on a worker that knows its name"
            )
