"""Function tasks with real worker processes on Redis and PostgreSQL (issue 13's "done when").

The snippet's sync task, its async equivalent, an async (FastAPI-style) producer, and a
rolling deploy: workers that do not know a task yet hold it back, and a worker that does runs
it once it starts; nothing is discarded.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from taskkit import TaskState

from .conftest import wait_until

HERE = Path(__file__).resolve().parent


def _postgres_database() -> Iterator[str]:
    psycopg = pytest.importorskip("psycopg")
    name = f"tk_fn_{uuid.uuid4().hex[:10]}"
    admin = "postgresql://postgres@127.0.0.1:5432/test"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["redis", "postgresql"])
def backend_env(request: pytest.FixtureRequest) -> Iterator[dict[str, str]]:
    """``TASKKIT_URL``/``TASKKIT_OPTIONS`` for a fresh, private store."""
    if request.param == "redis":
        options = {"prefix": f"tkfn-{uuid.uuid4().hex[:10]}"}
        yield {"TASKKIT_URL": "redis://127.0.0.1:6379/0", "TASKKIT_OPTIONS": json.dumps(options)}
    else:
        for url in _postgres_database():
            yield {"TASKKIT_URL": url, "TASKKIT_OPTIONS": "{}"}


class Worker:
    """``python -m taskkit --app integration.function_app:kit worker``, its stderr collected."""

    def __init__(self, env: dict[str, str], *args: str) -> None:
        self.lines: list[str] = []
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "taskkit",
                "--app",
                "integration.function_app:kit",
                "worker",
                *args,
            ],
            cwd=HERE.parent,
            env={**os.environ, **env},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.lines.append(line)

    def log(self) -> str:
        return "".join(self.lines)

    def wait_for(self, text: str, timeout: float = 60.0) -> None:
        wait_until(lambda: text in self.log() or self.process.poll() is not None, timeout)
        assert text in self.log(), self.log()

    def stop(self) -> str:
        """Ctrl-C to the process group, as a terminal does; the log, which has no traceback."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGINT)
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(30)
        self._reader.join(30)
        return self.log()


@pytest.fixture
def app(backend_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    """The app imported in this (producer) process, on the test's store."""
    for key, value in backend_env.items():
        monkeypatch.setenv(key, value)
    sys.modules.pop("integration.function_app", None)
    module = importlib.import_module("integration.function_app")
    yield module
    if backend_env["TASKKIT_URL"].startswith("redis"):
        # The shared server: remove this test's keys (its own prefix) before closing.
        module.kit.backend.delete_all_keys(i_know_this_deletes_everything=True)
    module.kit.backend.close()
    sys.modules.pop("integration.function_app", None)


@pytest.fixture
def workers(backend_env: dict[str, str]) -> Iterator[list[Worker]]:
    started: list[Worker] = []
    yield started
    for worker in started:
        log = worker.stop()
        assert "Traceback" not in log, log


def test_the_snippet_and_its_async_equivalent_run_on_worker_processes(
    app: ModuleType, backend_env: dict[str, str], workers: list[Worker]
) -> None:
    workers.append(Worker(backend_env, "--processes", "2"))
    sent = app.send.delay("ada@example.com", subject="hi")
    when = app.kit.backend_now() + 1.0
    welcome_id = f"welcome-ada-{uuid.uuid4().hex[:6]}"
    later = app.send.initiate(args=("ada@example.com",), due=when, task_id=welcome_id, ttl=3600)
    fetched = app.fetch.delay("https://example.com/")
    value = sent.get(timeout=60)
    assert value["to"] == "ada@example.com" and value["subject"] == "hi"
    assert value["pid"] != os.getpid()
    assert later.id == welcome_id and later.get(timeout=60)["subject"] == ""
    outcome = app.kit.backend.get_outcome(welcome_id)
    assert outcome is not None and outcome.finished is not None and outcome.finished >= when
    assert outcome.task.ttl == 3600.0
    assert fetched.get(timeout=60)["url"] == "https://example.com/"
    assert "serving the function tasks' groups: crawl=100, mail=4" in workers[0].log()


def test_an_async_producer_awaits_many_results_without_a_thread_each(
    app: ModuleType, backend_env: dict[str, str], workers: list[Worker]
) -> None:
    workers.append(Worker(backend_env, "--processes", "2"))
    requests = 50
    peak_threads = 0

    async def handle_request(i: int) -> tuple[Any, Any]:
        # What a FastAPI endpoint would do: enqueue, then await the outcome.
        mail = await app.send.adelay(f"user{i}@example.com", subject=str(i))
        page = await app.fetch.adelay(f"https://example.com/{i}")
        return await mail.aget(timeout=60), await page.aget(timeout=60)

    async def watch_threads(done: asyncio.Event) -> None:
        nonlocal peak_threads
        while not done.is_set():
            peak_threads = max(peak_threads, threading.active_count())
            await asyncio.sleep(0.01)

    async def main() -> list[tuple[Any, Any]]:
        done = asyncio.Event()
        watcher = asyncio.create_task(watch_threads(done))
        try:
            return await asyncio.gather(*(handle_request(i) for i in range(requests)))
        finally:
            done.set()
            await watcher

    before = threading.active_count()
    results = asyncio.run(main())
    assert [mail["subject"] for mail, _ in results] == [str(i) for i in range(requests)]
    assert [page["url"] for _, page in results] == [
        f"https://example.com/{i}" for i in range(requests)
    ]
    # 100 waiters at once; a thread per waiter would show here.
    assert peak_threads - before < 12, (before, peak_threads)


def test_a_rolling_deploy_holds_an_unknown_task_until_a_worker_knows_it(
    app: ModuleType, backend_env: dict[str, str], workers: list[Worker]
) -> None:
    old = Worker({**backend_env, "TASKKIT_VERSION": "old"}, "--threads", "mail=2")
    workers.append(old)
    old.wait_for("started: groups")
    result = app.welcome.delay("ada")
    old.wait_for(f"mail/{app.welcome.name}")  # the one WARNING about the unknown name
    deadline = time.monotonic() + 3.0
    while time.monotonic() < deadline:  # the old worker keeps holding it back meanwhile
        outcome = app.kit.backend.get_outcome(result.id)
        assert outcome is not None and outcome.state in (TaskState.QUEUED, TaskState.RUNNING)
        time.sleep(0.2)
    assert outcome.task.retry_count == 0
    workers.append(Worker(backend_env, "--threads", "mail=2"))
    assert result.get(timeout=90) == "welcome, ada"
    assert app.kit.dead_letters("mail") == []
    unknown_lines = [line for line in old.log().splitlines() if app.welcome.name in line]
    assert len(unknown_lines) == 1, old.log()
