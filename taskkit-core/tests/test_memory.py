"""The in-memory backend as a testing tool: its introspection and reset helpers.

Its contract is the conformance kit's (``taskkit-testing/tests/test_memory_backend.py`` runs
every topic on it); these are the helpers its docstring offers the users' own tests.
"""

from __future__ import annotations

from typing import Any

from taskkit import FakeClock, Kit, MemoryBackend, Task, TaskHandler, TaskState


class MyHandler(TaskHandler):
    def handle(self, task: Task) -> Any:
        return None


def test_the_docstring_example_works_as_written() -> None:
    backend = MemoryBackend()
    kit = Kit(backend, MyHandler())
    kit.initiate_task("mail", "send", {"to": "a@example.com"})
    assert backend.tasks(state=TaskState.QUEUED)[0].name == "send"


def test_tasks_filter_by_state_and_group_in_claim_order() -> None:
    clock = FakeClock(1000.0)
    backend = MemoryBackend(clock=clock)
    kit = Kit(backend, MyHandler())
    later = kit.initiate_task("mail", "send", 1, due=1010.0)
    sooner = kit.initiate_task("mail", "send", 2, due=1005.0)
    other = kit.initiate_task("sms", "send", 3)
    clock.advance(20)
    [claim] = backend.claim("sms", "w", 1, 30.0, 3).claims
    assert [t.id for t in backend.tasks()] == [other.id, sooner.id, later.id]
    assert [t.id for t in backend.tasks(group="mail")] == [sooner.id, later.id]
    assert [t.id for t in backend.tasks(state=TaskState.RUNNING)] == [claim.task.id]
    assert backend.tasks(state=TaskState.RUNNING, group="mail") == []


def test_outcomes_map_every_stored_task_by_id() -> None:
    backend = MemoryBackend()
    kit = Kit(backend, MyHandler())
    queued = kit.initiate_task("g", "n", 1)
    done = kit.initiate_task("g", "n", 2)
    claim = next(c for c in backend.claim("g", "w", 2, 30.0, 3).claims if c.task.id == done.id)
    backend.complete(claim, b"2")
    outcomes = backend.outcomes()
    assert set(outcomes) == {queued.id, done.id}
    assert outcomes[done.id].state is TaskState.SUCCEEDED and outcomes[done.id].result == b"2"


def test_reset_forgets_tasks_schedule_marks_and_control_events() -> None:
    backend = MemoryBackend()
    kit = Kit(backend, MyHandler())
    kit.initiate_task("g", "n", 1)
    backend.put_scheduled(kit.make_task("g", "n", 2), "main", "entry", 60.0)
    kit.send_pause_event()
    backend.reset()
    assert backend.tasks() == [] and backend.outcomes() == {}
    assert backend.get_schedule_mark("main", "entry") is None
    assert backend.read_control(0) == []


def test_a_clone_is_the_same_store() -> None:
    backend = MemoryBackend()
    assert backend.clone() is backend
    assert MemoryBackend.supports_processes is False, "workers run as threads beside it"
