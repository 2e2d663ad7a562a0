"""Serialization: data, results and error text survive the backend exactly."""

from __future__ import annotations

from typing import Any

import pytest
from taskkit import Backend, Kit, KitConfig, Task, TaskHandler, TaskState
from taskkit.plugins import registries
from taskkit.serializers import Serializer

from .._base import KitTestBase, Timing
from ..helpers import TaskMaker, claim_one, outcome_of, result_value, violated

__all__ = ["SerializationTests", "SerializerHandler", "build_serializer", "serializer_names"]

#: Values every serializer in the registry must carry (JSON's common ground).
VALUES: list[Any] = [
    {"to": "ä@example.com", "n": 2**53, "ratio": 0.1, "ok": True, "none": None},
    ["mixed", 1, 2.5, False, None, {"nested": ["deep", {"deeper": "ほ"}]}],
    "a plain string with\nnewlines and \u2603",
    -17,
    None,
]


def serializer_names() -> list[str]:
    """Every serializer registered through the ``taskkit`` entry points, built-ins included."""
    return registries().serializers.names()


def build_serializer(name: str) -> Serializer:
    """An instance of serializer ``name``; pickle gets an HMAC key, as it requires one."""
    factory = registries().serializers.get(name)
    if name == "pickle":
        return factory(key=b"conformance-kit-key")
    try:
        return factory()
    except TypeError as exc:
        pytest.skip(f"serializer {name!r} needs options the kit cannot guess: {exc}")


class SerializerHandler(TaskHandler):
    """A handler that encodes data and results with one serializer instance."""

    def __init__(self, serializer: Serializer) -> None:
        self.codec = serializer

    def handle(self, task: Task) -> Any:  # pragma: no cover - claims are driven by hand
        raise NotImplementedError

    def encode_data(self, group: str, task_name: str, data: Any) -> bytes:
        return self.codec.dumps(data)

    def decode_data(self, task: Task) -> Any:
        return self.codec.loads(task.data)

    def encode_result(self, task: Task, result: Any) -> bytes:
        return self.codec.dumps(result)

    def decode_result(self, task: Task, encoded: bytes) -> Any:
        return self.codec.loads(encoded)


class SerializationTests(KitTestBase):
    """Round trips through every registered serializer, and raw bytes of any value."""

    @pytest.mark.parametrize("serializer", serializer_names())
    def test_round_trip_through_the_serializer(
        self, serializer: str, backend: Backend, timing: Timing, group: str
    ) -> None:
        handler = SerializerHandler(build_serializer(serializer))
        kit = Kit(backend, handler)
        results = [kit.initiate_task(group, "echo", value, due=timing.now()) for value in VALUES]
        by_id = {r.id: value for r, value in zip(results, VALUES)}
        while True:
            claims = backend.claim(group, "w1", 10, timing.long_lease, 3).claims
            if not claims:
                break
            for claim in claims:
                data = handler.decode_data(claim.task)
                assert data == by_id[claim.task.id], violated(
                    f"task data did not survive the backend through the {serializer} serializer"
                )
                backend.complete(claim, handler.encode_result(claim.task, data))
        for result, value in zip(results, VALUES):
            got = result_value(
                result, 5, f"a completed task's result must be readable ({serializer} serializer)"
            )
            assert got == value, violated(
                f"a result did not survive the backend through the {serializer} serializer",
                got=got,
            )

    def test_every_byte_value_survives(
        self, backend: Backend, tasks: TaskMaker, timing: Timing
    ) -> None:
        blob = bytes(range(256)) * 4 + b"\x00" * 16
        task = tasks.one(data=blob)
        backend.put([task])
        claim = claim_one(backend, task.group, "w1", timing.long_lease, 3)
        assert claim.task.data == blob, violated("task data must be stored byte for byte")
        backend.complete(claim, blob[::-1])
        outcome_of(backend, task.id, "a result must be stored byte for byte", result=blob[::-1])

    def test_empty_data_and_result(
        self, backend: Backend, tasks: TaskMaker, timing: Timing
    ) -> None:
        task = tasks.one(data=b"")
        backend.put([task])
        claim = claim_one(backend, task.group, "w1", timing.long_lease, 3)
        assert claim.task.data == b"", violated("empty task data must read back empty")
        backend.complete(claim, b"")
        outcome = outcome_of(
            backend,
            task.id,
            "complete() with an empty result must succeed",
            state=TaskState.SUCCEEDED,
        )
        assert (outcome.result or b"") == b"", violated("an empty result must read back empty")

    def test_a_payload_at_the_default_size_cap_survives(
        self, backend: Backend, tasks: TaskMaker, timing: Timing
    ) -> None:
        size = KitConfig().max_data_size
        blob = (bytes(range(251)) * (size // 251 + 1))[:size]
        task = tasks.one(data=blob)
        backend.put([task])
        claim = claim_one(backend, task.group, "w1", timing.long_lease, 3)
        assert claim.task.data == blob, violated(
            f"a {size}-byte payload (the default cap) did not survive the backend"
        )
        backend.complete(claim, blob)
        outcome_of(
            backend,
            task.id,
            f"a {size}-byte result (the default cap) must be stored byte for byte",
            result=blob,
        )

    def test_error_text_survives(self, backend: Backend, tasks: TaskMaker, timing: Timing) -> None:
        text = (
            'Traceback (most recent call last):\n  File "x.py", line 1\n'
            "ValueError: ünïcødé \u2603 '\"\\"
        )
        task = tasks.one()
        backend.put([task])
        claim = claim_one(backend, task.group, "w1", timing.long_lease, 3)
        backend.fail(claim, text)
        outcome_of(
            backend,
            task.id,
            "error text must be stored exactly (unicode, quotes, newlines)",
            error=text,
        )
