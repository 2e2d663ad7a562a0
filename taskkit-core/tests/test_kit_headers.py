"""The kit and task headers: set at enqueue (every producer call), checked before anything is
written, extended by the ``taskkit_task_headers`` hook, and read in a handler."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from taskkit import (
    InvalidTask,
    Kit,
    MemoryBackend,
    PayloadTooLarge,
    Task,
    TaskHandler,
    TaskState,
    current_task,
    hookimpl,
)
from taskkit._headers import MAX_HEADERS_SIZE

TRACE = {"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}


class Injector:
    """A tracing-like plugin: adds (or, told so, breaks) headers; records its calls."""

    def __init__(self, add: dict[str, Any] | None = None, fail: bool = False) -> None:
        self.add = TRACE if add is None else add
        self.fail = fail
        self.calls: list[tuple[str, str, dict[str, str]]] = []

    @hookimpl
    def taskkit_task_headers(self, group: str, name: str, headers: dict[str, str]) -> None:
        self.calls.append((group, name, dict(headers)))
        if self.fail:
            headers["half"] = "done"
            raise RuntimeError("plugin bug")
        headers.update(self.add)


class HeaderEcho(TaskHandler):
    def handle(self, task: Task) -> Any:
        context = current_task()
        assert context is not None
        return dict(context.task.headers)


@pytest.fixture
def backend() -> MemoryBackend:
    return MemoryBackend()


def _stored(backend: MemoryBackend) -> list[Task]:
    return backend.tasks(state=TaskState.QUEUED)


# --------------------------------------------------------------------------- producers


def test_every_producer_call_stores_its_headers(backend: MemoryBackend) -> None:
    kit = Kit(backend)

    @kit.task
    def job(n: int) -> int:
        return n

    ids = {
        kit.initiate_task("g", "n", 1, headers={"via": "initiate_task"}).id: "initiate_task",
        kit.initiate_tasks({"group": "g", "name": "n", "data": 2, "headers": {"via": "dict"}})[
            0
        ].id: "dict",
        kit.initiate_tasks(kit.make_task("g", "n", 3, headers={"via": "make_task"}))[
            0
        ].id: "make_task",
        job.initiate((4,), headers={"via": "initiate"}).id: "initiate",
    }

    async def produce() -> None:
        ids[(await kit.ainitiate_task("g", "n", 5, headers={"via": "ainitiate_task"})).id] = (
            "ainitiate_task"
        )
        bulk = await kit.ainitiate_tasks(
            {"group": "g", "name": "n", "data": 6, "headers": {"via": "adict"}}
        )
        ids[bulk[0].id] = "adict"
        ids[(await job.ainitiate((7,), headers={"via": "ainitiate"})).id] = "ainitiate"

    asyncio.run(produce())
    stored = {t.id: dict(t.headers) for t in _stored(backend)}
    assert stored == {task_id: {"via": via} for task_id, via in ids.items()}


def test_no_headers_by_default(backend: MemoryBackend) -> None:
    kit = Kit(backend)
    kit.initiate_task("g", "n", 1)
    kit.initiate_tasks({"group": "g", "name": "n", "data": 2})
    assert [dict(t.headers) for t in _stored(backend)] == [{}, {}]


@pytest.mark.parametrize(
    ("headers", "error", "message"),
    [
        ({"bad name": "v"}, InvalidTask, "printable ASCII characters without spaces"),
        ({"a": "new\nline"}, InvalidTask, "control or unprintable"),
        ({f"h{i}": "" for i in range(33)}, InvalidTask, "the limit is 32"),
        ({"a": "v" * MAX_HEADERS_SIZE}, PayloadTooLarge, "task headers"),
        ("a=b", InvalidTask, "must be a mapping"),
    ],
)
def test_bad_headers_are_refused_and_nothing_is_written(
    backend: MemoryBackend, headers: Any, error: type[Exception], message: str
) -> None:
    kit = Kit(backend)

    @kit.task
    def job() -> None: ...

    calls = [
        lambda: kit.initiate_task("g", "n", 1, headers=headers),
        lambda: kit.make_task("g", "n", 1, headers=headers),
        lambda: job.initiate(headers=headers),
        lambda: asyncio.run(kit.ainitiate_task("g", "n", 1, headers=headers)),
    ]
    for call in calls:
        with pytest.raises(error, match=message):
            call()
    with pytest.raises(error, match=message):
        kit.initiate_tasks(
            {"group": "g", "name": "n", "data": 1},
            {"group": "g", "name": "n", "data": 2, "headers": headers},
        )
    assert backend.tasks() == []


def test_a_hand_built_task_with_bad_headers_is_refused(backend: MemoryBackend) -> None:
    kit = Kit(backend)
    good = kit.make_task("g", "n", 1)
    bad = good.evolve(id="other", headers={"bad name": "v"})
    with pytest.raises(InvalidTask, match="item 1: header name 'bad name'"):
        kit.initiate_tasks(good, bad)
    assert backend.tasks() == []


# --------------------------------------------------------------------------- the hook


def test_the_hook_adds_headers_before_the_task_is_stored(backend: MemoryBackend) -> None:
    plugin = Injector()
    kit = Kit(backend, plugins=[plugin])
    kit.initiate_task("mail", "send", 1, headers={"tenant": "acme"})
    asyncio.run(kit.ainitiate_task("mail", "send", 2))
    assert plugin.calls == [("mail", "send", {"tenant": "acme"}), ("mail", "send", {})]
    assert [dict(t.headers) for t in _stored(backend)] == [{"tenant": "acme", **TRACE}, TRACE]


def test_the_hook_runs_once_per_stored_task_and_not_for_eager_ones(
    backend: MemoryBackend,
) -> None:
    plugin = Injector()
    kit = Kit(backend, HeaderEcho(), plugins=[plugin])
    results = kit.initiate_tasks(
        {"group": "g", "name": "a", "data": 1},
        {"group": "g", "name": "b", "data": 2, "eager": True, "headers": {"mine": "1"}},
        {"group": "g", "name": "c", "data": 3},
    )
    assert [name for _, name, _ in plugin.calls] == ["a", "c"]
    assert results[1].get(timeout=1) == {"mine": "1"}, "eager: the caller's headers, no hook"


def test_the_initiated_hook_sees_the_headers_that_were_stored(backend: MemoryBackend) -> None:
    seen: list[dict[str, str]] = []

    class Watcher:
        @hookimpl
        def taskkit_task_initiated(self, task: Task) -> None:
            seen.append(dict(task.headers))

    Kit(backend, plugins=[Injector(), Watcher()]).initiate_task("g", "n", 1)
    assert seen == [TRACE]


@pytest.mark.parametrize(
    ("add", "error", "message"),
    [
        ({"bad name": "v"}, InvalidTask, "the taskkit_task_headers hook set bad headers"),
        ({"a": 7}, InvalidTask, "header 'a' must be a str"),
        ({"a": "v" * MAX_HEADERS_SIZE}, PayloadTooLarge, "the taskkit_task_headers hook made"),
    ],
)
def test_bad_headers_from_the_hook_are_refused_and_nothing_is_written(
    backend: MemoryBackend, add: dict[str, Any], error: type[Exception], message: str
) -> None:
    kit = Kit(backend, plugins=[Injector(add)])
    with pytest.raises(error, match=message):
        kit.initiate_task("g", "n", 1)
    with pytest.raises(error, match=message):
        kit.initiate_tasks(
            {"group": "g", "name": "n", "data": 1}, {"group": "g", "name": "n", "data": 2}
        )
    with pytest.raises(error, match=message):
        asyncio.run(kit.ainitiate_task("g", "n", 1))
    assert backend.tasks() == []


def test_a_hook_that_raises_is_logged_and_the_task_keeps_its_headers(
    backend: MemoryBackend, caplog: pytest.LogCaptureFixture
) -> None:
    kit = Kit(backend, plugins=[Injector(fail=True)])
    with caplog.at_level(logging.ERROR, logger="taskkit"):
        kit.initiate_task("g", "n", 1, headers={"tenant": "acme"})
    assert [dict(t.headers) for t in _stored(backend)] == [{"tenant": "acme"}]
    assert "taskkit_task_headers raised" in caplog.text and "plugin bug" in caplog.text


def test_without_a_listener_the_tasks_are_stored_as_made(backend: MemoryBackend) -> None:
    # No plugin implements the hook: no copy of any task (the in-memory backend keeps the
    # very objects it was given).
    kit = Kit(backend)
    made = [kit.make_task("g", "n", i, headers={"i": str(i)}) for i in range(3)]
    kit.initiate_tasks(*made)
    assert all(a is b for a, b in zip(_stored(backend), made))


def test_a_hook_that_changes_nothing_copies_nothing(backend: MemoryBackend) -> None:
    kit = Kit(backend, plugins=[Injector(add={})])
    made = kit.make_task("g", "n", 1, headers=TRACE)
    kit.initiate_tasks(made)
    assert _stored(backend)[0] is made


# --------------------------------------------------------------------------- the handler


def test_a_handler_reads_the_headers_through_current_task(backend: MemoryBackend) -> None:
    kit = Kit(backend, HeaderEcho(), plugins=[Injector()], lease_seconds=2.0, max_idle_wait=0.05)
    result = kit.initiate_task("g", "echo", None, headers={"tenant": "acme"})
    handles = kit.start_processes(1, {"g": 1})
    try:
        assert result.get(timeout=10) == {"tenant": "acme", **TRACE}
    finally:
        for handle in handles:
            handle.kill()
            handle.join(10)
