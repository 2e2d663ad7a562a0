"""Huey with RedisHuey: a consumer of N worker threads per process, P consumer processes."""

from __future__ import annotations

import os

from _common import (
    RESULT,
    Spec,
    enqueue_sync,
    env_url,
    fill_sync,
    roundtrips_sync,
    run_in_processes,
    tick,
)
from huey import RedisHuey

URL = env_url()
TUNED = os.environ.get("BENCH_VARIANT", "tuned") == "tuned"

# blocking=True (the default) dequeues with BRPOP; notify_result=True makes result waits
# block on BLPOP instead of polling with back-off.
huey = RedisHuey("bench", url=URL, blocking=True, notify_result=TUNED)


@huey.task()
def noop() -> int:
    tick()
    return RESULT


def _bulk(count: int) -> None:
    noop.map([()] * count)


class HueyAdapter:
    def enqueue(self, spec: Spec) -> dict[str, float]:
        huey.storage.conn.ping()
        return enqueue_sync(spec, noop, _bulk)

    def fill(self, spec: Spec) -> None:
        fill_sync(spec, noop, _bulk)

    def worker(self, spec: Spec) -> None:
        def one() -> None:
            consumer = huey.create_consumer(
                workers=spec.threads, worker_type="thread", periodic=not TUNED
            )
            consumer.run()

        run_in_processes(one, spec.procs)

    def roundtrip(self, spec: Spec) -> list[float]:
        def one() -> None:
            if noop().get(blocking=True, timeout=30) != RESULT:
                raise RuntimeError("wrong result")

        return roundtrips_sync(one, spec)


ADAPTER = HueyAdapter()
