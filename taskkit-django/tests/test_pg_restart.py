"""A PostgreSQL restart with workers running loses nothing (a private server on a free port).

The shared server is never touched: this test runs ``initdb`` and ``pg_ctl`` on its own data
directory, as the ``postgres`` user when run as root.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

HERE = Path(__file__).parent
PG_BIN = Path("/usr/lib/postgresql/15/bin")

pytestmark = [pytest.mark.postgresql, pytest.mark.slow]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _as_postgres(*cmd: str) -> list[str]:
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *cmd]
    return list(cmd)


class PrivatePostgres:
    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="taskkit-pg-"))
        self.data = self.dir / "data"
        self.port = _free_port()
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres", "postgres")
        subprocess.run(
            _as_postgres(
                str(PG_BIN / "initdb"),
                "-D",
                str(self.data),
                "-A",
                "trust",
                "-U",
                "postgres",
                "--no-sync",
            ),
            check=True,
            capture_output=True,
            timeout=120,
        )

    def pg_ctl(self, *args: str) -> None:
        subprocess.run(
            _as_postgres(
                str(PG_BIN / "pg_ctl"),
                "-D",
                str(self.data),
                "-w",
                "-t",
                "60",
                "-l",
                str(self.dir / "log"),
                "-o",
                f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 "
                "-c fsync=off -c synchronous_commit=on",
                *args,
            ),
            check=True,
            capture_output=True,
            timeout=120,
        )

    def cleanup(self) -> None:
        try:
            self.pg_ctl("stop", "-m", "immediate")
        except subprocess.CalledProcessError:
            pass
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def private_pg() -> Iterator[PrivatePostgres]:
    if not (PG_BIN / "initdb").exists():
        pytest.skip("PostgreSQL server binaries not installed")
    server = PrivatePostgres()
    try:
        server.pg_ctl("start")
        yield server
    finally:
        server.cleanup()


SCRIPT = """
import sys, time
import taskkit
from taskkit import BackendUnavailable
from handlers import EchoHandler

def retrying(fn, deadline):
    while True:
        try:
            return fn()
        except (BackendUnavailable, ConnectionError, OSError) as exc:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)

if __name__ == "__main__":
    url, n = sys.argv[1], int(sys.argv[2])
    kit = taskkit.make_kit(url, EchoHandler(), lease_seconds=4)
    procs = kit.start_processes(2, {"g": 3})
    acknowledged = []
    failed_enqueues = 0
    for i in range(n):
        try:
            acknowledged.append((i, kit.initiate_task("g", "echo", i)))
        except Exception:
            failed_enqueues += 1  # reported to the caller: never silent
        print("enqueued", i, flush=True)
        time.sleep(0.02)
    deadline = time.monotonic() + 120
    wrong = [i for i, r in acknowledged
             if retrying(lambda: r.get(timeout=30), deadline) != i]
    alive = sum(p.is_alive() for p in procs)
    for p in procs:
        p.terminate()
    for p in procs:
        p.join(30)
    print("done", len(acknowledged), failed_enqueues, len(wrong), alive, flush=True)
"""


def test_restart_with_workers_running_loses_nothing(
    private_pg: PrivatePostgres, tmp_path: Path
) -> None:
    subprocess.run(
        [
            str(PG_BIN / "createdb"),
            "-h",
            "127.0.0.1",
            "-p",
            str(private_pg.port),
            "-U",
            "postgres",
            "tasks",
        ],
        check=True,
        timeout=60,
    )
    url = f"postgresql://postgres@127.0.0.1:{private_pg.port}/tasks"
    (tmp_path / "restart.py").write_text(textwrap.dedent(SCRIPT))
    n = 150
    child = subprocess.Popen(
        [sys.executable, str(tmp_path / "restart.py"), url, str(n)],
        env={**os.environ, "PYTHONPATH": str(HERE)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        restarted = False
        last = ""
        for line in child.stdout:
            last = line
            if line.startswith("enqueued") and int(line.split()[1]) >= n // 3 and not restarted:
                private_pg.pg_ctl("restart", "-m", "immediate")
                restarted = True
            if line.startswith("done"):
                break
        child.wait(timeout=180)
    finally:
        if child.poll() is None:
            child.kill()
    stderr = child.stderr.read() if child.stderr else ""
    assert restarted and last.startswith("done"), stderr[-3000:]
    _, acknowledged, failed, wrong, alive = last.split()
    assert int(acknowledged) + int(failed) == n
    assert int(acknowledged) >= n - 20  # only enqueues during the restart window may fail
    assert int(wrong) == 0, "a task's result was lost or wrong"
    assert int(alive) == 2, "a worker process died with the database"
