"""Helpers for backend tests: waiting on conditions, ledgers, task builders, messages.

They are public: use them in your own tests too.
"""

from __future__ import annotations

import dataclasses
import enum
import os
import reprlib
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest
from taskkit import DEFAULT_TTL, Backend, Claim, Outcome, ResultGetTimedOut, Task, TaskkitError

__all__ = [
    "Ledger",
    "LedgerLine",
    "TaskMaker",
    "claim_one",
    "field_differences",
    "outcome_of",
    "raises",
    "result_value",
    "short",
    "unique_name",
    "violated",
    "wait_until",
]

E = TypeVar("E", bound=BaseException)

_MISSING: Any = object()
_short = reprlib.Repr()
_short.maxstring = _short.maxother = _short.maxlong = 80
_short.maxlist = _short.maxtuple = _short.maxset = _short.maxdict = 6


def short(value: object) -> str:
    """``repr(value)`` cut to a readable length (long bytes, lists and records are elided)."""
    if isinstance(value, enum.Enum):
        return str(value.name)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        inner = ", ".join(
            f"{f.name}={short(getattr(value, f.name))}" for f in dataclasses.fields(value)
        )
        text = f"{type(value).__name__}({inner})"
        return text if len(text) <= 200 else text[:197] + "..."
    return _short.repr(value)


def violated(guarantee: str, *, got: object = _MISSING) -> str:
    """The message of a failed conformance assertion: it names the guarantee in words, and
    with ``got`` what the backend did instead (shortened).

    >>> violated("a stale fencing token was accepted")
    'guarantee violated: a stale fencing token was accepted'
    >>> violated("put() must answer one bool per task", got=[True])
    'guarantee violated: put() must answer one bool per task (got [True])'
    """
    if got is _MISSING:
        return f"guarantee violated: {guarantee}"
    return f"guarantee violated: {guarantee} (got {got if isinstance(got, str) else short(got)})"


def field_differences(actual: object, expected: object | Mapping[str, object]) -> str:
    """The fields in which ``actual`` differs from ``expected``, in words ("" when none).

    ``expected`` is another record of the same type (every field is compared, nested records
    field by field) or a mapping of dotted field names to values (``{"state": ...,
    "task.retry_count": 1}``), so a failure names the differing fields instead of printing
    two whole records.
    """
    if isinstance(expected, Mapping):
        pairs = [(name, _dotted(actual, name), value) for name, value in expected.items()]
    else:
        pairs = list(_pairs("", actual, expected))
    return "; ".join(
        f"{name} is {short(got)}, expected {short(want)}"
        for name, got, want in pairs
        if got != want
    )


def _dotted(value: object, name: str) -> object:
    for part in name.split("."):
        value = getattr(value, part)
    return value


def _pairs(prefix: str, actual: object, expected: object) -> Iterator[tuple[str, object, object]]:
    if (
        dataclasses.is_dataclass(actual)
        and type(actual) is type(expected)
        and not isinstance(actual, type)
    ):
        for f in dataclasses.fields(actual):
            yield from _pairs(
                f"{prefix}{f.name}.", getattr(actual, f.name), getattr(expected, f.name)
            )
    else:
        yield prefix.rstrip(".") or "value", actual, expected


def outcome_of(backend: Backend, task_id: str, guarantee: str, **expected: object) -> Outcome:
    """The backend's outcome of ``task_id``, failing with ``guarantee`` (and the differing
    fields) unless it exists and has the ``expected`` fields; dotted names reach into the
    task: ``outcome_of(b, tid, "retry must count", state=QUEUED, task__retry_count=1)``."""
    outcome = backend.get_outcome(task_id)
    if outcome is None:
        pytest.fail(violated(guarantee, got=f"no record of task {task_id!r}"))
    diff = field_differences(outcome, {k.replace("__", "."): v for k, v in expected.items()})
    if diff:
        pytest.fail(violated(guarantee, got=diff))
    return outcome


def claim_one(
    backend: Backend,
    group: str,
    worker_id: str,
    lease_seconds: float,
    max_deliveries: int,
    guarantee: str = "claim() must hand out the group's one task that is due and not held "
    "under a valid lease",
) -> Claim:
    """Claim with limit 1 and expect exactly one task; fail naming ``guarantee`` otherwise
    (instead of a bare ``ValueError: not enough values to unpack``)."""
    batch = backend.claim(group, worker_id, 1, lease_seconds, max_deliveries)
    if len(batch.claims) != 1:
        pytest.fail(
            violated(
                guarantee,
                got=f"{len(batch.claims)} claim(s), {len(batch.dead_lettered)} dead-lettered, "
                f"next_due={batch.next_due!r}",
            )
        )
    return batch.claims[0]


@contextmanager
def raises(expected: type[E], guarantee: str) -> Iterator[pytest.ExceptionInfo[E]]:
    """Like :func:`pytest.raises`, but both ways of not raising ``expected`` (nothing raised,
    or another exception) fail naming ``guarantee``."""
    try:
        with pytest.raises(expected) as info:
            yield info
            pytest.fail(violated(guarantee, got="no exception"))
    except Exception as exc:  # not ``expected``: pytest.raises let it through
        pytest.fail(violated(guarantee, got=f"{type(exc).__name__}: {exc}"))


