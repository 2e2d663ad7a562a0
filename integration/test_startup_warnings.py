"""Start-up warnings print once per supervisor (issue 11, defect 2).

Before: a start-up warning of ``backend.check()`` (SQLite's "delete journal mode", Redis'
"no persistence") printed once by the supervisor, again by every worker process, and again
by every restarted worker. Here: a private redis-server without persistence.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from .conftest import PROFILE, ROOT, _load_redis_servers, children_of, wait_until


def test_a_startup_warning_prints_once_per_supervisor(tmp_path: Path) -> None:
    server = _load_redis_servers().RedisServer(tmp_path / "redis")  # --save "", no AOF
    server.start()
    ledger = tmp_path / "ledger"
    ledger.mkdir()
    log_path = tmp_path / "fleet.log"
    cmd = [
        sys.executable,
        "-m",
        "integration.run_workers",
        "--url",
        server.url,
        "--options",
        json.dumps({"prefix": "startup-warnings", **PROFILE}),
        "--ledger",
        str(ledger),
        "--processes",
        "2",
        "--threads",
        "1",
    ]
    with log_path.open("wb") as log:
        fleet = subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_until(lambda: log_path.read_text().count(" started: groups ") >= 2, 30)
        # A worker that dies is replaced: the replacement does not warn again.
        workers = [
            p
            for p in children_of(fleet.pid)
            if b"resource_tracker" not in Path(f"/proc/{p}/cmdline").read_bytes()
        ]
        os.kill(workers[0], signal.SIGKILL)
        wait_until(lambda: log_path.read_text().count(" started: groups ") >= 3, 30)
    finally:
        fleet.send_signal(signal.SIGTERM)
        try:
            fleet.wait(30)
        except subprocess.TimeoutExpired:
            fleet.kill()
            fleet.wait(10)
        server.stop()
    text = log_path.read_text()
    assert text.count("has no persistence") == 1, text
