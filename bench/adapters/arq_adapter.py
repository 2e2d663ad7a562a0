"""arq (asyncio): ``Worker(max_jobs=N)`` per process, P processes; no bulk enqueue API.

arq polls: the worker looks at its queue every ``poll_delay`` seconds and ``job.result``
polls for the result every ``poll_delay`` seconds (0.5 s both, out of the box).

The asyncio workloads run the same worker with ``max_jobs=100``; B-async-redis's task awaits
one round trip through ``_aredis``.
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

from _aredis import redis_roundtrip
from _common import (
    RESULT,
    NotSupported,
    Spec,
    count_fill,
    enqueue_async,
    env_url,
    roundtrips_async,
    run_async,
    run_in_processes,
    tick,
)
from arq import create_pool
from arq.connections import RedisSettings
from arq.worker import Worker

URL = env_url()
TUNED = os.environ.get("BENCH_VARIANT", "tuned") == "tuned"
WORKER_POLL = 0.005 if TUNED else 0.5
RESULT_POLL = 0.001 if TUNED else 0.5


async def noop(ctx: dict[str, Any]) -> int:
    tick()
    return RESULT


async def noop_redis(ctx: dict[str, Any]) -> int:
    await redis_roundtrip()
    tick()
    return RESULT


#: The function each asyncio workload's task names (``Spec.task``).
FUNCTIONS = {"noop": "noop", "redis": "noop_redis"}


class ArqAdapter:
    def enqueue(self, spec: Spec) -> dict[str, float]:
        if spec.bulk:
            raise NotSupported("arq has no bulk enqueue API")

        async def go() -> dict[str, float]:
            pool = await create_pool(RedisSettings.from_dsn(URL))
            await pool.ping()

            async def one() -> None:
                await pool.enqueue_job("noop")

            answer = await enqueue_async(spec, one, None)
            await pool.aclose()
            return answer

        result: dict[str, float] = run_async(go())
        return result

    def fill(self, spec: Spec) -> None:
        function = FUNCTIONS[spec.task]

        async def go() -> None:
            pool = await create_pool(RedisSettings.from_dsn(URL))
            deadline = time.monotonic() + spec.fill_budget
            for start in range(0, spec.n, 200):
                if time.monotonic() > deadline:
                    break
                count = min(200, spec.n - start)
                await asyncio.gather(*(pool.enqueue_job(function) for _ in range(count)))
                count_fill(count)
            await pool.aclose()

        run_async(go())

    def worker(self, spec: Spec) -> None:
        def one() -> None:
            Worker(
                functions=[noop, noop_redis],
                redis_settings=RedisSettings.from_dsn(URL),
                max_jobs=spec.threads,
                poll_delay=WORKER_POLL,
            ).run()

        run_in_processes(one, spec.procs)

    def roundtrip(self, spec: Spec) -> list[float]:
        async def go() -> list[float]:
            pool = await create_pool(RedisSettings.from_dsn(URL))

            async def one() -> None:
                job = await pool.enqueue_job("noop")
                assert job is not None
                if await job.result(timeout=30, poll_delay=RESULT_POLL) != RESULT:
                    raise RuntimeError("wrong result")

            latencies = await roundtrips_async(one, spec)
            await pool.aclose()
            return latencies

        result: list[float] = run_async(go())
        return result


ADAPTER = ArqAdapter()
