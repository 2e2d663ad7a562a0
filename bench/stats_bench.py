"""How fast the fleet and queue figures answer on a big store (issue 14's bench row: "the stats
primitives answer in <= 5 ms on Redis and PostgreSQL with 1,000,000 queued tasks and 100
groups").

    python bench/stats_bench.py                         # Redis and PostgreSQL, 1,000,000 tasks
    python bench/stats_bench.py --backends redis --tasks 100000 --groups 10

Each backend gets a private store: a ``redis-server`` on a free port (bench/redis_server.py)
and a PostgreSQL database created for the run on ``BENCH_PG`` (default 127.0.0.1:5432) and
dropped after it. The load is untimed: ``--tasks`` queued tasks spread evenly over
``--groups`` groups by bulk ``put`` (a tenth of them due later), then per group a few tasks
claimed, failed, completed and buried, so every figure has something to count; one group
also gets a full hour of finished counters (every bucket, state and shard, written directly
in the backends' counter layout) so the longest window reads the most it ever can; and
``--workers`` registered workers. PostgreSQL is then vacuumed (``VACUUM ANALYZE``), as
autovacuum would, so its counts can be index-only.

Then each primitive is called ``--calls`` times (on a random group where it takes one) and
the wall time of each call, as a caller sees it, is recorded. Prints p50 / p95 / max in ms
per backend and primitive, with the load averages before and after; ``--json`` writes them.
Asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import taskkit
from databases import BenchDatabases, postgres_available
from redis_server import PrivateRedis
from taskkit import Backend, OutcomeWrite, Task
from taskkit.backend import FINISHED_BUCKET, MAX_FINISHED_WINDOW

PUT_BATCH = 1000
#: Per group: tasks claimed and then failed, completed, buried; and left running.
FINISHED_PER_GROUP = {"fail": 3, "complete": 20, "bury": 2}
RUNNING_PER_GROUP = 5


def _tasks(group: str, count: int, now: float, later: float) -> list[Task]:
    later_from = count - count // 10  # a tenth due in the future: "scheduled"
    return [
        Task(
            id=uuid.uuid4().hex,
            group=group,
            name="job",
            data=b"{}",
            due=now - 60 + i * 1e-3 if i < later_from else now + later,
            created=now - 60 + i * 1e-3,
        )
        for i in range(count)
    ]


def load(backend: Backend, tasks: int, groups: int, progress: Callable[[str], None]) -> list[str]:
    """Put ``tasks`` tasks over ``groups`` groups, finish and hold a few per group."""
    names = [f"group-{g:03d}" for g in range(groups)]
    per_group = tasks // groups
    now = backend.now()
    started = time.monotonic()
    for n, group in enumerate(names):
        made = _tasks(group, per_group, now, 3600.0)
        for i in range(0, len(made), PUT_BATCH):
            backend.put(made[i : i + PUT_BATCH])
        if n % 10 == 9:
            progress(f"  put {(n + 1) * per_group:,} tasks ({time.monotonic() - started:.0f}s)")
    for group in names:
        want = sum(FINISHED_PER_GROUP.values()) + RUNNING_PER_GROUP
        claims = backend.claim(group, "bench-worker", want, 3600.0, 3).claims
        writes = []
        for action, count in FINISHED_PER_GROUP.items():
            for _ in range(count):
                claim = claims.pop()
                value: bytes | str = b"ok" if action == "complete" else f"{action}ed"
                writes.append(OutcomeWrite(claim, action, value))  # type: ignore[arg-type]
        backend.record_outcomes(writes)
    return names


def fill_an_hour_of_counters(backend: Backend, group: str) -> None:
    """Every bucket of the longest window, every state (and shard), for ``group``: written in
    the backend's own counter layout, as an hour of steady finishing would leave it."""
    now = backend.now()
    first, last = (now - MAX_FINISHED_WINDOW) // FINISHED_BUCKET, now // FINISHED_BUCKET
    buckets = range(int(first), int(last) + 1)
    states = ["succeeded", "failed", "discarded", "dead", "cancelled"]
    if backend.name == "redis":
        client = backend.client  # type: ignore[attr-defined]
        pipe = client.pipeline(transaction=False)
        for bucket in buckets:
            key = backend.keys.base(group) + f":fc:{bucket}"  # type: ignore[attr-defined]
            pipe.hset(key, mapping={s: 7 for s in states})
            pipe.pexpire(key, 3720000)
        pipe.execute()
        return
    from django.db import connections
    from taskkit_django._stats import SHARDS

    rows = [(group, b, s, shard, 7) for b in buckets for s in states for shard in range(SHARDS)]
    with connections[backend.using].cursor() as cursor:  # type: ignore[attr-defined]
        cursor.executemany(
            'INSERT INTO taskkit_finished_count ("group", bucket, outcome, shard, n) '
            "VALUES (%s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
            rows,
        )