def result_value(result: Any, timeout: float, guarantee: str) -> Any:
    """``result.get(timeout)``, with a timeout or any taskkit error turned into a failure that
    names ``guarantee`` (instead of a raw ``ResultGetTimedOut``)."""
    try:
        return result.get(timeout=timeout)
    except ResultGetTimedOut:
        pytest.fail(violated(guarantee, got=f"no outcome within {timeout:g}s"))
    except TaskkitError as exc:
        pytest.fail(violated(guarantee, got=f"{type(exc).__name__}: {exc}"))


def wait_until(
    predicate: Callable[[], object],
    timeout: float,
    interval: float = 0.01,
    message: str | None = None,
) -> float:
    """Poll ``predicate`` until it returns a truthy value, for at most ``timeout`` seconds.

    The interval grows to at most ten times ``interval``, so a long wait stays cheap.

    :return: the seconds it took.
    :param message: what the wait was for, in words; it becomes the failure message
        (``guarantee violated: <message>``) when the deadline passes.
    :raises AssertionError: the deadline passed.
    """
    start = time.monotonic()
    deadline = start + timeout
    delay = interval
    while True:
        if predicate():
            return time.monotonic() - start
        now = time.monotonic()
        if now >= deadline:
            raise AssertionError(
                violated(f"{message} (waited {timeout:.1f}s)")
                if message
                else f"condition not reached within {timeout:.1f}s"
            )
        # A poll interval, not a wait for the condition itself: the condition is re-checked.
        time.sleep(min(delay, deadline - now))
        delay = min(delay * 1.5, interval * 10)


def unique_name(prefix: str = "t") -> str:
    """A short random name that passes taskkit's group/name validation."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


@dataclass
class TaskMaker:
    """Builds valid :class:`taskkit.Task` objects for direct backend calls.

    :ivar group: the group of the tasks it builds (unique per test by default).
    :ivar now: a function telling the backend's time; due and created default to it.
    """

    group: str
    now: Callable[[], float]
    _seq: Iterator[int] = field(default_factory=lambda: iter(range(1, 1 << 62)))

    def one(
        self,
        *,
        group: str | None = None,
        name: str = "job",
        data: bytes = b"{}",
        due: float | None = None,
        delay: float = 0.0,
        created: float | None = None,
        ttl: float = DEFAULT_TTL,
        timeout: float | None = None,
        task_id: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Task:
        """One task, due ``delay`` seconds from the backend's now unless ``due`` is given."""
        now = self.now()
        seq = next(self._seq)
        return Task(
            id=task_id or f"{uuid.uuid4().hex}-{seq}",
            group=group or self.group,
            name=name,
            data=data,
            due=(now + delay) if due is None else due,
            created=now if created is None else created,
            ttl=ttl,
            timeout=timeout,
            headers=headers or {},
        )

    def many(self, count: int, **kwargs: object) -> list[Task]:
        """``count`` tasks built like :meth:`one` (keyword arguments apply to each)."""
        return [self.one(**kwargs) for _ in range(count)]  # type: ignore[arg-type]


@dataclass(frozen=True)
class LedgerLine:
    """One parsed ledger line: an event word and its fields."""

    event: str
    fields: tuple[str, ...]


class Ledger:
    """An append-only event log that survives SIGKILL, for child processes.

    Each :meth:`write` is one ``os.write`` of one line (under 4 KiB) to a file opened with
    ``O_APPEND``, so lines from many processes and threads never interleave and a line that
    returned is on disk even if the process is killed right after. Pass the path to children;
    each opens its own :class:`Ledger`.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._fd: int | None = None

    def write(self, event: str, *fields: object) -> None:
        """Append ``event field field ...`` as one line; fields must not contain whitespace."""
        line = " ".join([event, *(str(f) for f in fields)]) + "\n"
        data = line.encode()
        if len(data) >= 4096:
            raise ValueError("ledger lines must stay under 4 KiB to be written atomically")
        if self._fd is None:
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        os.write(self._fd, data)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def lines(self) -> list[LedgerLine]:
        """Every complete line written so far, by every process."""
        try:
            text = self.path.read_text()
        except FileNotFoundError:
            return []
        out = []
        for raw in text.splitlines(keepends=True):
            if not raw.endswith("\n"):
                continue  # a torn last line cannot happen with O_APPEND, but be safe
            parts = raw.split()
            if parts:
                out.append(LedgerLine(parts[0], tuple(parts[1:])))
        return out

    def events(self, event: str) -> list[tuple[str, ...]]:
        """The fields of every line of kind ``event``."""
        return [line.fields for line in self.lines() if line.event == event]

    def count(self, event: str) -> int:
        return sum(1 for line in self.lines() if line.event == event)


def chunks(items: list[Task], size: int) -> Iterable[list[Task]]:
    """``items`` in lists of at most ``size``."""
    for i in range(0, len(items), size):
        yield items[i : i + size]
