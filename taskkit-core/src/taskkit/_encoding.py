"""Encoding task data and results through a handler, with errors that say who refused what.

A serializer signals a value it cannot encode with whatever its library raises (``TypeError``
for a set in JSON, ``ValueError`` for NaN, ``OverflowError`` for a huge int in msgpack). The
producer turns that into :class:`~taskkit.errors.InvalidTask` before anything is written; the
worker and the eager runner turn it into a failed task whose message says so.
"""

from __future__ import annotations

from typing import Any

from ._task import Task
from ._validation import validate_payload
from .errors import InvalidTask, PayloadTooLarge, TaskkitError
from .handler import TaskHandler

__all__ = ["ResultNotEncodable", "describe_encoder", "encode_data", "encode_result"]


class ResultNotEncodable(Exception):
    """A handler's return value could not be encoded (or did not survive a decode).

    Internal: it never leaves taskkit; the task fails with ``str(exc)`` as its message.
    """


def describe_encoder(handler: TaskHandler, method: str) -> str:
    """Who encodes for ``handler``: ``"the 'json' serializer"``, or ``"MyHandler.encode_data"``
    when the handler overrides ``method`` (a router is described by the handler it routes to)."""
    handler = getattr(handler, "routed_handler", handler)
    if getattr(type(handler), method, None) is getattr(TaskHandler, method):
        return f"the {handler.serializer!r} serializer"
    return f"{type(handler).__qualname__}.{method}"


def encode_data(handler: TaskHandler, group: str, name: str, data: Any) -> bytes:
    """``handler.encode_data(group, name, data)``; a value it cannot encode is ``InvalidTask``.

    :raises InvalidTask: the encoder raised (its error is chained as ``__cause__``), or did
        not return bytes.
    """
    try:
        encoded = handler.encode_data(group, name, data)
    except TaskkitError:
        raise
    except Exception as exc:
        raise InvalidTask(
            f"task data for {group!r}/{name!r} cannot be encoded by "
            f"{describe_encoder(handler, 'encode_data')}: {type(exc).__name__}: {exc}"
        ) from exc
    return encoded


def encode_result(handler: TaskHandler, task: Task, value: Any, limit: int) -> bytes:
    """Encode a result for storage, capped at ``limit`` bytes.

    :raises PayloadTooLarge: the encoded result exceeds ``limit``.
    :raises ResultNotEncodable: the encoder raised or returned no bytes; the message names it.
    """
    try:
        encoded = handler.encode_result(task, value)
    except Exception as exc:
        raise ResultNotEncodable(
            f"result could not be encoded by {describe_encoder(handler, 'encode_result')}: "
            f"{type(exc).__name__}: {exc}"
        ) from exc
    try:
        return validate_payload("result", encoded, limit)
    except PayloadTooLarge:
        raise
    except InvalidTask as exc:
        raise ResultNotEncodable(
            f"result could not be encoded: {describe_encoder(handler, 'encode_result')} "
            f"returned {type(encoded).__name__}, not bytes"
        ) from exc
