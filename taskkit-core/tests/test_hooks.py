"""The hook caller: which manager a kit calls, who listens, and plugin errors contained."""

from __future__ import annotations

import logging

import pytest
from taskkit import Task, hookimpl
from taskkit._hooks import HookCaller
from taskkit.plugins import get_plugin_manager, make_plugin_manager

TASK = Task("t", "g", "n", b"null", 0.0, 0.0)


class Listener:
    def __init__(self) -> None:
        self.started: list[tuple[str, str]] = []

    @hookimpl
    def taskkit_task_started(self, task: Task, worker_id: str) -> None:
        self.started.append((task.id, worker_id))


class Broken:
    @hookimpl
    def taskkit_task_started(self, task: Task, worker_id: str) -> None:
        raise RuntimeError("metrics are down")


def test_a_kit_without_plugins_calls_the_process_wide_manager() -> None:
    assert HookCaller.for_plugins(()).plugin_manager is get_plugin_manager()


def test_kit_local_plugins_get_a_manager_of_their_own() -> None:
    listener = Listener()
    caller = HookCaller.for_plugins([listener])
    assert caller.plugin_manager is not get_plugin_manager()
    caller.call("taskkit_task_started", task=TASK, worker_id="w1")
    assert listener.started == [("t", "w1")]
    assert listener not in get_plugin_manager().get_plugins()


def test_listened_says_whether_any_plugin_implements_a_hook() -> None:
    bare = HookCaller(make_plugin_manager(load_entry_points=False))
    assert not bare.listened("taskkit_task_started")
    assert bare.listened("taskkit_execute_task"), "the built-in innermost wrapper"
    assert HookCaller.for_plugins([Listener()]).listened("taskkit_task_started")


def test_a_plugins_error_is_logged_and_never_raised(caplog: pytest.LogCaptureFixture) -> None:
    caller = HookCaller.for_plugins([Broken()])
    with caplog.at_level(logging.ERROR, logger="taskkit"):
        caller.call("taskkit_task_started", task=TASK, worker_id="w1")
    [record] = caplog.records
    assert record.name == "taskkit" and "hook taskkit_task_started raised" in record.message
    assert record.exc_info is not None and "metrics are down" in caplog.text


def test_hook_runs_the_execution_hook_through_the_manager() -> None:
    caller = HookCaller(make_plugin_manager(load_entry_points=False))
    assert caller.hook.taskkit_execute_task(task=TASK, call=lambda: 42) == 42
