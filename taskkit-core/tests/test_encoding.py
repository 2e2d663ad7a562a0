"""Data and results that a serializer cannot encode, and task ids: typed errors, nothing written."""

from __future__ import annotations

import datetime
import decimal
from typing import Any, ClassVar

import pytest
from taskkit import Failed, InvalidTask, Kit, MemoryBackend, Task, TaskState
from taskkit.serializers import JSONSerializer

from .conftest import wait_until
from .handlers import RecordingHandler


class ResultsHandler(RecordingHandler):
    """Adds results that JSON cannot encode (data can no longer carry them)."""

    def handle(self, task: Task) -> Any:
        if task.name == "nan":
            return {"x": float("nan")}
        if task.name == "a_set":
            return {1, 2}
        return super().handle(task)


@pytest.fixture
def handler() -> RecordingHandler:
    return ResultsHandler()


UNENCODABLE = [
    pytest.param({1, 2}, id="set"),
    pytest.param(b"raw", id="bytes"),
    pytest.param(datetime.datetime(2026, 1, 1), id="datetime"),
    pytest.param(decimal.Decimal("1.5"), id="decimal"),
    pytest.param(object(), id="object"),
    pytest.param(float("nan"), id="nan"),
    pytest.param(float("inf"), id="inf"),
    pytest.param({"nested": [1, {2, 3}]}, id="nested-set"),
]


@pytest.mark.parametrize("data", UNENCODABLE)
def test_unencodable_data_raises_invalid_task_naming_task_and_serializer(
    kit: Kit, backend: MemoryBackend, data: Any
) -> None:
    with pytest.raises(InvalidTask) as info:
        kit.initiate_task("g", "double", data)
    message = str(info.value)
    assert "'g'/'double'" in message and "'json' serializer" in message, message
    assert info.value.__cause__ is not None  # the serializer's own error stays attached
    assert backend.tasks() == []


def test_make_task_refuses_unencodable_data_too(kit: Kit) -> None:
    with pytest.raises(InvalidTask, match="cannot be encoded"):
        kit.make_task("g", "double", {1})


def test_one_unencodable_item_writes_nothing_of_the_batch(kit: Kit, backend: MemoryBackend) -> None:
    with pytest.raises(InvalidTask, match=r"item 1: .*cannot be encoded"):
        kit.initiate_tasks(
            {"group": "g", "name": "double", "data": 1, "task_id": "first"},
            {"group": "g", "name": "double", "data": {1, 2}, "task_id": "second"},
            {"group": "g", "name": "double", "data": 3, "task_id": "third"},
        )
    assert backend.tasks() == []
    assert backend.get_outcome("first") is None


def test_a_bad_eager_item_writes_nothing_and_runs_nothing(
    kit: Kit, backend: MemoryBackend, handler: RecordingHandler
) -> None:
    with pytest.raises(InvalidTask, match="item 1"):
        kit.initiate_tasks(
            {"group": "g", "name": "double", "data": 1},
            {"group": "g", "name": "double", "data": {1}, "eager": True},
        )
    assert backend.tasks() == [] and handler.runs == []


def test_msgpack_serializer_errors_are_invalid_task_too(backend: MemoryBackend) -> None:
    pytest.importorskip("msgpack")

    class Packed(RecordingHandler):
        serializer: ClassVar[str] = "msgpack"

    kit = Kit(backend, Packed())
    for data in ({1, 2}, datetime.datetime(2026, 1, 1), decimal.Decimal(1), 2**70):
        with pytest.raises(InvalidTask, match="'msgpack' serializer"):
            kit.initiate_task("g", "double", data)
    assert backend.tasks() == []
    kit.initiate_task("g", "double", {"b": b"raw bytes are fine in msgpack"})
    assert len(backend.tasks()) == 1


def test_a_custom_encode_data_is_named_in_the_error(backend: MemoryBackend) -> None:
    class Custom(RecordingHandler):
        def encode_data(self, group: str, task_name: str, data: Any) -> bytes:
            raise TypeError("only ints please")

    with pytest.raises(InvalidTask, match=r"Custom\.encode_data.*only ints please"):
        Kit(backend, Custom()).initiate_task("g", "n", "x")
    assert backend.tasks() == []


def test_json_serializer_refuses_nan() -> None:
    with pytest.raises(ValueError, match="JSON"):
        JSONSerializer().dumps({"x": float("nan")})


def test_a_result_the_serializer_cannot_encode_fails_the_task(running: Kit) -> None:
    # NaN used to be stored as the non-standard JSON token ``NaN``.
    for name in ("nan", "a_set", "unencodable"):
        result = running.initiate_task("g", name, None)
        with pytest.raises(Failed) as info:
            result.get(timeout=10)
        assert "result could not be encoded" in info.value.message, info.value.message


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
    assert isinstance(task, Task) and task.id == task_id


def test_a_nan_result_fails_even_when_the_worker_is_busy(running: Kit) -> None:
    # Several at once: the batched outcome path, not only the lone-task one.
    results = [running.initiate_task("g", "nan", None) for _ in range(5)]
    for result in results:
        wait_until(result.ready, timeout=10)
        with pytest.raises(Failed, match="result could not be encoded"):
            result.get(0)
