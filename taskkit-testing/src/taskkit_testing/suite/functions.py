"""Function tasks (``@kit.task``) end to end on the backend under test.

Arguments are checked and encoded at enqueue (a refused call writes nothing), workers run
the functions and store their results, per-task options reach the stored task, arguments
that no longer fit a function fail at once, and function tasks share a kit with a 0.2
``TaskHandler`` serving other groups.
"""

from __future__ import annotations

import pytest
from taskkit import Backend, InvalidTask, Kit, TaskState

from .._base import KitSettings, KitTestBase
from ..helpers import outcome_of, raises, result_value, violated, wait_until
from . import _functions
from ._handlers import ConformanceHandler
from .runtime import _config, running

__all__ = ["FunctionTaskTests"]


def _wait_finished(backend: Backend, task_id: str, timeout: float, what: str) -> None:
    def finished() -> bool:
        outcome = backend.get_outcome(task_id)
        return outcome is not None and outcome.state.finished

    wait_until(finished, timeout, message=f"{what} must finish")


class FunctionTaskTests(KitTestBase):
    """``@kit.task`` functions enqueued and run through the backend.

    :cvar worker_start_method: how workers start (``spawn`` proves function tasks are
        rebuilt by name in a fresh interpreter).
    """

    worker_start_method: str | None = "spawn"

    def test_a_refused_call_writes_nothing(self, backend: Backend, group: str) -> None:
        kit = Kit(backend)
        add = kit.task(group=group, name="add")(_functions.add)
        with raises(InvalidTask, "a call missing an argument must raise InvalidTask") as info:
            add.initiate(args=(1,), task_id=f"{group}-arity")
        assert "'b'" in str(info.value) and group in str(info.value), violated(
            "InvalidTask for a wrong arity must name the task and the argument", got=info.value
        )
        with raises(InvalidTask, "an unencodable argument must raise InvalidTask") as info:
            add.initiate(args=(1, {1, 2}), task_id=f"{group}-unencodable")
        assert "argument 'b'" in str(info.value), violated(
            "InvalidTask for an unencodable argument must name the argument", got=info.value
        )
        with raises(InvalidTask, "an unknown keyword argument must raise InvalidTask"):
            add.initiate(kwargs={"a": 1, "b": 2, "c": 3}, task_id=f"{group}-keyword")
        for suffix in ("arity", "unencodable", "keyword"):
            assert backend.get_outcome(f"{group}-{suffix}") is None, violated(
                "a refused call must write nothing", got=f"a record of {group}-{suffix}"
            )
        assert backend.stats(group).queued == 0, violated(
            "a refused call must write nothing", got=backend.stats(group)
        )

    def test_the_stored_task_carries_the_decorators_options(
        self, backend: Backend, group: str
    ) -> None:
        kit = Kit(backend)
        add = kit.task(group=group, timeout=42, ttl=4200)(_functions.add)
        result = add.initiate(args=(1, 2), task_id=f"{group}-options")
        outcome = outcome_of(
            backend,
            result.id,
            "a function task is stored QUEUED under its group and qualified name, with the "
            "decorator's timeout and ttl",
            state=TaskState.QUEUED,
            task__group=group,
            task__name="add",
            task__timeout=42.0,
            task__ttl=4200.0,
        )
        assert add.decode_call(outcome.task) == ([1, 2], {}), violated(
            "the stored data must decode to the call's arguments",
            got=add.decode_call(outcome.task),
        )
        again = add.initiate(args=(5, 5), task_id=f"{group}-options")
        assert again.id == result.id and add.decode_call(
            outcome_of(backend, result.id, "a repeated task id must keep the first task").task
        ) == ([1, 2], {}), violated("a second initiate with the same task id must store nothing")

    @pytest.mark.taskkit_processes
    def test_workers_run_function_tasks_to_their_outcomes(
        self, backend: Backend, group: str, kit_settings: KitSettings
    ) -> None:
        handler_group = group + "-handler"
        kit = Kit(backend, ConformanceHandler(), _config(kit_settings))
        add = kit.task(group=group, name="add")(_functions.add)
        greet = kit.task(group=group, name="greet")(_functions.greet)
        boom = kit.task(group=group, name="boom", retries=0)(_functions.boom)
        not_retried = kit.task(group=group, name="not_retried", retry_unless=(KeyError,))(
            _functions.not_retried
        )
        sums = [add.delay(i, 1) for i in range(kit_settings.size(10))]
        greeting = greet.delay("ada", greeting="hi")
        failing = boom.delay("kaboom")
        unretried = not_retried.delay("no retry")
        # Data written by hand (or by an older version of the function) that no longer fits.
        misfit = kit.initiate_tasks(
            kit.make_task(group, "add", b'{"args": [1, 2, 3]}', encoded=True)
        )[0]
        by_data = kit.initiate_task(group, "add", {"args": [20], "kwargs": {"b": 22}})
        handled = kit.initiate_task(handler_group, "add", {"a": 2, "b": 3})
        deadline = kit_settings.deadline(60.0)
        with running(kit, 1, {group: 2, handler_group: 1}, deadline, self.worker_start_method):
            values = [
                result_value(r, deadline, "a function task must return its result") for r in sums
            ]
            assert values == [i + 1 for i in range(len(sums))], violated(
                "function tasks must return their functions' results", got=values
            )
            assert result_value(greeting, deadline, "greet must succeed") == {
                "text": "hi, ada",
                "chars": ["a", "d", "a"],
            }, violated("keyword arguments must reach the function")
            assert result_value(by_data, deadline, "data {'args', 'kwargs'} must run") == 42, (
                violated("initiate_task with {'args', 'kwargs'} data must call the function")
            )
            assert result_value(handled, deadline, "the handler's group must run") == 5, violated(
                "a TaskHandler must keep serving the groups no function task claims"
            )
            for result, words in ((failing, "ValueError: kaboom"), (unretried, "KeyError")):
                _wait_finished(backend, result.id, deadline, f"a failing function task ({words})")
                outcome_of(
                    backend,
                    result.id,
                    "a function that raises, with no retry allowed, must end FAILED at once "
                    "with its traceback",
                    state=TaskState.FAILED,
                    task__retry_count=0,
                )
                error = backend.get_outcome(result.id).error or ""  # type: ignore[union-attr]
                assert words in error, violated(
                    "the stored error must hold the traceback", got=error
                )
            _wait_finished(backend, misfit.id, deadline, "a task whose arguments no longer fit")
            outcome = outcome_of(
                backend,
                misfit.id,
                "stored arguments that no longer fit the function are a programming error: "
                "the task fails at once, without a retry",
                state=TaskState.FAILED,
                task__retry_count=0,
            )
            assert "do not fit" in (outcome.error or ""), violated(
                "the failure must say the arguments do not fit the function", got=outcome.error
            )

    def test_an_eager_call_runs_the_function_and_stores_nothing(
        self, backend: Backend, group: str
    ) -> None:
        kit = Kit(backend)
        add = kit.task(group=group)(_functions.add)
        result = add.initiate(args=(2, 3), eager=True, task_id=f"{group}-eager")
        assert result.get() == 5, violated("an eager function task must return its result")
        assert backend.get_outcome(f"{group}-eager") is None, violated(
            "an eager run must store nothing"
        )
        assert add(2, 3) == 5, violated("a plain call must run the function inline")
