"""taskkit (this repository) with its defaults, nothing tuned: on its Redis backend, or (workload
E) on taskkit-django with a PostgreSQL or SQLite URL (the embedded mode: taskkit configures
Django and applies its migrations itself, exactly as the README shows).

Runs in the project's own environment (the nox ``bench`` session installs every taskkit
distribution editable). Every outcome is stored, as taskkit always does.
"""

from __future__ import annotations

import os
from typing import Any

import taskkit
from _common import (
    RESULT,
    Spec,
    enqueue_sync,
    env_db_url,
    env_url,
    fill_sync,
    roundtrips_sync,
    tick,
)
from taskkit import Task, TaskHandler

URL = env_db_url() if os.environ.get("BENCH_DB_URL") else env_url()
GROUP = "bench"


class Handler(TaskHandler):
    def handle(self, task: Task) -> Any:
        tick()
        return RESULT


kit = taskkit.make_kit(URL, Handler())


def _one() -> None:
    kit.initiate_task(GROUP, "noop", None)


def _bulk(count: int) -> None:
    kit.initiate_tasks(*({"group": GROUP, "name": "noop", "data": None} for _ in range(count)))


class TaskkitAdapter:
    def setup(self, spec: Spec) -> None:
        kit.backend.stats(GROUP)  # E: make_kit has migrated; prove the tables answer

    def enqueue(self, spec: Spec) -> dict[str, float]:
        kit.backend_now()  # connect (and sync the clock) before timing
        return enqueue_sync(spec, _one, _bulk)

    def fill(self, spec: Spec) -> None:
        fill_sync(spec, _one, _bulk)

    def worker(self, spec: Spec) -> None:
        # The supervisor: the documented way to run workers (SIGTERM shuts it down).
        kit.start(num_processes=spec.procs, num_worker_threads_per_group={GROUP: spec.threads})

    def roundtrip(self, spec: Spec) -> list[float]:
        def one() -> None:
            if kit.initiate_task(GROUP, "noop", None).get(timeout=30) != RESULT:
                raise RuntimeError("wrong result")

        return roundtrips_sync(one, spec)


ADAPTER = TaskkitAdapter()
