"""taskkit (this repository) running ``async def`` function tasks on its worker's event loop:
one worker process, a group of async tasks whose count (100) is the number of concurrent
coroutines, nothing else tuned (issue 13's B-async and async C).

C-async's producer is async too: ``await noop.adelay()`` then ``await result.aget(timeout)``.
"""

from __future__ import annotations

import taskkit
from _aredis import redis_roundtrip
from _common import RESULT, NotSupported, Spec, fill_sync, roundtrips_async, run_async, tick
from _taskkit import URL

GROUP = "bench-async"

kit = taskkit.make_kit(URL)  # no handler: every task of this kit is a function


@kit.task(group=GROUP, name="noop")
async def noop() -> int:
    tick()
    return RESULT


@kit.task(group=GROUP, name="redis")
async def one_redis_roundtrip() -> int:
    await redis_roundtrip()
    tick()
    return RESULT


TASKS = {"noop": noop, "redis": one_redis_roundtrip}


class TaskkitAsyncAdapter:
    def enqueue(self, spec: Spec) -> dict[str, float]:
        raise NotSupported("enqueue (A) is measured by the taskkit rows")

    def fill(self, spec: Spec) -> None:
        task = TASKS[spec.task]
        fill_sync(
            spec,
            task.delay,
            lambda count: kit.initiate_tasks(*(task.make_task() for _ in range(count))),
        )

    def worker(self, spec: Spec) -> None:
        # An async group: spec.threads is its number of concurrent coroutines.
        kit.start(num_processes=spec.procs, num_worker_threads_per_group={GROUP: spec.threads})

    def roundtrip(self, spec: Spec) -> list[float]:
        async def one() -> None:
            result = await noop.adelay()
            if await result.aget(timeout=30) != RESULT:
                raise RuntimeError("wrong result")

        latencies: list[float] = run_async(roundtrips_async(one, spec))
        return latencies


ADAPTER = TaskkitAsyncAdapter()
