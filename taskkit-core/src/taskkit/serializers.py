"""Serializers: how handlers turn data and results into bytes.

JSON is the default. msgpack is registered when the ``msgpack`` package is installed. Pickle is
never used unless a handler names it explicitly, and then only with an HMAC key: a pickle
decoder makes every producer, and anyone with write access to the backend, able to run code
in your workers. Use it with trusted producers only.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import pickle
from typing import Any, ClassVar, Protocol, runtime_checkable

from .errors import ConfigurationError

__all__ = ["JSONSerializer", "MsgpackSerializer", "PickleSerializer", "Serializer"]


@runtime_checkable
class Serializer(Protocol):
    """Turns Python values into bytes and back. ``name`` is its registry key."""

    name: ClassVar[str]

    def dumps(self, value: Any) -> bytes: ...

    def loads(self, data: bytes) -> Any: ...


class JSONSerializer:
    """Compact UTF-8 JSON. The default everywhere.

    Strict: NaN and infinities are refused (``ValueError``) rather than written as the
    non-standard tokens ``NaN`` / ``Infinity`` that other JSON readers reject; values JSON has
    no type for (sets, bytes, datetimes, ``Decimal``, arbitrary objects) raise ``TypeError``.
    """

    name: ClassVar[str] = "json"

    def dumps(self, value: Any) -> bytes:
        return json.dumps(
            value, separators=(",", ":"), ensure_ascii=False, allow_nan=False
        ).encode()

    def loads(self, data: bytes) -> Any:
        return json.loads(data)


class MsgpackSerializer:
    """MessagePack through the ``msgpack`` package (``pip install msgpack``)."""

    name: ClassVar[str] = "msgpack"

    def __init__(self) -> None:
        import msgpack  # type: ignore[import-untyped,unused-ignore]  # noqa: PLC0415

        self._msgpack = msgpack

    def dumps(self, value: Any) -> bytes:
        packed: bytes = self._msgpack.packb(value, use_bin_type=True)
        return packed

    def loads(self, data: bytes) -> Any:
        return self._msgpack.unpackb(data, raw=False)


class PickleSerializer:
    """Pickle signed with HMAC-SHA256. **Trusted producers only.**

    Unsigned or wrongly signed payloads are refused before unpickling; still, anyone who holds
    the key can make workers run code.
    """

    name: ClassVar[str] = "pickle"
    _DIGEST = 32

    def __init__(self, key: bytes) -> None:
        if not key:
            raise ConfigurationError("the pickle serializer needs a non-empty HMAC key")
        self._key = key

    def dumps(self, value: Any) -> bytes:
        body = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
        return hmac.new(self._key, body, hashlib.sha256).digest() + body

    def loads(self, data: bytes) -> Any:
        mac, body = data[: self._DIGEST], data[self._DIGEST :]
        if not hmac.compare_digest(mac, hmac.new(self._key, body, hashlib.sha256).digest()):
            raise ValueError("pickle payload signature mismatch; refusing to unpickle")
        return pickle.loads(body)  # noqa: S301 - signed by a holder of the key
