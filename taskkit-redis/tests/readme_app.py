"""The handler of the original README (with its ledger, so a test can see what ran), and a
hashing handler for the restart tests.

Module-level so worker processes (any start method) can import it. The README's handler has
one copy for every suite, in :mod:`taskkit_testing.readme`.
"""

from __future__ import annotations

import os
from typing import Any

from taskkit import Task
from taskkit_testing.readme import GROUP_NAME, Handler, ReadmeCodec

__all__ = ["GROUP_NAME", "Handler", "HashHandler"]


class HashHandler(ReadmeCodec):
    """Returns sha256(data) hex; logs ``end <id> <pid>`` lines to the ledger (O_APPEND).

    Data and results are JSON as in the README; failures follow the default retry policy.
    """

    def __init__(self, ledger_path: str) -> None:
        self.ledger_path = ledger_path

    def handle(self, task: Task) -> Any:
        import hashlib

        fd = os.open(self.ledger_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
        try:
            os.write(fd, f"end {task.id} {os.getpid()}\n".encode())
        finally:
            os.close(fd)
        return hashlib.sha256(task.data).hexdigest()
