"""RQ: one job at a time per worker process (no threads), so P processes stand for P x N.

Tuned: ``SimpleWorker`` (runs the job in the worker process; the default ``Worker`` forks a
work horse for every job) and WARNING logging (RQ logs two INFO lines per job).
"""

from __future__ import annotations

from collections.abc import Callable

import redis
from _common import (
    RESULT,
    NotSupported,
    Spec,
    enqueue_sync,
    fill_sync,
    roundtrips_sync,
    run_in_processes,
    tick,
)
from rq import Queue, SimpleWorker, Worker
from rq.results import Result

QUEUE = "bench"


def noop() -> int:
    tick()
    return RESULT


class RQAdapter:
    def _queue(self, spec: Spec) -> Queue:
        return Queue(QUEUE, connection=redis.Redis.from_url(spec.redis_url))

    def _producers(self, spec: Spec) -> tuple[Callable[[], object], Callable[[int], object]]:
        queue = self._queue(spec)
        queue.connection.ping()

        def one() -> None:
            queue.enqueue(noop)

        def bulk(count: int) -> None:
            queue.enqueue_many([Queue.prepare_data(noop) for _ in range(count)])

        return one, bulk

    def enqueue(self, spec: Spec) -> dict[str, float]:
        return enqueue_sync(spec, *self._producers(spec))

    def fill(self, spec: Spec) -> None:
        fill_sync(spec, *self._producers(spec))

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
