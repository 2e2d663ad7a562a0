"""Fixtures of the integration tier: real worker processes against real backends."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import taskkit
from taskkit import Kit

from .ledger import LedgerHandler

ROOT = Path(__file__).resolve().parents[1]

# Each backend: a function of (tmp_path) giving (url, make_kit options) for a fresh, isolated store.
BACKENDS: dict[str, Callable[[Path], tuple[str, dict[str, Any]]]] = {
    "redis": lambda tmp: ("redis://127.0.0.1:6379/0", {"prefix": f"tkit-{uuid.uuid4().hex[:10]}"}),
    "sqlite": lambda tmp: (f"sqlite:///{tmp / 'tasks.sqlite3'}", {}),
}

# The reliability test profile: short leases so recovery happens within seconds.
PROFILE = {
    "lease_seconds": 3.0,
    "heartbeat_interval": 1.0,
    "control_interval": 0.2,
    "grace_period": 5.0,
}


def wait_until(predicate: Callable[[], Any], timeout: float, interval: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        time.sleep(interval)


def children_of(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except FileNotFoundError:
        return []
    return [int(p) for p in text.split()]


@dataclass
class Fleet:
    """A supervisor process (``kit.start``) running worker processes."""

    process: subprocess.Popen[bytes]
    log_path: Path
    ledger: Path

    def workers(self) -> list[int]:
        # The forkserver/resource tracker helpers are children too; workers run our module.
        pids = []
        for pid in children_of(self.process.pid):
            try:
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            except FileNotFoundError:
                continue
            if b"resource_tracker" in cmdline:
                continue
            if b"forkserver" in cmdline:  # forkserver workers are its children
                pids += children_of(pid)
                continue
            pids.append(pid)
        return pids

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@dataclass
class Env:
    name: str
    url: str
    options: dict[str, Any]
    tmp: Path
    fleets: list[Fleet] = field(default_factory=list)

    def kit(self, **overrides: Any) -> Kit:
        return taskkit.make_kit(
            self.url, LedgerHandler(str(self.ledger)), **{**self.options, **PROFILE, **overrides}
        )

    @property
    def ledger(self) -> Path:
        path = self.tmp / "ledger"
        path.mkdir(exist_ok=True)
        return path

    def start_fleet(
        self,
        processes: int = 3,
        threads: int = 4,
        start_method: str | None = None,
        **overrides: Any,
    ) -> Fleet:
        log_path = self.tmp / f"fleet-{len(self.fleets)}.log"
        cmd = [
            sys.executable,
            "-m",
            "integration.run_workers",
            "--url",
            self.url,
            "--options",
            json.dumps({**self.options, **PROFILE, **overrides}),
            "--ledger",
            str(self.ledger),
            "--processes",
            str(processes),
            "--threads",
            str(threads),
        ]
        if start_method:
            cmd += ["--start-method", start_method]
        with log_path.open("wb") as log:
            process = subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        fleet = Fleet(process, log_path, self.ledger)
        self.fleets.append(fleet)
        wait_until(lambda: len(fleet.workers()) >= processes or process.poll() is not None, 30)
        assert process.poll() is None, fleet.log()
        return fleet

    def stop_all(self) -> None:
        for fleet in self.fleets:
            if fleet.process.poll() is None:
                fleet.process.send_signal(signal.SIGTERM)
        for fleet in self.fleets:
            try:
                fleet.process.wait(30)
            except subprocess.TimeoutExpired:
                for pid in fleet.workers():
                    os.kill(pid, signal.SIGKILL)
                fleet.process.kill()
                fleet.process.wait(10)


@pytest.fixture(params=sorted(BACKENDS))
def env(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Env]:
    url, options = BACKENDS[request.param](tmp_path)
    environment = Env(request.param, url, options, tmp_path)
    yield environment
    environment.stop_all()


def _load_redis_servers() -> Any:
    """taskkit-redis' test helper for private redis-server processes (one copy, reused)."""
    import importlib.util

    path = ROOT / "taskkit-redis" / "tests" / "_servers.py"
    spec = importlib.util.spec_from_file_location("_taskkit_redis_test_servers", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[Any]:
    """A redis-server of this test's own on a free port (tests may stop and restart it).

    Append-only persistence is on, so a restart keeps the data (an outage, not a wipe).
    """
    servers = _load_redis_servers()
    server = servers.RedisServer(tmp_path / "redis", None, "--appendonly", "yes")
    server.start()
    try:
        yield server
    finally:
        server.stop()
