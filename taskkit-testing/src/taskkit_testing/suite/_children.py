"""Entry points of the kit's child processes (module-level so ``spawn`` can import them).

Children use plain claim/complete loops on the backend contract, and report through a
:class:`~taskkit_testing.helpers.Ledger` that survives SIGKILL.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable
from typing import Any

from taskkit import Backend, LeaseLost

from ..helpers import Ledger

__all__ = ["claim_and_die", "claim_and_hang", "claim_loop"]


def _safe(text: object) -> str:
    return "_".join(repr(text).split())[:300]


def claim_loop(
    factory: Callable[[], Backend],
    group: str,
    worker_id: str,
    threads: int,
    ledger_path: str,
    stop: Any,
    lease: float,
    work_seconds: float = 0.0,
    max_deliveries: int = 5,
) -> None:
    """Claim and complete tasks of ``group`` with ``threads`` threads until ``stop`` is set.

    Ledger lines: ``ready worker pid``; ``start task_id deliveries pid thread monotonic``;
    ``end task_id pid`` (the handler finished, before the outcome is written);
    ``lost task_id pid`` (complete raised LeaseLost); ``error worker thread repr``.
    The lease is renewed by nobody: keep ``work_seconds`` well below ``lease``.
    """
    backend = factory()
    ledger = Ledger(ledger_path)
    pid = os.getpid()
    ledger.write("ready", worker_id, pid)

    def run(index: int) -> None:
        try:
            while not stop.is_set():
                batch = backend.claim(group, worker_id, 1, lease, max_deliveries)
                if not batch.claims:
                    backend.wait_for_work(group, 0.05)
                    continue
                for claim in batch.claims:
                    task = claim.task
                    ledger.write("start", task.id, task.deliveries, pid, index, time.monotonic())
                    if work_seconds:
                        time.sleep(work_seconds)  # the "handler": mid-task is where kills land
                    ledger.write("end", task.id, pid)
                    try:
                        backend.complete(claim, task.id.encode())
                    except LeaseLost:
                        ledger.write("lost", task.id, pid)
        except BaseException as exc:
            ledger.write("error", worker_id, index, _safe(exc))
            raise

    workers = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(threads)]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join()
    backend.close()


def claim_and_hang(
    factory: Callable[[], Backend],
    group: str,
    worker_id: str,
    count: int,
    ledger_path: str,
    lease: float,
    deadline_seconds: float,
) -> None:
    """Claim ``count`` tasks, log them as ``held task_id token lease_expires``, then hang
    (as if every handler were mid-task) until killed."""
    backend = factory()
    ledger = Ledger(ledger_path)
    held = 0
    deadline = time.monotonic() + deadline_seconds
    while held < count and time.monotonic() < deadline:
        batch = backend.claim(group, worker_id, count - held, lease, 5)
        for claim in batch.claims:
            ledger.write("held", claim.task.id, claim.token, repr(claim.lease_expires))
            held += 1
        if not batch.claims:
            backend.wait_for_work(group, 0.05)
    ledger.write("hanging", os.getpid())
    while True:
        time.sleep(3600)  # only SIGKILL ends this process, which is the point


def claim_and_die(
    factory: Callable[[], Backend],
    group: str,
    worker_id: str,
    ledger_path: str,
    lease: float,
    max_deliveries: int,
    deadline_seconds: float,
) -> None:
    """Claim one task, log ``took task_id deliveries``, and SIGKILL this very process: a task
    that kills its worker every time. Logs ``nothing`` and exits 0 if no task came."""
    backend = factory()
    ledger = Ledger(ledger_path)
    deadline = time.monotonic() + deadline_seconds
    while time.monotonic() < deadline:
        batch = backend.claim(group, worker_id, 1, lease, max_deliveries)
        for outcome in batch.dead_lettered:
            ledger.write("dead", outcome.task.id)
        if batch.claims:
            claim = batch.claims[0]
            ledger.write("took", claim.task.id, claim.task.deliveries)
            os.kill(os.getpid(), signal.SIGKILL)
        if batch.next_due is None:
            break
        backend.wait_for_work(group, 0.05)
    ledger.write("nothing", os.getpid())
