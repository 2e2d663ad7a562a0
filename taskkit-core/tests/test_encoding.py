"""Data and results that a serializer cannot encode: ``InvalidTask`` before anything is
written, or a failed task whose message names the encoder."""

from __future__ import annotations

import datetime
import decimal
from typing import Any, ClassVar

import pytest
from taskkit import (
    ConfigurationError,
    Failed,
    InvalidTask,
    Kit,
    MemoryBackend,
    PayloadTooLarge,
    Task,
    TaskHandler,
)
from taskkit._encoding import ResultNotEncodable, describe_encoder, encode_data, encode_result

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


def test_a_result_the_serializer_cannot_encode_fails_the_task(running: Kit) -> None:
    # NaN used to be stored as the non-standard JSON token ``NaN``.
    for name in ("nan", "a_set", "unencodable"):
        result = running.initiate_task("g", name, None)
        with pytest.raises(Failed) as info:
            result.get(timeout=10)
        assert "result could not be encoded" in info.value.message, info.value.message


def test_a_nan_result_fails_even_when_the_worker_is_busy(running: Kit) -> None:
    # Several at once: the batched outcome path, not only the lone-task one.
    results = [running.initiate_task("g", "nan", None) for _ in range(5)]
    for result in results:
        wait_until(result.ready, timeout=10)
        with pytest.raises(Failed, match="result could not be encoded"):
            result.get(0)


# --------------------------------------------------------------------------- the functions


def _task() -> Task:
    return Task("t", "g", "n", b"null", 0.0, 0.0)


class CustomCodec(TaskHandler):
    def encode_result(self, task: Task, result: Any) -> bytes:
        return result  # type: ignore[no-any-return]


def test_the_encoder_is_the_serializer_unless_the_handler_overrides_the_method() -> None:
    assert describe_encoder(TaskHandler(), "encode_data") == "the 'json' serializer"
    assert describe_encoder(CustomCodec(), "encode_data") == "the 'json' serializer"
    assert describe_encoder(CustomCodec(), "encode_result") == "CustomCodec.encode_result"


def test_encode_data_chains_the_serializers_error_and_lets_taskkits_own_through() -> None:
    with pytest.raises(
        InvalidTask,
        match=r"'g'/'n' cannot be encoded by the 'json' serializer: "
        r"TypeError",
    ) as caught:
        encode_data(TaskHandler(), "g", "n", {1})
    assert isinstance(caught.value.__cause__, TypeError)

    class Pickled(TaskHandler):
        serializer = "pickle"

    # A registered part that cannot be built is a configuration error, not bad data.
    with pytest.raises(ConfigurationError, match="HMAC key"):
        encode_data(Pickled(), "g", "n", 1)


def test_a_result_is_capped_at_the_limit() -> None:
    handler = TaskHandler()
    assert encode_result(handler, _task(), "x" * 8, limit=10) == b'"xxxxxxxx"'
    with pytest.raises(PayloadTooLarge) as caught:
        encode_result(handler, _task(), "x" * 9, limit=10)
    assert (caught.value.what, caught.value.size, caught.value.limit) == ("result", 11, 10)


def test_a_result_the_encoder_refuses_names_the_encoder() -> None:
    with pytest.raises(ResultNotEncodable, match="by the 'json' serializer: ValueError"):
        encode_result(TaskHandler(), _task(), float("nan"), limit=100)
    with pytest.raises(ResultNotEncodable, match=r"CustomCodec\.encode_result returned str"):
        encode_result(CustomCodec(), _task(), "text", limit=100)
