"""The bench issue's workloads on the Django backend, as a quick standalone measurement.

    python taskkit-django/tests/bench_workloads.py sqlite:///tmp/bench.sqlite3
    python taskkit-django/tests/bench_workloads.py postgresql://postgres@127.0.0.1:5432/bench

A-one: one-by-one enqueue rate; A-bulk: ``initiate_tasks`` in batches of 1,000; B: drain
rate of no-op tasks with 2 processes x 4 threads; C: round trip (initiate + ``result.get``)
latency with workers idle-waiting; D: workers' CPU while idle. Not a test: numbers depend on
the machine. The database's taskkit tables are emptied first.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from typing import Any

import taskkit
from taskkit import Task, TaskHandler

GROUP = "bench"


class Noop(TaskHandler):
    def handle(self, task: Task) -> Any:
        return 1


def _cpu_seconds(pids: list[int]) -> float:
    total = 0.0
    tick = os.sysconf("SC_CLK_TCK")
    for pid in pids:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / tick
    return total


def main(url: str, n: int = 2000) -> None:
    kit = taskkit.make_kit(url, Noop())
    from taskkit_django.models import TaskRecord

    TaskRecord.objects.using(kit.backend.using).all().delete()  # type: ignore[attr-defined]
    started = time.perf_counter()
    for _ in range(n // 4):
        kit.initiate_task(GROUP, "noop", None)
    print(f"A-one   {n // 4 / (time.perf_counter() - started):8.0f} tasks/s")
    started = time.perf_counter()
    for _ in range(n // 1000 or 1):
        kit.initiate_tasks(*({"group": GROUP, "name": "noop", "data": None} for _ in range(1000)))
    bulk = 1000 * (n // 1000 or 1)
    print(f"A-bulk  {bulk / (time.perf_counter() - started):8.0f} tasks/s")
    total = n // 4 + bulk
    started = time.perf_counter()
    procs = kit.start_processes(2, {GROUP: 4})
    try:
        while kit.backend.stats(GROUP).queued or kit.backend.stats(GROUP).running:
            time.sleep(0.05)
        rate = total / (time.perf_counter() - started)
        print(f"B       {rate:8.0f} tasks/s (2 x 4, incl. start)")
        latencies = []
        for _ in range(100):
            t0 = time.perf_counter()
            kit.initiate_task(GROUP, "noop", None).get(timeout=30)
            latencies.append((time.perf_counter() - t0) * 1000)
            time.sleep(0.01)
        latencies.sort()
        print(
            f"C       p50 {statistics.median(latencies):6.1f} ms  "
            f"p95 {latencies[94]:6.1f} ms  max {latencies[-1]:6.1f} ms"
        )
        pids = [p.pid for p in procs]
        before = _cpu_seconds(pids)
        time.sleep(5)
        idle = 100 * (_cpu_seconds(pids) - before) / 5 / len(pids)
        print(f"D       idle CPU {idle:5.1f} % per process")
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.join(30)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 2000)
