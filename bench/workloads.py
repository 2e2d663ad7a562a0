"""The workloads: each function runs one measurement of one system and returns raw numbers.

A  enqueue: time n enqueues from one producer, one by one or through the bulk API.
B  drain: pre-fill n tasks (untimed), start the workers, and time from the first finished task
   to the last one, read from the shared completion counter (so interpreter start-up and
   imports are not counted). Bounded: a run that has not finished within its budget reports
   the throughput of what it finished, and is flagged.
C  round trip: an idle worker (1 process x 4 threads); n sequential enqueue-and-await.
D  idle: workers with 8 threads and nothing to do; CPU seconds of their process trees over a
   window, measured for all systems side by side.
B-async, B-async-redis, C-async (issue 13): B and C for asyncio workers, 1 process x 100
   coroutines; B-async-redis's tasks each await one Redis round trip.
"""

from __future__ import annotations

import json
import logging
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from databases import BenchDatabases
from peers import System
from procs import AdapterError, run_adapter, start_adapter, stop_tree, tree_cpu_seconds
from redis_server import PrivateRedis

log = logging.getLogger("bench.workloads")


@dataclass
class Context:
    """What every run needs: the servers, where each system's Python is, where logs go."""

    #: the private Redis (None when no Redis system runs).
    redis: PrivateRedis | None
    pythons: dict[str, str]
    log_dir: Path
    #: seconds an enqueue run or a drain may take before it is cut short (the rate of what
    #: it finished is reported, flagged).
    budget: float = 30.0
    #: seconds the 500 round trips may take.
    roundtrip_budget: float = 45.0
    #: workload E's private databases (None when no E system runs).
    databases: BenchDatabases | None = None

    def python(self, system: System) -> str:
        return self.pythons.get(system.peer.name, sys.executable)

    def _url(self, system: System) -> tuple[str, str]:
        """(the spec field, the URL) of the system's store."""
        if system.peer.suite == "E":
            assert self.databases is not None
            return "db_url", self.databases.url(system.peer.database, system.db)
        assert self.redis is not None
        return "redis_url", self.redis.url(system.db)

    def env(self, system: System, counter: Path | None = None) -> dict[str, str]:
        field, url = self._url(system)
        env = {
            "BENCH_DB_URL" if field == "db_url" else "BENCH_REDIS_URL": url,
            "BENCH_VARIANT": system.variant,
        }
        if counter is not None:
            env["BENCH_COUNTER"] = str(counter)
        return env

    def spec(self, system: System, cmd: str, **fields: Any) -> dict[str, Any]:
        field, url = self._url(system)
        return {"cmd": cmd, field: url, "variant": system.variant, **fields}

    def log_file(self, system: System) -> Path:
        return self.log_dir / f"{system.key.replace('/', '-')}.log"

    def flush(self, system: System) -> None:
        """Start the system from an empty store: a flushed Redis database, or (E) a fresh
        copy of its migrated template database."""
        if system.peer.suite == "E":
            assert self.databases is not None
            self.databases.fresh(system.peer.database, system.db)
        else:
            assert self.redis is not None
            self.redis.client(system.db).flushdb()

    def setup(self, system: System, timeout: float = 300.0) -> None:
        """E: create the system's template database and migrate it (untimed, once)."""
        assert self.databases is not None

        def migrate(url: str) -> None:
            run_adapter(
                self.python(system), system.peer.adapter,
                {"cmd": "setup", "db_url": url, "variant": system.variant},
                {"BENCH_DB_URL": url, "BENCH_VARIANT": system.variant}, timeout,
                self.log_file(system),
            )

        self.databases.prepare(system.peer.database, system.db, migrate)


def _counter_path() -> Path:
    base = "/dev/shm" if os.path.isdir("/dev/shm") else tempfile.gettempdir()
    fd, name = tempfile.mkstemp(prefix="bench-counter-", dir=base)
    os.close(fd)
    return Path(name)


