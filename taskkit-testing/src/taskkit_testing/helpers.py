"""Helpers for backend tests: waiting on conditions, ledgers, task builders, messages.

They are public: use them in your own tests too.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from taskkit import DEFAULT_TTL, Task

__all__ = [
    "Ledger",
    "LedgerLine",
    "TaskMaker",
    "unique_name",
    "violated",
    "wait_until",
]


def violated(guarantee: str) -> str:
    """The message of a failed conformance assertion: it names the guarantee.

    >>> violated("a stale fencing token was accepted")
    'guarantee violated: a stale fencing token was accepted'
    """
    return f"guarantee violated: {guarantee}"


def wait_until(
    predicate: Callable[[], object],
    timeout: float,
    interval: float = 0.01,
    message: str | None = None,
) -> float:
    """Poll ``predicate`` until it returns a truthy value, for at most ``timeout`` seconds.

    The interval grows to at most ten times ``interval``, so a long wait stays cheap.

    :return: the seconds it took.
    :raises AssertionError: the deadline passed; ``message`` (or a default) says what for.
    """
    start = time.monotonic()
    deadline = start + timeout
    delay = interval
    while True:
        if predicate():
            return time.monotonic() - start
        now = time.monotonic()
        if now >= deadline:
            raise AssertionError(message or f"condition not reached within {timeout:.1f}s")
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
