"""Serializers: strict compact JSON, msgpack when installed, pickle only when signed."""

from __future__ import annotations

import datetime
import decimal
import pickle
from typing import Any

import pytest
from taskkit import ConfigurationError
from taskkit.serializers import JSONSerializer, MsgpackSerializer, PickleSerializer, Serializer

#: Set by unpickling a Trap: proves whether a payload was unpickled at all.
UNPICKLED: list[str] = []


def _record(what: str) -> None:
    UNPICKLED.append(what)


class Trap:
    """Records that it was unpickled (what a malicious payload would run code for)."""

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return (_record, ("trap ran",))  # by reference: unpickling calls this module's _record


def test_json_is_compact_utf8_and_round_trips() -> None:
    serializer = JSONSerializer()
    assert serializer.dumps({"x": [1, "é", None]}) == '{"x":[1,"é",null]}'.encode()
    assert serializer.loads(serializer.dumps({"x": [1, "é", None]})) == {"x": [1, "é", None]}


@pytest.mark.parametrize("value", [float("nan"), float("inf"), {"x": [float("-inf")]}])
def test_json_refuses_nan_and_infinities(value: Any) -> None:
    with pytest.raises(ValueError, match="JSON"):
        JSONSerializer().dumps(value)


@pytest.mark.parametrize(
    "value",
    [{1, 2}, b"raw", datetime.datetime(2026, 1, 1), decimal.Decimal("1.5"), object()],
    ids=["set", "bytes", "datetime", "decimal", "object"],
)
def test_json_refuses_values_it_has_no_type_for(value: Any) -> None:
    with pytest.raises(TypeError):
        JSONSerializer().dumps(value)


def test_msgpack_round_trips_bytes() -> None:
    pytest.importorskip("msgpack", reason="msgpack is an optional extra")
    serializer = MsgpackSerializer()
    assert serializer.loads(serializer.dumps({"b": b"\x00raw", "s": "é"})) == {
        "b": b"\x00raw",
        "s": "é",
    }


def test_pickle_needs_a_key() -> None:
    with pytest.raises(ConfigurationError, match="HMAC key"):
        PickleSerializer(b"")


def test_pickle_round_trips_what_its_key_signed() -> None:
    serializer = PickleSerializer(b"k")
    assert serializer.loads(serializer.dumps({1, 2})) == {1, 2}


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param(PickleSerializer(b"other key").dumps(Trap()), id="signed-by-another-key"),
        pytest.param(b"\x00" * 32 + pickle.dumps(Trap()), id="unsigned"),
        pytest.param(pickle.dumps(Trap()), id="bare-pickle"),
    ],
)
def test_pickle_refuses_a_payload_its_key_did_not_sign_before_unpickling(payload: bytes) -> None:
    UNPICKLED.clear()
    with pytest.raises(ValueError, match="signature mismatch"):
        PickleSerializer(b"k").loads(payload)
    assert UNPICKLED == [], "the payload was unpickled before its signature was checked"


def test_the_serializers_satisfy_the_protocol_under_their_registry_names() -> None:
    serializers: list[Serializer] = [JSONSerializer(), PickleSerializer(b"k")]
    assert all(isinstance(s, Serializer) for s in serializers)
    assert [type(s).name for s in serializers] == ["json", "pickle"]
    assert MsgpackSerializer.name == "msgpack"
