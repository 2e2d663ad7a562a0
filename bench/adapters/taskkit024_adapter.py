"""taskkit 0.2.4 from PyPI, the version users run today, on its Redis backend.

Its worker threads poll the group queue; ``polling_interval`` (seconds) is its only latency
knob, and ``Result.get`` polls with its own back-off (0.1 s steps up to 1 s).
"""

from __future__ import annotations

import json
import os
from typing import Any

from _common import RESULT, Spec, enqueue_sync, env_url, fill_sync, roundtrips_sync, tick
from redis import Redis
from taskkit import Task, TaskHandler
from taskkit.impl.redis import make_kit

URL = env_url()
TUNED = os.environ.get("BENCH_VARIANT", "tuned") == "tuned"
GROUP = "bench"


class Handler(TaskHandler):
    def handle(self, task: Task) -> Any:
        tick()
        return RESULT

    def get_retry_interval(self, task: Task, exception: Exception) -> float | None:
        return None

    def encode_data(self, group: str, task_name: str, data: Any) -> bytes:
        return json.dumps(data).encode()

    def encode_result(self, task: Task, result: Any) -> bytes:
        return json.dumps(result).encode()

    def decode_result(self, task: Task, encoded: bytes) -> Any:
        return json.loads(encoded)


kit = make_kit(Redis.from_url(URL), Handler())


def _one() -> None:
    kit.initiate_task(GROUP, "noop", None)


def _bulk(count: int) -> None:
    kit.initiate_tasks(*({"group": GROUP, "name": "noop", "data": None} for _ in range(count)))


class Taskkit024Adapter:
    def enqueue(self, spec: Spec) -> dict[str, float]:
        kit.backend.redis.ping()  # type: ignore[attr-defined]
        return enqueue_sync(spec, _one, _bulk)

    def fill(self, spec: Spec) -> None:
        fill_sync(spec, _one, _bulk)

    def worker(self, spec: Spec) -> None:
        # kit.start is the documented blocking runner (a supervisor; SIGTERM ends it).
        kit.start(
            num_processes=spec.procs,
            num_worker_threads_per_group={GROUP: spec.threads},
            polling_interval=0.005 if TUNED else None,
        )

    def roundtrip(self, spec: Spec) -> list[float]:
        def one() -> None:
            if kit.initiate_task(GROUP, "noop", None).get(timeout=30) != RESULT:
                raise RuntimeError("wrong result")

        return roundtrips_sync(one, spec)


ADAPTER = Taskkit024Adapter()
