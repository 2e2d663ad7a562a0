"""The floor: a bare redis-py queue (LPUSH / BRPOP), the least work a Redis queue can do.

No ids, no serialization, no leases, no results in the drain: what any task runner adds on
top of this is its cost. Bulk enqueue is one pipeline of LPUSH commands. The round trip
pushes ``reply:<id>`` and blocks on ``BRPOP`` of a per-task reply list, which the worker
fills.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable

import redis
from _common import Spec, enqueue_sync, fill_sync, roundtrips_sync, run_in_processes, tick

QUEUE = "raw:queue"
REPLY = "raw:reply:"


class RawAdapter:
    def _client(self, spec: Spec) -> redis.Redis:
        return redis.Redis.from_url(spec.redis_url)

    def _producers(self, spec: Spec) -> tuple[Callable[[], object], Callable[[int], object]]:
        client = self._client(spec)
        client.ping()

        def one() -> None:
            client.lpush(QUEUE, b"noop")

        def bulk(count: int) -> None:
            pipe = client.pipeline(transaction=False)
            for _ in range(count):
                pipe.lpush(QUEUE, b"noop")
            pipe.execute()

        return one, bulk

    def enqueue(self, spec: Spec) -> dict[str, float]:
        return enqueue_sync(spec, *self._producers(spec))

    def fill(self, spec: Spec) -> None:
        fill_sync(spec, *self._producers(spec))

    def worker(self, spec: Spec) -> None:
        def one_process() -> None:
            threads = [
                threading.Thread(target=self._loop, args=(spec,), daemon=True)
                for _ in range(spec.threads)
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()

        run_in_processes(one_process, spec.procs)

    def _loop(self, spec: Spec) -> None:
        client = self._client(spec)
        while True:
            item = client.brpop([QUEUE], timeout=1)
            if item is None:
                continue
            tick()
            body = item[1]
            if isinstance(body, str):  # only with decode_responses, which we never set
                body = body.encode()
            if body.startswith(b"reply:"):
                key = REPLY + body[6:].decode()
                client.lpush(key, b"1")
                client.expire(key, 60)

    def roundtrip(self, spec: Spec) -> list[float]:
        client = self._client(spec)

        def one() -> None:
            task_id = uuid.uuid4().hex
            client.lpush(QUEUE, b"reply:" + task_id.encode())
            if client.brpop([REPLY + task_id], timeout=30) is None:
                raise TimeoutError("no reply within 30 s")

        return roundtrips_sync(one, spec)


ADAPTER = RawAdapter()