def enqueue(ctx: Context, system: System, n: int, bulk: bool, timeout: float) -> dict[str, Any]:
    """Workload A: tasks per second for n enqueues."""
    ctx.flush(system)
    answer = run_adapter(
        ctx.python(system), system.peer.adapter,
        ctx.spec(system, "enqueue", n=n, bulk=bulk, budget=ctx.budget),
        ctx.env(system), timeout, ctx.log_file(system),
    )
    if "unsupported" in answer:
        return {"unsupported": answer["unsupported"]}
    seconds, done = float(answer["seconds"]), int(answer["done"])
    result: dict[str, Any] = {"value": done / seconds, "seconds": seconds, "done": done}
    if done < n:
        result["partial"] = f"{done} of {n} in {seconds:.0f} s"
    return result


def drain(
    ctx: Context, system: System, n: int, procs: int, threads: int, timeout: float,
    expected_rate: float | None = None, task: str = "noop",
) -> dict[str, Any]:
    """Workload B: tasks per second while P x T workers empty a queue of n tasks.

    ``expected_rate`` (from an earlier run) shrinks the fill of a system too slow to drain n
    tasks within the budget: filling tasks that will never run only costs time. ``task``
    names the asyncio workloads' task (``noop`` or ``redis``); T is then the number of
    concurrent coroutines.
    """
    ctx.flush(system)
    if expected_rate is not None:
        n = max(1000, min(n, int(expected_rate * ctx.budget * 1.5)))
    counter = _counter_path()
    report = counter.with_name(counter.name + ".fill.json")
    try:
        # The worker command fills the queue itself (bounded in time), reports how many tasks
        # went in, then starts the workers: one interpreter start instead of two.
        worker = start_adapter(
            ctx.python(system), system.peer.adapter,
            ctx.spec(system, "worker", procs=procs, threads=threads, fill=n,
                     fill_budget=2 * ctx.budget, report=str(report), task=task),
            ctx.env(system, counter), ctx.log_file(system),
        )
        try:
            filled = _wait_for_report(report, worker.pid, timeout)
            result = _watch_counter(counter, filled, worker.pid, ctx.budget, 60.0)
            result["filled"] = filled
            return result
        finally:
            stop_tree(worker, grace=0.0)
    finally:
        counter.unlink(missing_ok=True)
        report.unlink(missing_ok=True)


def _wait_for_report(report: Path, worker_pid: int, timeout: float) -> int:
    deadline = time.monotonic() + timeout
    while True:
        try:
            text = report.read_text()
            if text.strip():
                return int(json.loads(text)["filled"])
        except (OSError, ValueError):
            pass
        if time.monotonic() > deadline:
            raise AdapterError(f"the queue was not filled within {timeout:.0f} s")
        if not os.path.exists(f"/proc/{worker_pid}"):
            raise AdapterError("the worker exited while filling its queue")
        time.sleep(0.02)


def _watch_counter(
    counter: Path, n: int, worker_pid: int, budget: float, startup_timeout: float
) -> dict[str, Any]:
    """Poll the counter file until n tasks finished or the budget ran out.

    The clock starts at the first finished task, so start-up is not counted; the tasks that
    finished before the first look are subtracted. Over the same span, the CPU time of the
    worker's process tree gives its CPU cost per task (``cpu_us``), which other load on the
    machine moves far less than it moves the rate.
    """
    started = time.monotonic()
    first_at: float | None = None
    first_count = 0
    first_cpu = 0.0
    count = 0
    while True:
        now = time.monotonic()
        count = counter.stat().st_size
        if first_at is None:
            if count > 0:
                first_at, first_count = now, count
                first_cpu = tree_cpu_seconds(worker_pid)
            elif now - started > startup_timeout:
                raise AdapterError(f"no task finished within {startup_timeout:.0f} s of start")
            elif not os.path.exists(f"/proc/{worker_pid}"):
                raise AdapterError("the worker exited before finishing a task")
        elif count >= n or now - first_at > budget:
            break
        # 5 ms between looks: fine enough for runs of seconds, cheap on a shared machine.
        time.sleep(0.005)
    cpu = tree_cpu_seconds(worker_pid) - first_cpu
    elapsed = max(now - first_at, 1e-6)
    done = count - first_count
    result: dict[str, Any] = {"value": done / elapsed, "seconds": elapsed, "done": count}
    if done > 0:
        result["cpu_us"] = 1e6 * cpu / done
    if count < n and elapsed >= budget:
        result["partial"] = f"{count} of {n} in {elapsed:.0f} s"
    return result


