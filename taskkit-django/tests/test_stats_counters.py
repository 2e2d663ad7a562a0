"""The Django backend's finished counters beyond the kit's FleetStatsTests: the sweep folds the
shards of finished buckets into one row without changing a count, and drops what no window
reads; a batch of outcomes is one counter row per (group, state) and shard."""

from __future__ import annotations

import time
from typing import Any

from taskkit import OutcomeWrite, Task
from taskkit.backend import FINISHED_BUCKET, MAX_FINISHED_WINDOW
from taskkit_django._stats import finished_shard


def _counts(alias: str) -> Any:
    from taskkit_django.models import FinishedCount

    return FinishedCount.objects.using(alias)


def test_the_sweep_folds_finished_buckets_and_drops_old_ones(backend: Any, alias: str) -> None:
    now = backend.now()
    current = int(now // FINISHED_BUCKET)
    old, stale = current - 6, int((now - MAX_FINISHED_WINDOW) // FINISHED_BUCKET) - 5
    rows = [(old, shard, 2) for shard in (0, 1, 5)]
    rows += [(current, shard, 3) for shard in (1, 2)]
    rows += [(stale, 3, 9)]
    model = _counts(alias).model
    _counts(alias).bulk_create(
        [model(group="g", bucket=b, outcome="succeeded", shard=s, n=n) for b, s, n in rows]
    )
    before = backend.finished_counts("g", 300).succeeded
    assert before == 2 * 3 + 3 * 2
    backend._sweep_figures(force=True)
    assert backend.finished_counts("g", 300).succeeded == before, "folding keeps every count"
    left = sorted(_counts(alias).values_list("bucket", "shard", "n"))
    assert left == [(old, 0, 6), (current, 1, 3), (current, 2, 3)], (
        "a finished bucket is one row in shard 0, the current one untouched, the stale gone"
    )


def test_a_batch_of_outcomes_is_one_counter_row_per_group_and_state(
    backend: Any, alias: str
) -> None:
    now = time.time()
    tasks = [Task(f"t{i}", "g", "job", b"{}", now - 1, now - 1) for i in range(6)]
    backend.put(tasks)
    claims = backend.claim("g", "w", 6, 30.0, 3).claims
    writes = [OutcomeWrite(c, "complete", b"") for c in claims[:4]]
    writes += [OutcomeWrite(c, "fail", "boom") for c in claims[4:]]
    assert backend.record_outcomes(writes) == [True] * 6
    totals: dict[tuple[str, int], int] = {}
    rows = list(_counts(alias).values_list("outcome", "shard", "n"))
    for outcome, shard, n in rows:
        totals[outcome, shard] = totals.get((outcome, shard), 0) + n
    assert totals == {("succeeded", finished_shard()): 4, ("failed", finished_shard()): 2}
    # One row per state, two at most if the batch's rows straddled a bucket's edge.
    assert len(rows) <= 4
