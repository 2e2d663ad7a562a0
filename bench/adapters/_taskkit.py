"""What the taskkit adapters share: the store's URL and the adapter around one kit.

The handler-based adapter and the ``@kit.task`` one differ only in how a task is enqueued and
awaited, so a fair comparison of the two needs the rest to be the same code.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from _common import RESULT, Spec, enqueue_sync, env_db_url, env_url, fill_sync, roundtrips_sync
from taskkit import Kit

#: The private Redis (workloads A-D) or, for workload E, the private database.
URL = env_db_url() if os.environ.get("BENCH_DB_URL") else env_url()
GROUP = "bench"


class KitAdapter:
    """The adapter protocol over ``kit``: ``one()`` enqueues a no-op task, ``bulk(k)`` enqueues
    k in one call, ``roundtrip_one()`` enqueues one and returns its awaited result."""

    def __init__(
        self,
        kit: Kit,
        one: Callable[[], object],
        bulk: Callable[[int], object],
        roundtrip_one: Callable[[], object],
    ) -> None:
        self.kit = kit
        self._one = one
        self._bulk = bulk
        self._roundtrip_one = roundtrip_one

    def setup(self, spec: Spec) -> None:
        self.kit.backend.stats(GROUP)  # E: make_kit has migrated; prove the tables answer

    def enqueue(self, spec: Spec) -> dict[str, float]:
        self.kit.backend_now()  # connect (and sync the clock) before timing
        return enqueue_sync(spec, self._one, self._bulk)

    def fill(self, spec: Spec) -> None:
        fill_sync(spec, self._one, self._bulk)

    def worker(self, spec: Spec) -> None:
        # The supervisor: the documented way to run workers (SIGTERM shuts it down).
        self.kit.start(num_processes=spec.procs, num_worker_threads_per_group={GROUP: spec.threads})

    def roundtrip(self, spec: Spec) -> list[float]:
        def one() -> None:
            if self._roundtrip_one() != RESULT:
                raise RuntimeError("wrong result")

        return roundtrips_sync(one, spec)
