"""Task records: Python values to Redis hash fields and back.

Field names are short because every record carries them: ``id``, ``n`` name, ``d`` data,
``du`` due, ``cr`` created, ``sc`` scheduled ("" for none), ``rc`` retry count, ``ttl``,
``to`` timeout ("" for none), ``dl`` deliveries, ``st`` state, ``qm`` queue member,
``tk`` token, ``wk`` worker, ``le`` lease expiry, ``cx`` cancel requested, ``r`` result,
``e`` error or reason, ``f`` finished, ``h`` headers (their JSON text; absent when there are
none, which is also how records written before headers existed read).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from taskkit import Claim, Outcome, Task, TaskHeaders, TaskState
from taskkit.backend import decode_headers, encode_headers

__all__ = [
    "CLAIM_FIELDS",
    "MalformedRecord",
    "claim_from_fields",
    "claim_from_values",
    "decode_fields",
    "outcome_from_fields",
    "task_args",
    "task_from_fields",
]


class MalformedRecord(ValueError):
    """A stored record lacks a field or holds an unparsable value."""


def _num(value: float | None) -> str:
    return "" if value is None else repr(float(value))


#: Separates the header fields of a task (names are printable ASCII, the headers' JSON text
#: escapes every control character, the rest are numbers).
_SEPARATOR = "\x1f"


def task_args(task: Task) -> list[bytes | str]:
    """The three ARGV values (id, header, data) a script needs to create ``task``'s record."""
    header = _SEPARATOR.join(
        (
            task.name,
            repr(float(task.due)),
            repr(float(task.created)),
            _num(task.scheduled),
            str(int(task.retry_count)),
            repr(float(task.ttl)),
            _num(task.timeout),
            encode_headers(task.headers),
        )
    )
    return [task.id, header, task.data]


def decode_fields(flat: Sequence[bytes] | Mapping[bytes, bytes]) -> dict[str, bytes]:
    """HGETALL's reply (flat from a script, a dict from redis-py) with str keys."""
    if isinstance(flat, Mapping):
        return {k.decode("utf-8", "replace"): v for k, v in flat.items()}
    return {flat[i].decode("utf-8", "replace"): flat[i + 1] for i in range(0, len(flat) - 1, 2)}


def _text(fields: dict[str, bytes], name: str) -> str:
    try:
        return fields[name].decode("utf-8")
    except KeyError:
        raise MalformedRecord(f"field {name!r} is missing") from None
    except UnicodeDecodeError:
        raise MalformedRecord(f"field {name!r} is not UTF-8") from None


def _optional_float(fields: dict[str, bytes], name: str) -> float | None:
    raw = fields.get(name, b"")
    if raw == b"":
        return None
    try:
        return float(raw)
    except ValueError:
        raise MalformedRecord(f"field {name!r} is not a number: {raw[:40]!r}") from None


def _float(fields: dict[str, bytes], name: str) -> float:
    value = _optional_float(fields, name)
    if value is None:
        raise MalformedRecord(f"field {name!r} is missing")
    return value


def _headers(fields: dict[str, bytes]) -> TaskHeaders:
    try:
        return decode_headers(fields.get("h"))
    except ValueError as exc:
        raise MalformedRecord(f"field 'h': {exc}") from None


def _int(fields: dict[str, bytes], name: str, default: int = 0) -> int:
    raw = fields.get(name, b"")
    try:
        return int(raw) if raw else default
    except ValueError:
        raise MalformedRecord(f"field {name!r} is not an integer: {raw[:40]!r}") from None


def task_from_fields(
    group: str, task_id: str, fields: dict[str, bytes], *, strict: bool = True
) -> Task:
    """Rebuild a :class:`Task`.

    :param strict: raise :class:`MalformedRecord` on a damaged record; when False, damaged
        fields read as neutral defaults so the record can still be reported.
    """
    if not strict:
        try:
            return task_from_fields(group, task_id, fields)
        except MalformedRecord:
            return Task(
                id=task_id,
                group=group,
                name=fields.get("n", b"?").decode("utf-8", "replace") or "?",
                data=fields.get("d", b""),
                due=_lenient(fields, "du", 0.0),
                created=_lenient(fields, "cr", 0.0),
                ttl=_lenient(fields, "ttl", 7 * 24 * 3600.0),
                headers=_lenient_headers(fields),
            )
    return Task(
        id=task_id,
        group=group,
        name=_text(fields, "n"),
        data=fields.get("d", b""),
        due=_float(fields, "du"),
        created=_float(fields, "cr"),
        scheduled=_optional_float(fields, "sc"),
        retry_count=_int(fields, "rc"),
        ttl=_float(fields, "ttl"),
        timeout=_optional_float(fields, "to"),
        deliveries=_int(fields, "dl"),
        headers=_headers(fields),
    )


def _lenient(fields: dict[str, bytes], name: str, default: float) -> float:
    try:
        return float(fields.get(name) or default)
    except ValueError:
        return default


def _lenient_headers(fields: dict[str, bytes]) -> TaskHeaders:
    try:
        return _headers(fields)
    except MalformedRecord:
        return TaskHeaders()


def outcome_from_fields(
    group: str, task_id: str, fields: dict[str, bytes], *, strict: bool = True
) -> Outcome:
    """Rebuild an :class:`Outcome` (see :func:`task_from_fields` for ``strict``)."""
    try:
        state = TaskState(_text(fields, "st"))
    except ValueError:
        raise MalformedRecord(f"unknown state {fields.get('st')!r}") from None
    error = fields.get("e")
    return Outcome(
        task=task_from_fields(group, task_id, fields, strict=strict),
        state=state,
        result=fields.get("r") if state is TaskState.SUCCEEDED else None,
        error=None if error is None else error.decode("utf-8", "replace"),
        finished=_optional_float(fields, "f") if state.finished else None,
    )


#: The record fields the claim script answers for each claimed task, in order (after the id).
CLAIM_FIELDS = ("n", "d", "du", "cr", "sc", "rc", "ttl", "to", "dl", "tk", "le", "wk", "h")


def claim_from_values(group: str, values: Sequence[bytes]) -> tuple[str, dict[str, bytes]]:
    """The id and the fields of one claimed task as the claim script answers them."""
    return _text_of(values[0]), dict(zip(CLAIM_FIELDS, values[1:]))


def _text_of(value: bytes | str) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


def claim_from_fields(group: str, task_id: str, fields: dict[str, bytes]) -> Claim:
    return Claim(
        task=task_from_fields(group, task_id, fields),
        token=_text(fields, "tk"),
        lease_expires=_float(fields, "le"),
        worker_id=_text(fields, "wk"),
    )
