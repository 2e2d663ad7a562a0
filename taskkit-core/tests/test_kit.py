"""The kit: make_kit, and the producer API (initiate, validation of names and task ids,
bulk, idempotency, eager, results)."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

import pytest
from taskkit import (
    Cancelled,
    CancelResult,
    ConfigurationError,
    Failed,
    FakeClock,
    InvalidTask,
    Kit,
    MemoryBackend,
    NotFound,
    PayloadTooLarge,
    ResultGetTimedOut,
    TaskHandler,
    TaskState,
    make_kit,
)

from .handlers import RecordingHandler


def test_initiate_stores_encoded_task(kit: Kit, backend: MemoryBackend) -> None:
    due = datetime.now(timezone.utc) + timedelta(seconds=10)
    result = kit.initiate_task("g", "double", {"a": 1}, due=due, ttl=60)
    [task] = backend.tasks(state=TaskState.QUEUED)
    assert task.id == result.task_id
    assert (task.group, task.name, task.data) == ("g", "double", b'{"a":1}')
    assert task.due == pytest.approx(due.timestamp())
    assert task.ttl == 60
    assert task.due_dt(timezone.utc) == due.replace(
        microsecond=task.due_dt(timezone.utc).microsecond
    )


@pytest.mark.parametrize(
    ("group", "name", "message"),
    [
        ("", "n", "must not be empty"),
        ("g" * 129, "n", "129 characters"),
        ("g", " leading", "printable ASCII"),
        ("g", "two  spaces", "printable ASCII"),
        ("g:x", "n", "printable ASCII"),
        ("g", "a{b}", "printable ASCII"),
        ("g", "tab\there", "printable ASCII"),
        ("g", "é", "printable ASCII"),
        (3, "n", "must be a str"),
    ],
)
def test_bad_names_are_refused_and_nothing_is_written(
    kit: Kit, backend: MemoryBackend, group: object, name: object, message: str
) -> None:
    with pytest.raises(InvalidTask, match=message):
        kit.initiate_task(group, name, 1)  # type: ignore[arg-type]
    assert backend.tasks() == []


def test_128_character_names_are_accepted(kit: Kit, backend: MemoryBackend) -> None:
    result = kit.initiate_task("g" * 128, "n" * 128, 1)
    [task] = backend.tasks(state=TaskState.QUEUED)
    assert (task.id, task.group, task.name, task.data) == (
        result.task_id,
        "g" * 128,
        "n" * 128,
        b"1",
    )


def test_inner_spaces_are_accepted_as_in_the_original_readme(
    kit: Kit, backend: MemoryBackend
) -> None:
    result = kit.initiate_task("Any task group name", "your task name", 1)
    [task] = backend.tasks(state=TaskState.QUEUED, group="Any task group name")
    assert (task.id, task.group, task.name) == (
        result.task_id,
        "Any task group name",
        "your task name",
    )
    assert backend.stats("Any task group name").queued == 1


def test_data_size_cap(backend: MemoryBackend) -> None:
    kit = Kit(backend, RecordingHandler(), max_data_size=100)
    kit.initiate_task("g", "n", "x" * 98)  # 100 bytes of JSON: at the limit
    with pytest.raises(PayloadTooLarge) as info:
        kit.initiate_task("g", "n", "x" * 99)
    assert (info.value.size, info.value.limit) == (101, 100)
    assert len(backend.tasks()) == 1


def test_encode_data_must_return_bytes(backend: MemoryBackend) -> None:
    class Bad(RecordingHandler):
        def encode_data(self, group: str, task_name: str, data: object) -> bytes:
            return "not bytes"  # type: ignore[return-value]

    with pytest.raises(InvalidTask, match="must be bytes, not str"):
        Kit(backend, Bad()).initiate_task("g", "n", 1)
    assert backend.tasks() == []


def test_bad_due_and_ttl(kit: Kit) -> None:
    with pytest.raises(InvalidTask, match="due"):
        kit.initiate_task("g", "n", 1, due="tomorrow")  # type: ignore[arg-type]
    with pytest.raises(InvalidTask, match="ttl"):
        kit.initiate_task("g", "n", 1, ttl=0)


def test_bulk_initiate_is_validated_first_and_stored_in_one_put(
    kit: Kit, backend: MemoryBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = []
    original = backend.put
    monkeypatch.setattr(backend, "put", lambda tasks: calls.append(len(tasks)) or original(tasks))
    with pytest.raises(InvalidTask, match="item 1 lacks data"):
        kit.initiate_tasks({"group": "g", "name": "n", "data": 1}, {"group": "g", "name": "n"})
    assert backend.tasks() == [] and calls == []
    results = kit.initiate_tasks(
        {"group": "g", "name": "double", "data": 1},
        kit.make_task("g", "double", 2),
        {"group": "g", "name": "double", "data": 3, "eager": True},
    )
    assert calls == [2]
    assert len(backend.tasks()) == 2
    assert results[2].get() == 6


def test_same_task_id_is_stored_once(kit: Kit, backend: MemoryBackend) -> None:
    first = kit.initiate_task("g", "n", 1, task_id="order-42")
    second = kit.initiate_task("g", "n", 2, task_id="order-42")
    assert first.task_id == second.task_id
    [task] = backend.tasks()
    assert task.data == b"1"


def test_eager_runs_in_the_caller(kit: Kit, backend: MemoryBackend) -> None:
    assert kit.initiate_task("g", "double", 21, eager=True).get() == 42
    with pytest.raises(Failed, match="failing on purpose"):
        kit.initiate_task("g", "fail", 1, eager=True).get()
    with pytest.raises(NotFound, match="discarded"):
        kit.initiate_task("g", "discard", 1, eager=True).get()
    assert backend.tasks() == []


def test_result_states(kit: Kit, backend: MemoryBackend) -> None:
    with pytest.raises(NotFound):
        kit.get_result("nope").get(0)
    result = kit.initiate_task("g", "double", 1)
    with pytest.raises(ResultGetTimedOut):
        result.get(timeout=0)
    with pytest.raises(ValueError, match="timeout"):
        result.get(timeout=-1)
    [claim] = backend.claim("g", "w", 1, 30, 3).claims
    backend.fail(claim, "Traceback: boom")
    with pytest.raises(Failed) as info:
        result.get(0)
    assert info.value.message == "Traceback: boom"
    assert info.value.task.id == result.task_id


def test_result_get_timeout_is_honoured(kit: Kit) -> None:
    result = kit.initiate_task("nobody-serves-this", "double", 1)
    started = time.monotonic()
    with pytest.raises(ResultGetTimedOut):
        result.get(timeout=0.3)
    assert time.monotonic() - started >= 0.3


def test_cancel_queued(kit: Kit) -> None:
    result = kit.initiate_task("g", "double", 1)
    assert result.cancel() is CancelResult.CANCELLED
    with pytest.raises(Cancelled):
        result.get(0)
    assert kit.cancel("missing") is CancelResult.NOT_FOUND


def test_finished_records_expire_after_their_ttl() -> None:
    clock = FakeClock()
    backend = MemoryBackend(clock=clock)
    kit = Kit(backend, RecordingHandler())
    result = kit.initiate_task("g", "double", 1, ttl=60)
    [claim] = backend.claim("g", "w", 1, 30, 3).claims
    backend.complete(claim, b"2")
    clock.advance(59)
    assert result.get(0) == 2
    clock.advance(2)
    with pytest.raises(NotFound):
        result.get(0)


def test_kit_options_are_checked(backend: MemoryBackend) -> None:
    with pytest.raises(ConfigurationError, match="unknown kit option"):
        Kit(backend, RecordingHandler(), lease=3)
    with pytest.raises(ConfigurationError, match="heartbeat_interval"):
        Kit(backend, RecordingHandler(), lease_seconds=3, heartbeat_interval=5)
    with pytest.raises(ConfigurationError, match="TaskHandler instance"):
        Kit(backend, RecordingHandler)  # type: ignore[arg-type]


def test_bulk_initiate_takes_0_2_task_eager_pairs(kit: Kit, backend: MemoryBackend) -> None:
    # taskkit 0.2.4's initiate_tasks took ``(Task, eager)`` tuples besides Tasks and dicts.
    queued, eager = kit.initiate_tasks(
        (kit.make_task("g", "double", 1), False), (kit.make_task("g", "double", 5), True)
    )
    [task] = backend.tasks(state=TaskState.QUEUED)
    assert task.id == queued.task_id and task.data == b"1"
    assert eager.get() == 10
    with pytest.raises(InvalidTask, match="item 0 must be a Task, a \\(Task, eager\\) pair"):
        kit.initiate_tasks((kit.make_task("g", "double", 1), "yes"))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "task_id",
    ["a\nb", "", " x", "x ", "a  b", "a:b", "{g}", "x*", "é", "t" * 129, "tab\there"],
)
def test_bad_task_ids_are_refused_and_nothing_is_written(
    kit: Kit, backend: MemoryBackend, task_id: str
) -> None:
    with pytest.raises(InvalidTask, match="task id"):
        kit.initiate_task("g", "double", 1, task_id=task_id)
    with pytest.raises(InvalidTask, match="task id"):
        kit.initiate_tasks({"group": "g", "name": "double", "data": 1, "task_id": task_id})
    assert backend.tasks() == []


def test_a_non_string_task_id_is_refused(kit: Kit, backend: MemoryBackend) -> None:
    with pytest.raises(InvalidTask, match="task id must be a str"):
        kit.initiate_task("g", "double", 1, task_id=42)  # type: ignore[arg-type]
    assert backend.tasks() == []


def test_a_prebuilt_task_with_a_bad_id_is_refused(kit: Kit, backend: MemoryBackend) -> None:
    good = kit.make_task("g", "double", 1)
    bad = good.evolve(id="a\nb")
    with pytest.raises(InvalidTask, match="item 1: task id"):
        kit.initiate_tasks(good, bad)
    assert backend.tasks() == []


@pytest.mark.parametrize(
    "task_id",
    [
        "welcome-ada",
        "order-42",
        "0f8fa0f5c7e44f4c9b1f1c8a0e0d6b3a",
        "0f8fa0f5-c7e4-4f4c-9b1f-1c8a0e0d6b3a",
        "user 17 welcome",
        "t" * 128,
    ],
)
def test_uuid_and_readable_task_ids_are_accepted(
    kit: Kit, backend: MemoryBackend, task_id: str
) -> None:
    result = kit.initiate_task("g", "double", 1, task_id=task_id)
    assert result.task_id == task_id
    [task] = backend.tasks(state=TaskState.QUEUED)
    assert task.id == task_id


def test_make_kit_builds_the_backend_its_url_names() -> None:
    handler = TaskHandler()
    with pytest.raises(ConfigurationError, match="no backend serves URL scheme 'nope'"):
        make_kit("nope://x", handler)
    with pytest.raises(ConfigurationError, match="not a backend URL"):
        make_kit("localhost:6379", handler)
    with pytest.raises(ConfigurationError, match="unknown kit option"):
        make_kit(MemoryBackend(), handler, colour="blue")
    kit = make_kit("memory://", handler, lease_seconds=5)
    assert kit.config.lease_seconds == 5 and isinstance(kit.backend, MemoryBackend)
