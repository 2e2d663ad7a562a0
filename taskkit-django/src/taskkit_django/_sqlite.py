"""The SQLite flavour of :class:`~taskkit_django._orm.DjangoBackend`.

What differs from the portable ORM code: waits poll ``PRAGMA data_version`` (a counter of
other connections' commits, read without a lock) instead of backing off; and
:meth:`SQLiteBackend.check` warns about a journal mode other than WAL. (Every write, outcomes
included, passes SQLite's writers' gate in :func:`taskkit_django._db.write_transaction`.)
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, ClassVar

from django.db import connections
from taskkit import Outcome

from ._orm import DjangoBackend

__all__ = ["SQLiteBackend"]

log = logging.getLogger("taskkit.django")


class SQLiteBackend(DjangoBackend):
    """The SQLite flavour: waits on ``data_version``, warns about journal modes but WAL."""

    for_vendor: ClassVar[str | None] = "sqlite"

    def __init__(self, using: str = "default", **options: Any) -> None:
        super().__init__(using, **options)
        # Per thread: the data_version its last claim saw.
        self._data_versions: dict[int, int] = {}

    def _before_claim(self, group: str) -> None:
        self._data_versions[threading.get_ident()] = self._data_version()

    def wait_for_work(self, group: str, timeout: float) -> None:
        seen = self._data_versions.get(threading.get_ident())
        if seen is None:
            super().wait_for_work(group, timeout)
        else:
            self._wait_data_version(seen, timeout)

    def wait_for_outcome(self, task_id: str, timeout: float) -> Outcome | None:
        deadline = time.monotonic() + timeout
        while True:
            seen = self._run(lambda _r: self._data_version())
            outcome = self.get_outcome(task_id)
            remaining = deadline - time.monotonic()
            if outcome is None or outcome.state.finished or remaining <= 0:
                return outcome
            self._wait_data_version(seen, remaining)

    def check(self) -> list[str]:
        with connections[self.using].cursor() as cursor:
            cursor.execute("PRAGMA journal_mode")
            mode = str(cursor.fetchone()[0]).lower()
        if mode == "wal":
            return []
        return [
            f"SQLite database {self.using!r} is in {mode!r} journal mode; WAL lets "
            "readers and the writer work at once (PRAGMA journal_mode=WAL)"
        ]

    # ------------------------------------------------------------------ change polling

    def _data_version(self) -> int:
        """SQLite's per-connection counter of commits by *other* connections (no lock taken)."""
        with connections[self.using].cursor() as cursor:
            cursor.execute("PRAGMA data_version")
            return int(cursor.fetchone()[0])

    def _wait_data_version(self, seen: int, timeout: float) -> bool:
        """Wait until ``data_version`` differs from ``seen`` or ``timeout`` passes; whether
        it changed."""
        deadline = time.monotonic() + max(0.0, timeout)
        delay = 0.002
        while True:
            try:
                if self._run(lambda _r: self._data_version()) != seen:
                    return True
            except Exception:
                log.debug("reading data_version failed", exc_info=True)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            time.sleep(min(delay, remaining))
            delay = min(delay * 2, 0.02)
