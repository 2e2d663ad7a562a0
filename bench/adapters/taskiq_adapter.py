"""taskiq with taskiq-redis: the Redis stream broker (acknowledged delivery, the README's
choice) and the Redis result backend. Workers run through ``taskiq worker``.

The stream consumer group starts at ``$`` (new messages only), so every producer here runs
the broker's start-up first, which creates the group before any message is added.

The asyncio workloads run the same worker with ``--max-async-tasks 100``; B-async-redis's task
awaits one round trip through ``_aredis``.
"""

from __future__ import annotations

import asyncio
import os
import time

from _aredis import redis_roundtrip
from _common import (
    RESULT,
    NotSupported,
    Spec,
    bin_path,
    count_fill,
    enqueue_async,
    env_url,
    exec_cli,
    roundtrips_async,
    run_async,
    tick,
)
from taskiq_redis import RedisAsyncResultBackend, RedisStreamBroker

URL = env_url()
TUNED = os.environ.get("BENCH_VARIANT", "tuned") == "tuned"
CHECK_INTERVAL = 0.001 if TUNED else 0.2

broker = RedisStreamBroker(url=URL, queue_name="bench").with_result_backend(
    RedisAsyncResultBackend(redis_url=URL)
)


@broker.task(task_name="bench.noop")
async def noop() -> int:
    tick()
    return RESULT


@broker.task(task_name="bench.noop_redis")
async def noop_redis() -> int:
    await redis_roundtrip()
    tick()
    return RESULT


#: The task each asyncio workload enqueues (``Spec.task``).
TASKS = {"noop": noop, "redis": noop_redis}


class TaskiqAdapter:
    def enqueue(self, spec: Spec) -> dict[str, float]:
        if spec.bulk:
            raise NotSupported("taskiq has no bulk enqueue API")

        async def go() -> dict[str, float]:
            await broker.startup()

            async def one() -> None:
                await noop.kiq()

            answer = await enqueue_async(spec, one, None)
            await broker.shutdown()
            return answer

        result: dict[str, float] = run_async(go())
        return result

    def fill(self, spec: Spec) -> None:
        task = TASKS[spec.task]

        async def go() -> None:
            await broker.startup()
            deadline = time.monotonic() + spec.fill_budget
            for start in range(0, spec.n, 200):
                if time.monotonic() > deadline:
                    break
                count = min(200, spec.n - start)
                await asyncio.gather(*(task.kiq() for _ in range(count)))
                count_fill(count)
            await broker.shutdown()

        run_async(go())

    def worker(self, spec: Spec) -> None:
        exec_cli([bin_path("taskiq"), "worker", "taskiq_adapter:broker",
                  "--workers", str(spec.procs), "--max-async-tasks", str(spec.threads),
                  "--log-level", "WARNING" if TUNED else "INFO"])

    def roundtrip(self, spec: Spec) -> list[float]:
        async def go() -> list[float]:
            await broker.startup()

            async def one() -> None:
                task = await noop.kiq()
                result = await task.wait_result(check_interval=CHECK_INTERVAL, timeout=30)
                if result.is_err or result.return_value != RESULT:
                    raise RuntimeError(f"task failed: {result.error}")

            latencies = await roundtrips_async(one, spec)
            await broker.shutdown()
            return latencies

        result: list[float] = run_async(go())
        return result


ADAPTER = TaskiqAdapter()
__all__ = ["ADAPTER", "NotSupported"]
