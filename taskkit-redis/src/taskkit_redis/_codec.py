"""Task records: Python values to Redis hash fields and back.

Field names are short because every record carries them: ``id``, ``n`` name, ``d`` data,
``du`` due, ``cr`` created, ``sc`` scheduled ("" for none), ``rc`` retry count, ``ttl``,
``to`` timeout ("" for none), ``dl`` deliveries, ``st`` state, ``qm`` queue member,
``tk`` token, ``wk`` worker, ``le`` lease expiry, ``cx`` cancel requested, ``r`` result,
``e`` error or reason, ``f`` finished.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from taskkit import Claim, Outcome, Task, TaskState

__all__ = [
    "MalformedRecord",
    "claim_from_fields",
    "decode_fields",
    "outcome_from_fields",
    "queue_member",
    "task_args",
    "task_from_fields",
]


class MalformedRecord(ValueError):
    """A stored record lacks a field or holds an unparsable value."""


def _num(value: float | None) -> str:
    return "" if value is None else repr(float(value))


def queue_member(task: Task) -> str:
    """The queue zset member: sorts by creation time, then id, among equal due times."""
    return f"{task.created:020.6f}|{task.id}"


def task_args(task: Task) -> list[bytes | str]:
    """The ten ARGV fields a script needs to create ``task``'s record."""
    return [
        task.id,
        queue_member(task),
        task.name,
        task.data,
        repr(float(task.due)),
        repr(float(task.created)),
        _num(task.scheduled),
        str(int(task.retry_count)),
        repr(float(task.ttl)),
        _num(task.timeout),
    ]


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
    )


def _lenient(fields: dict[str, bytes], name: str, default: float) -> float:
    try:
        return float(fields.get(name) or default)
    except ValueError:
        return default


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


def claim_from_fields(group: str, task_id: str, fields: dict[str, bytes]) -> Claim:
    return Claim(
        task=task_from_fields(group, task_id, fields),
        token=_text(fields, "tk"),
        lease_expires=_float(fields, "le"),
        worker_id=_text(fields, "wk"),
    )
