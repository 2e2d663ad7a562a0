"""Task headers: the small ``str -> str`` mapping a task carries beside its data (trace
context, a request or tenant id), with its limits and the text form backends store (the
check at enqueue is ``_validation.validate_headers``).

Headers ride on every record, every claim answer and every outcome read, so they are capped
(:data:`MAX_HEADERS` entries, :data:`MAX_HEADERS_SIZE` bytes encoded). The caps leave room
for what propagators inject: W3C ``traceparent`` (55 bytes) and ``tracestate`` (vendors keep
512 characters of it), ``sentry-trace`` and a modest ``baggage``, while bounding what a
task record grows by.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from typing import Final

__all__ = [
    "EMPTY_HEADERS",
    "MAX_HEADERS",
    "MAX_HEADERS_SIZE",
    "MAX_HEADER_NAME_LENGTH",
    "TaskHeaders",
    "decode_headers",
    "encode_headers",
]

#: The most headers a task may carry.
MAX_HEADERS: Final = 32
#: The most bytes a task's headers may take in their stored form (:func:`encode_headers`).
MAX_HEADERS_SIZE: Final = 4096
#: The longest header name (the limit of group and task names).
MAX_HEADER_NAME_LENGTH: Final = 128


class TaskHeaders(Mapping[str, str]):
    """A read-only ``str -> str`` mapping: the type of :attr:`taskkit.Task.headers`.

    It equals any mapping with the same items (a plain ``dict`` included) and is hashable,
    so a :class:`~taskkit.Task` stays hashable. Pickles as its items.
    """

    __slots__ = ("_hash", "_items")

    def __init__(self, items: Mapping[str, str] | Iterable[tuple[str, str]] = ()) -> None:
        self._items: dict[str, str] = dict(items)
        self._hash: int | None = None

    def __getitem__(self, key: str) -> str:
        return self._items[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, TaskHeaders):
            return self._items == other._items
        if isinstance(other, Mapping):
            return self._items == dict(other.items())
        return NotImplemented

    def __hash__(self) -> int:
        if self._hash is None:
            self._hash = hash(frozenset(self._items.items()))
        return self._hash

    def __repr__(self) -> str:
        return f"TaskHeaders({self._items!r})"

    def __reduce__(self) -> tuple[type[TaskHeaders], tuple[dict[str, str]]]:
        return (TaskHeaders, (self._items,))


#: The headers of a task that has none (shared: the mapping is read-only).
EMPTY_HEADERS: Final = TaskHeaders()


def as_headers(value: object) -> object:
    """``value`` as :class:`TaskHeaders` when it is a mapping; anything else unchanged, so
    the check at enqueue (``_validation.validate_headers``) can name it."""
    if type(value) is TaskHeaders or not isinstance(value, Mapping):
        return value
    return TaskHeaders(value) if value else EMPTY_HEADERS


def encode_headers(headers: Mapping[str, str]) -> str:
    """The stored form of ``headers``: ``""`` when there are none, else compact JSON.

    JSON escapes every control character, so the text never holds one (a backend may use one
    as a separator around it).
    """
    if not headers:
        return ""
    return json.dumps(dict(headers), ensure_ascii=False, separators=(",", ":"))


def decode_headers(text: str | bytes | None) -> TaskHeaders:
    """The headers stored as ``text`` by :func:`encode_headers` (None or empty: none).

    :raises ValueError: ``text`` is not such a form (a damaged record).
    """
    if not text:
        return EMPTY_HEADERS
    try:
        value = json.loads(text)
    except (ValueError, UnicodeDecodeError):
        raise ValueError(f"stored headers are not JSON: {text[:40]!r}") from None
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise ValueError(f"stored headers are not a JSON object of strings: {text[:40]!r}")
    return TaskHeaders(value)
