"""Celery with Redis as broker and result backend.

The app is configured at import from ``BENCH_REDIS_URL`` / ``BENCH_VARIANT`` so that the
worker processes (forked children, prefork pool children) build the same app.
"""

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
from celery import Celery, group

URL = env_url()
TUNED = os.environ.get("BENCH_VARIANT", "tuned") == "tuned"

app = Celery("bench", broker=URL, backend=URL)
app.conf.update(
    broker_connection_retry_on_startup=True,
    task_acks_late=False,  # the default: ack on receipt, the faster of the two choices
    # The optimizing guide: with many short tasks, a high prefetch multiplier lets a
    # worker process far more tasks per second. Out of the box it is 4.
    worker_prefetch_multiplier=64 if TUNED else 4,
)


@app.task(name="bench.noop")
def noop() -> int:
    tick()
    return RESULT


def _bulk(count: int) -> None:
    group(noop.s() for _ in range(count)).apply_async()


class CeleryAdapter:
    def enqueue(self, spec: Spec) -> dict[str, float]:
        noop.delay().forget()  # open the broker and backend connections before timing
        return enqueue_sync(spec, noop.delay, _bulk)

    def fill(self, spec: Spec) -> None:
        fill_sync(spec, noop.delay, _bulk)

    def worker(self, spec: Spec) -> None:
        def one() -> None:
            argv = ["worker", f"--concurrency={spec.threads}", "--loglevel=WARNING",
                    f"--hostname=bench{os.getpid()}@%h"]
            if TUNED:
                argv += ["--pool=threads", "--without-gossip", "--without-mingle",
                         "--without-heartbeat"]
            else:
                argv += ["--pool=prefork"]
            app.worker_main(argv=argv)

        run_in_processes(one, spec.procs)

    def roundtrip(self, spec: Spec) -> list[float]:
        def one() -> None:
            if noop.delay().get(timeout=30) != RESULT:
                raise RuntimeError("wrong result")

        return roundtrips_sync(one, spec)


ADAPTER = CeleryAdapter()
