"""Smoke runs of the benchmark harness: tiny sizes, the raw redis-py floor, taskkit's function
and async rows (issue 13's workloads), and workload E on taskkit-django with SQLite (none needs
a peer's virtualenv).

They prove the harness works end to end (private redis-server or private database, adapter
subprocesses, the counter, every workload, tables, JSON, chart). They assert nothing about
speed: benchmarks are not tests.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent

needs_redis = pytest.mark.skipif(
    shutil.which("redis-server") is None, reason="needs a redis-server executable"
)


@needs_redis
def test_quick_run_of_the_raw_floor(tmp_path: Path) -> None:
    out_json = tmp_path / "quick.json"
    out_svg = tmp_path / "quick.svg"
    done = subprocess.run(
        [sys.executable, str(BENCH / "run.py"), "--quick", "--only", "raw",
         "--n", "300", "--rt-n", "20", "--idle-seconds", "1",
         "--json", str(out_json), "--chart", str(out_svg)],
        capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "| raw redis-py (floor) |" in done.stdout

    payload = json.loads(out_json.read_text())
    runs = payload["results"]["raw"]
    for workload in ("A-one", "A-bulk", "B1", "B2", "C", "D"):
        assert len(runs[workload]) == 1, workload
        assert "error" not in runs[workload][0], runs[workload][0]
    # Every drain ran to the end (300 tasks counted), and the round trips all came back.
    assert runs["B2"][0]["done"] >= 300
    assert runs["C"][0]["count"] == 20
    summary = payload["summary"]["raw"]
    assert summary["C.p50"]["median"] <= summary["C.p99"]["median"]

    svg = ET.parse(out_svg).getroot()
    assert svg.tag.endswith("svg")
    texts = [t.text for t in svg.iter() if t.tag.endswith("text")]
    assert "raw redis-py (floor)" in texts


def test_workload_e_on_taskkit_django_with_sqlite(tmp_path: Path) -> None:
    pytest.importorskip("taskkit_django")
    out_json = tmp_path / "e.json"
    done = subprocess.run(
        [sys.executable, str(BENCH / "run.py"), "--only", "taskkit-django-sqlite",
         "--workloads", "E", "--runs", "1", "--n", "100", "--rt-n", "10",
         "--json", str(out_json), "--chart", str(tmp_path / "e.svg")],
        capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "| taskkit-django on SQLite |" in done.stdout

    payload = json.loads(out_json.read_text())
    runs = payload["results"]["taskkit-django-sqlite"]
    for workload in ("A-one", "A-bulk", "B1", "B2", "C"):
        assert len(runs[workload]) == 1, workload
        assert "error" not in runs[workload][0], runs[workload][0]
    assert "D" not in runs  # E has no idle workload
    assert runs["B1"][0]["done"] >= 100
    assert runs["C"][0]["count"] == 10
    assert (tmp_path / "e-e.svg").exists()


@needs_redis
def test_function_and_async_taskkit_rows(tmp_path: Path) -> None:
    """The @kit.task and async def adapters, and the asyncio workloads, end to end."""
    pytest.importorskip("taskkit_redis")
    out_json = tmp_path / "issue13.json"
    done = subprocess.run(
        [sys.executable, str(BENCH / "run.py"), "--quick", "--only", "taskkit-fn,taskkit-async",
         "--workloads", "B2,C,B-async,B-async-redis,C-async", "--n", "200", "--rt-n", "10",
         "--json", str(out_json), "--chart", str(tmp_path / "issue13.svg")],
        capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "| taskkit, async def function (this repo, Redis) |" in done.stdout

    runs = json.loads(out_json.read_text())["results"]
    for key, workloads in (("taskkit-fn", ("B2", "C")),
                           ("taskkit-async", ("B-async", "B-async-redis", "C-async"))):
        assert set(runs[key]) == set(workloads), key
        for workload in workloads:
            assert "error" not in runs[key][workload][0], (key, workload, runs[key][workload])
    assert runs["taskkit-fn"]["B2"][0]["done"] >= 200
    assert runs["taskkit-fn"]["B2"][0]["cpu_us"] > 0  # the worker tree's CPU per task
    assert runs["taskkit-async"]["B-async-redis"][0]["done"] >= 200
    assert runs["taskkit-async"]["C-async"][0]["count"] == 10
