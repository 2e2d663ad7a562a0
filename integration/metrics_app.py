"""The app of the metrics test: tasks that succeed, are retried, fail, or are held to be killed.

The backend comes from ``TASKKIT_URL`` (and ``TASKKIT_OPTIONS``, JSON). Every run appends a
line ``<task name> <task id> <attempt> <pid>`` to a per-process ledger in ``TASKKIT_LEDGER``
(one ``os.write`` with ``O_APPEND``, so a line survives SIGKILL whole): what the tasks
recorded, against which the test checks the scraped counts. Names no function knows (the
test sends ``vanished``) become dead letters at once (``unknown_task_window=0``).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import taskkit
from taskkit import ExponentialBackoff, NoRetry
from taskkit.context import current_task

kit = taskkit.make_kit(
    os.environ["TASKKIT_URL"],
    lease_seconds=3.0,
    heartbeat_interval=1.0,
    control_interval=0.2,
    grace_period=5.0,
    unknown_task_window=0.0,
    **json.loads(os.environ.get("TASKKIT_OPTIONS", "{}")),
)

#: Quick retries, always after the same short delay: the test waits for every attempt.
QUICK_RETRIES = ExponentialBackoff(base=0.05, factor=1.0, jitter=0.0, max_retries=3)


def _attempt() -> tuple[str, int]:
    context = current_task()
    assert context is not None
    return context.task.id, context.task.retry_count + 1


def _record(name: str) -> int:
    """Append this run to the process's ledger; return the attempt number."""
    task_id, attempt = _attempt()
    path = Path(os.environ["TASKKIT_LEDGER"]) / f"ledger-{os.getpid()}.log"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.write(fd, f"{name} {task_id} {attempt} {os.getpid()}\n".encode())
    finally:
        os.close(fd)
    return attempt


@kit.task(group="work", retry_policy=QUICK_RETRIES)
def ok(i: int) -> int:
    """Succeeds at once."""
    _record("ok")
    return i


@kit.task(group="work", retry_policy=QUICK_RETRIES)
def flaky(i: int, failures: int) -> int:
    """Fails its first ``failures`` attempts (each retried), then succeeds."""
    if _record("flaky") <= failures:
        raise RuntimeError(f"flaky {i}: failing on purpose")
    return i


@kit.task(group="work", retry_policy=NoRetry())
def broken(i: int) -> None:
    """Fails for good at its first attempt."""
    _record("broken")
    raise ValueError(f"broken {i}")


@kit.task(group="work", retry_policy=NoRetry(), timeout=120)
def hold(marker: str) -> str:
    """On its first delivery: writes this process's id to ``marker`` and waits (for the test
    to kill the process); delivered again, it returns at once."""
    context = current_task()
    assert context is not None
    if context.task.deliveries > 1:
        _record("hold")
        return "held"
    Path(marker).write_text(str(os.getpid()))
    time.sleep(110)
    return "not killed"
