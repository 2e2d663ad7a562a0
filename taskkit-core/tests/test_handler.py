"""``TaskHandler``: its default encoding, its default retry (bounded, and "retry only these
exceptions" in one line: issue 11, defect 3), and 0.2's overridden ``get_retry_interval``.

Before issue 11: a handler that did not override ``get_retry_interval`` retried every
exception 20 times with delays up to an hour, and nothing narrowed which exceptions were
retried.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from taskkit import (
    ConfigurationError,
    ExponentialBackoff,
    Failed,
    Kit,
    MemoryBackend,
    Task,
    TaskHandler,
)


def task(retry_count: int = 0) -> Task:
    now = time.time()
    return Task("t", "g", "n", b"null", now, now, retry_count=retry_count)


class Plain(TaskHandler):
    def handle(self, task: Task) -> Any:
        raise KeyError("bug")


class OnlyConnections(Plain):
    retry_on = (ConnectionError,)


class NotKeyErrors(Plain):
    retry_unless = KeyError


class OldStyle(Plain):
    """taskkit 0.2: get_retry_interval decides alone, whatever the new attributes say."""

    retry_on = (ConnectionError,)

    def get_retry_interval(self, task: Task, exception: Exception) -> float | None:
        return 0.01 if task.retry_count < 3 else None


def test_the_default_policy_is_the_bounded_exponential_back_off() -> None:
    assert TaskHandler.retry_policy == ExponentialBackoff()
    assert Plain().get_retry_interval(task(5), KeyError()) is None  # five retries, then none
    assert Plain().get_retry_interval(task(4), KeyError()) is not None


def test_retry_on_is_one_line_on_the_handler() -> None:
    handler = OnlyConnections()
    assert handler.get_retry_interval(task(), KeyError("bug")) is None
    assert handler.get_retry_interval(task(), ConnectionResetError()) is not None
    unless = NotKeyErrors()
    assert unless.get_retry_interval(task(), KeyError("bug")) is None
    assert unless.get_retry_interval(task(), ValueError()) is not None


def test_a_bad_retry_on_on_the_handler_is_a_type_error_naming_it() -> None:
    class Typo(Plain):
        retry_on = "ConnectionError"  # type: ignore[assignment]

    with pytest.raises(TypeError, match=r"TaskHandler\.retry_on"):
        Typo().get_retry_interval(task(), ConnectionError())


def test_a_retry_policy_named_on_the_handler_comes_from_the_registry() -> None:
    class Once(TaskHandler):
        retry_policy = "none"

    assert Once().get_retry_interval(task(), ValueError()) is None
    assert TaskHandler().get_retry_interval(task(), ValueError()) is not None


def test_data_and_results_are_compact_json_by_default() -> None:
    handler = TaskHandler()
    encoded = handler.encode_data("g", "n", {"x": [1, "é"]})
    assert encoded == '{"x":[1,"é"]}'.encode()
    assert handler.decode_data(Task("id", "g", "n", encoded, 0.0, 0.0)) == {"x": [1, "é"]}
    assert handler.decode_result(task(), handler.encode_result(task(), [None])) == [None]


def test_a_serializer_named_on_the_handler_encodes_its_data() -> None:
    pytest.importorskip("msgpack", reason="msgpack is an optional extra")

    class Packed(TaskHandler):
        serializer = "msgpack"

    encoded = Packed().encode_data("g", "n", {"a": 1})
    assert encoded != b'{"a":1}' and Packed().decode_result(task(), encoded) == {"a": 1}


def test_naming_pickle_on_a_handler_says_what_to_pass_and_stores_nothing() -> None:
    class Pickled(TaskHandler):
        serializer = "pickle"

    kit = Kit(MemoryBackend(), Pickled())
    with pytest.raises(ConfigurationError, match="HMAC key") as caught:
        kit.initiate_task("g", "n", {"x": 1})
    assert "key=" in str(caught.value)
    assert kit.backend.stats("g").queued == 0, "a refused task was stored"


def _runs(handler: TaskHandler) -> tuple[int, str]:
    backend = MemoryBackend()
    kit = Kit(backend, handler, lease_seconds=2.0, control_interval=0.05)
    handles = kit.start_processes(1, {"g": 1})
    try:
        result = kit.initiate_task("g", "n", None)
        with pytest.raises(Failed) as info:
            result.get(timeout=10)
        return info.value.task.retry_count, info.value.message
    finally:
        for handle in handles:
            handle.kill()
            handle.join(10)


def test_a_worker_fails_an_exception_outside_retry_on_at_once() -> None:
    retries, message = _runs(OnlyConnections())
    assert retries == 0 and "KeyError: 'bug'" in message


def test_an_overridden_get_retry_interval_behaves_as_in_0_2() -> None:
    retries, message = _runs(OldStyle())
    assert retries == 3 and "KeyError: 'bug'" in message