def roundtrip(
    ctx: Context, system: System, n: int, warmup: int, timeout: float, threads: int = 4
) -> dict[str, Any]:
    """Workload C: latencies (ms) of n sequential enqueue-and-await with an idle worker of
    1 process x ``threads`` (C-async: that many coroutines)."""
    ctx.flush(system)
    counter = _counter_path()
    worker = start_adapter(
        ctx.python(system), system.peer.adapter,
        ctx.spec(system, "worker", procs=1, threads=threads),
        ctx.env(system, counter), ctx.log_file(system),
    )
    try:
        answer = run_adapter(
            ctx.python(system), system.peer.adapter,
            ctx.spec(system, "roundtrip", n=n, warmup=warmup, budget=ctx.roundtrip_budget),
            ctx.env(system), timeout, ctx.log_file(system),
        )
    finally:
        stop_tree(worker, grace=0.0)
        counter.unlink(missing_ok=True)
    latencies = sorted(float(x) for x in answer["latencies_ms"])
    if not latencies:
        raise AdapterError("no round trip finished")
    result: dict[str, Any] = {
        "p50": percentile(latencies, 50),
        "p95": percentile(latencies, 95),
        "p99": percentile(latencies, 99),
        "mean": statistics.fmean(latencies),
        "count": len(latencies),
    }
    if len(latencies) < n:
        result["partial"] = f"{len(latencies)} of {n} within the budget"
    return result


def idle(
    ctx: Context, systems: list[System], seconds: float, threads: int, ready_timeout: float
) -> dict[str, dict[str, Any]]:
    """Workload D: CPU % (of one core) of each system's idle worker tree over ``seconds``.

    All systems' workers run side by side: an idle worker's cost is its own wake-ups, which
    others barely disturb, and this keeps the suite short. Each worker first proves it is up
    by completing a round trip.
    """
    workers = {}
    results: dict[str, dict[str, Any]] = {}
    try:
        for system in systems:
            ctx.flush(system)
            workers[system.key] = start_adapter(
                ctx.python(system), system.peer.adapter,
                ctx.spec(system, "worker", procs=1, threads=threads),
                ctx.env(system), ctx.log_file(system),
            )
        ready = []
        for system in systems:
            try:
                run_adapter(
                    ctx.python(system), system.peer.adapter,
                    ctx.spec(system, "roundtrip", n=0, warmup=1, budget=ready_timeout),
                    ctx.env(system), ready_timeout, ctx.log_file(system),
                )
                ready.append(system)
            except AdapterError as exc:
                results[system.key] = {"error": str(exc)}
        # Let start-up work (connection pools, first heartbeats) settle before measuring.
        time.sleep(1.0)
        before = {s.key: tree_cpu_seconds(workers[s.key].pid) for s in ready}
        t0 = time.monotonic()
        time.sleep(seconds)
        elapsed = time.monotonic() - t0
        for system in ready:
            used = tree_cpu_seconds(workers[system.key].pid) - before[system.key]
            results[system.key] = {"value": 100.0 * used / elapsed, "cpu_seconds": used}
    finally:
        for proc in workers.values():
            stop_tree(proc, grace=0.0)
    return results


def percentile(sorted_values: list[float], pct: float) -> float:
    """The nearest-rank percentile of an ascending list."""
    if not sorted_values:
        raise ValueError("no values")
    rank = max(1, -(-len(sorted_values) * pct // 100))  # ceil without floats drifting
    return sorted_values[int(rank) - 1]
