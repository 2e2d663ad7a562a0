"""A smoke run of bench/stats_bench.py: a small load on a private redis-server and a private
PostgreSQL database, every primitive timed, the JSON written. Asserts nothing about speed."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import stats_bench
from databases import postgres_available


@pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs a redis-server executable")
def test_a_small_run_times_every_primitive(tmp_path: Path) -> None:
    backends = "redis" if postgres_available() else "redis,postgresql"
    out = tmp_path / "stats.json"
    argv = ["--backends", backends, "--tasks", "400", "--groups", "4", "--workers", "3"]
    assert stats_bench.main([*argv, "--calls", "3", "--json", str(out)]) == 0
    results = json.loads(out.read_text())
    assert [r["backend"] for r in results] == backends.split(",")
    for result in results:
        assert set(result["timings_ms"]) == {
            "group_stats",
            "finished_counts(300)",
            "finished_counts(3600), a full hour",
            "list_groups",
            "list_workers",
            "stats (the old figure)",
        }