def register_workers(backend: Backend, count: int, groups: list[str]) -> None:
    for i in range(count):
        threads = {g: 4 for g in random.sample(groups, min(3, len(groups)))}
        backend.register_worker(f"bench-{i:03d}", "bench-host", 1000 + i, threads, 3600.0)
        backend.heartbeat_worker(f"bench-{i:03d}", i % 5, 3600.0)


def time_calls(fn: Callable[[], object], calls: int) -> dict[str, float]:
    fn()  # warm: scripts loaded, statements prepared, connections open
    times = []
    for _ in range(calls):
        started = time.perf_counter()
        fn()
        times.append((time.perf_counter() - started) * 1000)
    times.sort()
    return {
        "p50": statistics.median(times),
        "p95": times[int(len(times) * 0.95) - 1],
        "max": times[-1],
        "calls": calls,
    }


def measure(backend: Backend, groups: list[str], calls: int) -> dict[str, dict[str, float]]:
    pick = random.Random(14).choice
    busy = groups[0]
    primitives: dict[str, Callable[[], object]] = {
        "group_stats": lambda: backend.group_stats(pick(groups)),
        "finished_counts(300)": lambda: backend.finished_counts(pick(groups), 300.0),
        "finished_counts(3600), a full hour": lambda: backend.finished_counts(busy, 3600.0),
        "list_groups": backend.list_groups,
        "list_workers": backend.list_workers,
        "stats (the old figure)": lambda: backend.stats(pick(groups)),
    }
    return {name: time_calls(fn, calls) for name, fn in primitives.items()}


def run_backend(kind: str, args: argparse.Namespace, say: Callable[[str], None]) -> dict[str, Any]:
    if kind == "redis":
        server = PrivateRedis().start()
        closer: Callable[[], None] = server.stop
        kit = taskkit.make_kit(server.url())
    else:
        why = postgres_available()
        if why:
            say(f"postgresql: skipped ({why})")
            return {}
        databases = BenchDatabases()
        databases.prepare("postgresql", 0, lambda _url: None)
        databases.fresh("postgresql", 0)
        closer = databases.close
        kit = taskkit.make_kit(databases.url("postgresql", 0))
    backend = kit.backend
    try:
        say(f"{kind}: loading {args.tasks:,} tasks over {args.groups} groups (untimed)")
        started = time.monotonic()
        groups = load(backend, args.tasks, args.groups, say)
        fill_an_hour_of_counters(backend, groups[0])
        register_workers(backend, args.workers, groups)
        if kind == "postgresql":
            from django.db import connections

            with connections[backend.using].cursor() as cursor:  # type: ignore[attr-defined]
                cursor.execute("VACUUM ANALYZE taskkit_task")
                cursor.execute("VACUUM ANALYZE taskkit_finished_count")
        load_seconds = time.monotonic() - started
        say(f"{kind}: loaded in {load_seconds:.0f}s; timing {args.calls} calls of each")
        check = backend.group_stats(groups[-1])
        say(
            f"{kind}: {groups[-1]}: {check.queued:,} queued, {check.scheduled:,} scheduled, "
            f"{check.running} running, {check.dead_letters} dead, oldest due "
            f"{check.oldest_due_age:.0f}s"
        )
        before = os.getloadavg()
        timings = measure(backend, groups, args.calls)
        after = os.getloadavg()
        return {
            "backend": kind,
            "tasks": args.tasks,
            "groups": args.groups,
            "workers": args.workers,
            "load_seconds": round(load_seconds, 1),
            "loadavg_before": [round(x, 2) for x in before],
            "loadavg_after": [round(x, 2) for x in after],
            "timings_ms": {k: {m: round(v, 3) for m, v in t.items()} for k, t in timings.items()},
        }
    finally:
        backend.close()
        closer()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backends", default="redis,postgresql")
    parser.add_argument("--tasks", type=int, default=1_000_000)
    parser.add_argument("--groups", type=int, default=100)
    parser.add_argument("--workers", type=int, default=50)
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args(argv)

    def say(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    results = [run_backend(kind, args, say) for kind in args.backends.split(",")]
    results = [r for r in results if r]
    for result in results:
        print(
            f"\n{result['backend']}: {result['tasks']:,} tasks, {result['groups']} groups, "
            f"{result['workers']} workers; load average {result['loadavg_before']} -> "
            f"{result['loadavg_after']}"
        )
        print(f"  {'primitive':<36} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8}")
        for name, t in result["timings_ms"].items():
            print(f"  {name:<36} {t['p50']:>8.2f} {t['p95']:>8.2f} {t['max']:>8.2f}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
