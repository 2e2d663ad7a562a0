"""``taskkit worker`` on an app of function tasks: with no ``--threads`` it serves their groups."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from taskkit import Kit
from taskkit.cli import DEFAULT_COROUTINES, DEFAULT_THREADS, function_task_groups
from taskkit.memory import MemoryBackend

from .test_cli import _Lines

FUNCTION_APP = """
import os

import taskkit

kit = taskkit.make_kit("memory://")


@kit.task(group="mail")
def send(to: str) -> str:
    with open(os.environ["SENT"], "a") as fh:
        fh.write(to + "\\n")
    return to


# The in-memory backend lives in this process: enqueue here, as a producer would.
send.delay("ada@example.com")
"""


def test_function_task_groups_get_threads_or_coroutines() -> None:
    kit = Kit(MemoryBackend())

    @kit.task(group="mail")
    def send() -> None: ...

    @kit.task(group="crawl")
    async def fetch() -> None: ...

    assert function_task_groups(kit) == {"crawl": DEFAULT_COROUTINES, "mail": DEFAULT_THREADS}
    assert function_task_groups(Kit(MemoryBackend())) == {}


@pytest.mark.slow
def test_worker_without_threads_serves_the_function_tasks_groups(tmp_path: Path) -> None:
    (tmp_path / "fnapp.py").write_text(textwrap.dedent(FUNCTION_APP))
    sent = tmp_path / "sent.txt"
    proc = subprocess.Popen(
        [sys.executable, "-m", "taskkit", "--app", "fnapp:kit", "worker"],
        cwd=tmp_path,
        env={**os.environ, "SENT": str(sent)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        lines = _Lines(proc)
        assert f"mail={DEFAULT_THREADS}" in lines.wait_for("serving the function tasks' groups")
        lines.wait_for("succeeded")
        assert sent.read_text() == "ada@example.com\n"
        os.killpg(proc.pid, signal.SIGINT)
        assert proc.wait(60) == 0
        assert "Traceback" not in lines.rest()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(30)
