"""Where a taskkit round trip (workload C) spends its time: a timeline per task.

    python bench/profile_roundtrip.py [--n 300] [--threads 4] [--db postgresql|sqlite]

Starts a private redis-server (or, with ``--db``, a private PostgreSQL database or SQLite
file for taskkit-django, as in workload E) and one worker process (fork, 1 process x N
threads), then runs
n sequential ``initiate_task(...).get()`` round trips. The worker's backend ``claim`` and
``complete`` and the handler stamp wall-clock times (one clock for every process on the
machine) into a file, the producer stamps its side, and the script prints the median and
p95 of every stage:

    put      producer: initiate_task until put returned
    wake     put returned until the claimer's claim returned with the task
    handoff  claim returned until the handler started (executor thread hand-off)
    finish   handler started until its outcome was written (hooks, encode, record_outcomes)
    notify   complete() returned until Result.get returned in the producer

A development tool for issue 6's "profile where a target is missed"; not part of the suite.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from databases import BenchDatabases
from redis_server import PrivateRedis

STAMPS = Path(tempfile.gettempdir()) / f"bench-rt-stamps-{os.getpid()}.txt"


def _stamp(task_id: str, stage: str) -> None:
    with STAMPS.open("a") as out:
        out.write(f"{task_id} {stage} {time.time():.6f}\n")


def _instrument(backend_class: Any) -> None:
    """Wrap the backend's claim and outcome writes (inherited by the forked worker)."""
    claim, record = backend_class.claim, backend_class.record_outcomes
    wait = backend_class.wait_for_work

    def timed_wait(self: Any, *args: Any, **kwargs: Any) -> Any:
        answer = wait(self, *args, **kwargs)
        _stamp("-", "woke")
        return answer

    def timed_claim(self: Any, *args: Any, **kwargs: Any) -> Any:
        _stamp("-", "claim-call")
        batch = claim(self, *args, **kwargs)
        for c in batch.claims:
            _stamp(c.task.id, "claimed")
        return batch

    def timed_record(self: Any, writes: Any) -> Any:
        # The worker writes outcomes through record_outcomes (batched), never complete().
        answer = record(self, writes)
        for write in writes:
            _stamp(write.claim.task.id, "completed")
        return answer

    setattr(backend_class, "claim", timed_claim)  # noqa: B010 - monkeypatching on purpose
    setattr(backend_class, "wait_for_work", timed_wait)  # noqa: B010
    setattr(backend_class, "record_outcomes", timed_record)  # noqa: B010


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=300)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--db", choices=("postgresql", "sqlite"), default=None,
                        help="taskkit-django on a private database instead of Redis")
    args = parser.parse_args()

    import taskkit
    from taskkit import Task, TaskHandler

    class Handler(TaskHandler):
        def handle(self, task: Task) -> Any:
            _stamp(task.id, "handled")
            return 1

    with contextlib.ExitStack() as stack:
        if args.db is None:
            url = stack.enter_context(PrivateRedis()).url(0)
        else:
            databases = stack.enter_context(BenchDatabases())
            databases.prepare(args.db, 0, lambda _url: None)  # make_kit migrates it
            url = databases.url(args.db, 0, template=True)
        kit = taskkit.make_kit(url, Handler())
        _instrument(type(kit.backend))
        procs = kit.start_processes(1, {"bench": args.threads}, start_method="fork")
        try:
            for _ in range(20):  # warm up: the worker is up and subscribed
                kit.initiate_task("bench", "noop", None).get(timeout=30)
            STAMPS.unlink(missing_ok=True)
            producer: dict[str, tuple[float, float, float]] = {}
            for _ in range(args.n):
                t0 = time.time()
                result = kit.initiate_task("bench", "noop", None)
                t1 = time.time()
                result.get(timeout=30)
                producer[result.task_id] = (t0, t1, time.time())
        finally:
            for proc in procs:
                proc.terminate()
            for proc in procs:
                proc.join(10)
            kit.backend.close()  # before the private database goes (its LISTEN connection)
    worker: dict[str, dict[str, float]] = {}
    events: dict[str, list[float]] = {"woke": [], "claim-call": []}
    for line in STAMPS.read_text().splitlines():
        task_id, stage, at = line.split()
        if task_id == "-":
            events[stage].append(float(at))
        else:
            worker.setdefault(task_id, {})[stage] = float(at)

    def last_before(kind: str, at: float) -> float | None:
        found = [t for t in events[kind] if t <= at]
        return max(found) if found else None
    STAMPS.unlink(missing_ok=True)
    stages: dict[str, list[float]] = {k: [] for k in (
        "put", "wake", "  woke", "  to claim", "  claim", "handoff", "finish", "notify", "total")}
    for task_id, (t0, t1, t2) in producer.items():
        w = worker.get(task_id, {})
        if {"claimed", "handled", "completed"} - w.keys():
            continue
        stages["put"].append(t1 - t0)
        stages["wake"].append(w["claimed"] - t1)
        call = last_before("claim-call", w["claimed"])
        woke = last_before("woke", call or 0.0)
        if call is not None and woke is not None and woke >= t0:
            stages["  woke"].append(woke - t1)
            stages["  to claim"].append(call - woke)
            stages["  claim"].append(w["claimed"] - call)
        stages["handoff"].append(w["handled"] - w["claimed"])
        stages["finish"].append(w["completed"] - w["handled"])
        stages["notify"].append(t2 - w["completed"])
        stages["total"].append(t2 - t0)
    print(f"{len(stages['total'])} round trips, load average {os.getloadavg()[0]:.1f}")
    print(f"{'stage':8} {'p50 ms':>8} {'p95 ms':>8}")
    for name, values in stages.items():
        if not values:
            continue
        values.sort()
        p95 = values[int(0.95 * (len(values) - 1))]
        print(f"{name:8} {statistics.median(values) * 1000:8.2f} {p95 * 1000:8.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
