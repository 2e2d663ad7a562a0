"""Dramatiq with the Redis broker and the Results middleware (Redis result backend).

Workers run through Dramatiq's own CLI (``dramatiq <module> --processes P --threads N``), its
documented way to run them. The consumer's idle back-off ceiling is the ``worker_timeout``
(milliseconds), read by the CLI from the ``dramatiq_worker_timeout`` environment variable.
"""

from __future__ import annotations

import os

import dramatiq
from _common import (
    RESULT,
    Spec,
    bin_path,
    enqueue_sync,
    env_url,
    exec_cli,
    fill_sync,
    roundtrips_sync,
    tick,
)
from dramatiq.brokers.redis import RedisBroker
from dramatiq.results import Results
from dramatiq.results.backends.redis import RedisBackend

URL = env_url()
TUNED = os.environ.get("BENCH_VARIANT", "tuned") == "tuned"
QUEUE = "bench"

broker = RedisBroker(url=URL)
results_backend = RedisBackend(url=URL)
broker.add_middleware(Results(backend=results_backend))
dramatiq.set_broker(broker)


@dramatiq.actor(queue_name=QUEUE, store_results=True, max_retries=0)
def noop() -> int:
    tick()
    return RESULT


def _bulk(count: int) -> None:
    dramatiq.group(noop.message() for _ in range(count)).run()


class DramatiqAdapter:
    def enqueue(self, spec: Spec) -> dict[str, float]:
        broker.client.ping()
        return enqueue_sync(spec, noop.send, _bulk)

    def fill(self, spec: Spec) -> None:
        fill_sync(spec, noop.send, _bulk)

    def worker(self, spec: Spec) -> None:
        # 5 ms tuned, else the default (1000 ms): the ceiling of the idle polling back-off.
        os.environ["dramatiq_worker_timeout"] = "5" if TUNED else "1000"
        exec_cli([bin_path("dramatiq"), "dramatiq_adapter", "--processes", str(spec.procs),
                  "--threads", str(spec.threads), "--queues", QUEUE])

    def roundtrip(self, spec: Spec) -> list[float]:
        def one() -> None:
            message = noop.send()
            if message.get_result(block=True, timeout=30_000) != RESULT:
                raise RuntimeError("wrong result")

        return roundtrips_sync(one, spec)


ADAPTER = DramatiqAdapter()
