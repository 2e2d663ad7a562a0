"""RQ: one job at a time per worker process (no threads), so P processes stand for P x N.

Tuned: ``SimpleWorker`` (runs the job in the worker process; the default ``Worker`` forks a
work horse for every job) and WARNING logging (RQ logs two INFO lines per job).
"""

from __future__ import annotations

import time

import redis
from _common import RESULT, NotSupported, Spec, roundtrips_sync, run_in_processes, tick
from rq import Queue, SimpleWorker, Worker
from rq.results import Result

QUEUE = "bench"


def noop() -> int:
    tick()
    return RESULT


class RQAdapter:
    def _queue(self, spec: Spec) -> Queue:
        return Queue(QUEUE, connection=redis.Redis.from_url(spec.redis_url))

    def enqueue(self, spec: Spec) -> float:
        queue = self._queue(spec)
        queue.connection.ping()
        start = time.perf_counter()
        if spec.bulk:
            queue.enqueue_many([Queue.prepare_data(noop) for _ in range(spec.n)])
        else:
            for _ in range(spec.n):
                queue.enqueue(noop)
        return time.perf_counter() - start

    def fill(self, spec: Spec) -> None:
        queue = self._queue(spec)
        for start in range(0, spec.n, 1000):
            count = min(1000, spec.n - start)
            queue.enqueue_many([Queue.prepare_data(noop) for _ in range(count)])

    def worker(self, spec: Spec) -> None:
        def one() -> None:
            queue = self._queue(spec)
            cls = SimpleWorker if spec.tuned else Worker
            worker = cls([queue], connection=queue.connection)
            worker.work(logging_level="WARNING" if spec.tuned else "INFO")

        run_in_processes(one, spec.procs)

    def roundtrip(self, spec: Spec) -> list[float]:
        queue = self._queue(spec)

        def one() -> None:
            job = queue.enqueue(noop)
            result = job.latest_result(timeout=30)
            if result is None or result.type != Result.Type.SUCCESSFUL:
                raise RuntimeError(f"job {job.id} did not succeed: {result}")

        return roundtrips_sync(one, spec)


ADAPTER = RQAdapter()
__all__ = ["ADAPTER", "NotSupported", "noop"]
