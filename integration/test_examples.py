"""The README's demo and import checks run as users run them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_demo_runs_workers_a_schedule_and_results(tmp_path: Path) -> None:
    completed = subprocess.run(
        [
            sys.executable,
            "examples/demo.py",
            "--db",
            str(tmp_path / "demo.sqlite3"),
            "--seconds",
            "4",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert completed.returncode == 0, completed.stderr
    out = completed.stdout
    assert "sha256('alpha')[:16] = 8ed3f6ad685b959e" in out
    assert "flaky task: succeeded on attempt 2" in out
    assert "scheduled tick for" in out
    assert out.rstrip().endswith("workers stopped")


def test_installed_distributions_import_through_old_and_new_paths() -> None:
    completed = subprocess.run(
        [sys.executable, "examples/check_imports.py"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "ok: taskkit_redis" in completed.stdout
