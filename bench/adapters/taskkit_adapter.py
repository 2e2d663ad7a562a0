"""taskkit (this repository) on its Redis backend, with its defaults: nothing tuned.

Runs in the project's own environment (the nox ``bench`` session installs every taskkit
distribution editable). Every outcome is stored, as taskkit always does.
"""

from __future__ import annotations

import os
import time
from typing import Any

import taskkit
from _common import RESULT, Spec, roundtrips_sync, tick
from taskkit import Task, TaskHandler

URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/15")
GROUP = "bench"


class Handler(TaskHandler):
    def handle(self, task: Task) -> Any:
        tick()
        return RESULT


kit = taskkit.make_kit(URL, Handler())


def _items(n: int) -> list[dict[str, Any]]:
    return [{"group": GROUP, "name": "noop", "data": None} for _ in range(n)]


class TaskkitAdapter:
    def enqueue(self, spec: Spec) -> float:
        kit.backend_now()  # connect and sync the clock before timing
        start = time.perf_counter()
        if spec.bulk:
            kit.initiate_tasks(*_items(spec.n))
        else:
            for _ in range(spec.n):
                kit.initiate_task(GROUP, "noop", None)
        return time.perf_counter() - start

    def fill(self, spec: Spec) -> None:
        for start in range(0, spec.n, 1000):
            kit.initiate_tasks(*_items(min(1000, spec.n - start)))

    def worker(self, spec: Spec) -> None:
        # The supervisor: the documented way to run workers (SIGTERM shuts it down).
        kit.start(num_processes=spec.procs, num_worker_threads_per_group={GROUP: spec.threads})

    def roundtrip(self, spec: Spec) -> list[float]:
        def one() -> None:
            if kit.initiate_task(GROUP, "noop", None).get(timeout=30) != RESULT:
                raise RuntimeError("wrong result")

        return roundtrips_sync(one, spec)


ADAPTER = TaskkitAdapter()
