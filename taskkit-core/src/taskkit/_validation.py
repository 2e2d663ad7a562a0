"""Checks applied at enqueue, before anything is written: names and ids, payloads, task
headers, due times."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from typing import Final

from ._headers import (
    EMPTY_HEADERS,
    MAX_HEADER_NAME_LENGTH,
    MAX_HEADERS,
    MAX_HEADERS_SIZE,
    TaskHeaders,
    encode_headers,
)
from .errors import InvalidTask, PayloadTooLarge

#: Longest group or task name accepted (Procrastinate's ``varchar(128)``).
MAX_NAME_LENGTH: Final = 128
#: Default caps, in bytes; the kit's options override them.
DEFAULT_MAX_DATA_SIZE: Final = 1024 * 1024
DEFAULT_MAX_RESULT_SIZE: Final = 1024 * 1024
DEFAULT_MAX_ERROR_SIZE: Final = 64 * 1024

# Printable ASCII without the characters that build Redis key paths, hash tags or glob
# patterns. Inner single spaces are allowed: the taskkit 0.2 README names its group
# "Any task group name", and that code must keep working; tabs, newlines and leading or
# trailing spaces are refused.
_NAME_RE: Final = re.compile(r"[!-~]+(?: [!-~]+)*")
_FORBIDDEN: Final = frozenset(":{}*?[]\\")
# Header names: printable ASCII without spaces, as HTTP field names and propagator keys are.
_HEADER_NAME_RE: Final = re.compile(r"[!-~]+")


def validate_name(kind: str, value: object) -> str:
    """Return ``value`` if it is a valid group or task name, else raise :class:`InvalidTask`."""
    if not isinstance(value, str):
        raise InvalidTask(f"{kind} must be a str, not {type(value).__name__}")
    if not value:
        raise InvalidTask(f"{kind} must not be empty")
    if len(value) > MAX_NAME_LENGTH:
        raise InvalidTask(f"{kind} is {len(value)} characters long; the limit is {MAX_NAME_LENGTH}")
    if not _NAME_RE.fullmatch(value) or _FORBIDDEN.intersection(value):
        raise InvalidTask(
            f"{kind} {value!r} must be printable ASCII (single inner spaces allowed) without "
            f"any of {''.join(sorted(_FORBIDDEN))}"
        )
    return value


def validate_task_id(value: object) -> str:
    """Return ``value`` if it is a valid task id, else raise :class:`InvalidTask`.

    Ids follow the name rules (:func:`validate_name`): UUIDs, hex or dashed, and readable
    ids such as ``"welcome-ada"`` or ``"order 42"`` pass; newlines, tabs, leading or trailing
    spaces and the key-building characters ``:{}*?[]\\`` do not.
    """
    return validate_name("task id", value)


def validate_headers(value: object) -> TaskHeaders:
    """``value`` as :class:`TaskHeaders` if it is valid headers, else a typed error.

    Valid: a mapping of at most :data:`MAX_HEADERS` entries whose names are 1 to
    :data:`MAX_HEADER_NAME_LENGTH` printable ASCII characters without spaces and whose
    values are printable strings (no control characters; empty is allowed), taking at most
    :data:`MAX_HEADERS_SIZE` bytes encoded.

    :raises InvalidTask: not a mapping, too many entries, a bad name or value.
    :raises PayloadTooLarge: over :data:`MAX_HEADERS_SIZE` bytes encoded.
    """
    if not isinstance(value, Mapping):
        raise InvalidTask(f"headers must be a mapping of str to str, not {type(value).__name__}")
    if not value:
        return EMPTY_HEADERS
    if len(value) > MAX_HEADERS:
        raise InvalidTask(f"{len(value)} headers given; the limit is {MAX_HEADERS}")
    for name, text in value.items():
        if not isinstance(name, str):
            raise InvalidTask(f"header names must be str, not {type(name).__name__} ({name!r})")
        if len(name) > MAX_HEADER_NAME_LENGTH or not _HEADER_NAME_RE.fullmatch(name):
            raise InvalidTask(
                f"header name {name[:40]!r} must be 1 to {MAX_HEADER_NAME_LENGTH} printable "
                "ASCII characters without spaces"
            )
        if not isinstance(text, str):
            raise InvalidTask(f"header {name!r} must be a str, not {type(text).__name__}")
        if not text.isprintable():
            raise InvalidTask(
                f"header {name!r} holds a control or unprintable character: {text[:40]!r}"
            )
    headers = value if type(value) is TaskHeaders else TaskHeaders(value)
    size = len(encode_headers(headers).encode("utf-8"))
    if size > MAX_HEADERS_SIZE:
        raise PayloadTooLarge("task headers (encoded)", size, MAX_HEADERS_SIZE)
    return headers


def validate_payload(what: str, value: object, limit: int) -> bytes:
    """Return ``value`` if it is bytes within ``limit``, else raise a typed error."""
    if not isinstance(value, (bytes, bytearray, memoryview)):
        raise InvalidTask(f"{what} must be bytes, not {type(value).__name__}")
    value = bytes(value)
    if len(value) > limit:
        raise PayloadTooLarge(what, len(value), limit)
    return value


def truncate_text(text: str, limit: int = DEFAULT_MAX_ERROR_SIZE) -> str:
    """Cut error text to ``limit`` bytes of UTF-8, keeping the end (where the error is)."""
    encoded = text.encode("utf-8", "replace")
    if len(encoded) <= limit:
        return text
    marker = "[…truncated…]\n"
    tail = encoded[-(limit - len(marker.encode())) :].decode("utf-8", "ignore")
    return marker + tail


def to_epoch(value: datetime | float | int | None, default: float) -> float:
    """Seconds since the epoch from a datetime (naive means local time) or a number."""
    if value is None:
        return default
    if isinstance(value, datetime):
        return value.timestamp()
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    raise InvalidTask(f"due must be a datetime or epoch seconds, not {type(value).__name__}")
