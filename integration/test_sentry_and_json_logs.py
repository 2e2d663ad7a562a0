"""Sentry reports and JSON logs from real ``taskkit worker`` processes (issue 14, items 5 and 6).

Two worker processes (``--processes 2``), forked or spawned, on Redis (a key prefix of their
own) and PostgreSQL (a database of their own, dropped after): a task retried twice then
failing gives three Sentry events, one per attempt with its number, read through sentry-sdk's
transport hook (``sentry_app.FileTransport``); a success and a ``DiscardTask`` give none;
and with ``--log-format json`` every line the worker processes write to stderr is one JSON
object, the outcome lines with the task's fields.
"""

from __future__ import annotations

import importlib
import json
import os
import signal
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from taskkit import Failed

from .conftest import wait_until
from .test_function_tasks import _postgres_database

pytest.importorskip("sentry_sdk")

HERE = Path(__file__).resolve().parent
APP = "integration.sentry_app"


@pytest.fixture(params=["redis", "postgresql"])
def store(request: pytest.FixtureRequest) -> Iterator[dict[str, str]]:
    """``TASKKIT_URL`` / ``TASKKIT_OPTIONS`` of a fresh, private store."""
    if request.param == "redis":
        options = {"prefix": f"tkobs-{uuid.uuid4().hex[:10]}"}
        yield {"TASKKIT_URL": "redis://127.0.0.1:6379/0", "TASKKIT_OPTIONS": json.dumps(options)}
    else:
        for url in _postgres_database():
            yield {"TASKKIT_URL": url, "TASKKIT_OPTIONS": "{}"}


@pytest.fixture
def producer(store: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    """The app imported in this process, without Sentry (only the workers report)."""
    for key, value in store.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("TASKKIT_SENTRY", "")
    sys.modules.pop(APP, None)
    module = importlib.import_module(APP)
    yield module
    module.kit.backend.close()
    sys.modules.pop(APP, None)


class Worker:
    """``python -m taskkit --app integration.sentry_app:kit --log-format json worker ...``."""

    def __init__(self, env: dict[str, str], *args: str) -> None:
        self.lines: list[str] = []
        self.process = subprocess.Popen(
            [sys.executable, "-m", "taskkit", "--app", f"{APP}:kit", "--log-format", "json", *args],
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

    def stop(self) -> list[str]:
        """SIGTERM (the workers flush Sentry as they stop); the stderr lines."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(30)
        self._reader.join(30)
        return list(self.lines)


def _events(path: Path, task_id: str) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    events = [json.loads(line) for line in path.read_text().splitlines()]
    return [e for e in events if e.get("tags", {}).get("taskkit.task_id") == task_id]


@pytest.mark.parametrize(
    ("who", "start_method"),
    [("app", "fork"), ("app", "spawn"), ("plugin", "spawn")],
    ids=["app-init-fork", "app-init-spawn", "plugin-init-spawn"],
)
def test_worker_processes_report_each_attempt_once_and_log_json(
    producer: ModuleType, store: dict[str, str], tmp_path: Path, who: str, start_method: str
) -> None:
    events = tmp_path / "events.jsonl"
    env = {**store, "TASKKIT_SENTRY": who, "TASKKIT_SENTRY_EVENTS": str(events)}
    worker = Worker(env, "worker", "--processes", "2", "--start-method", start_method)
    try:
        flaky = producer.flaky.delay(1)
        fine = producer.ok.delay(2)
        unwanted = producer.unwanted.delay(3)
        with pytest.raises(Failed):
            flaky.get(timeout=60)
        assert fine.get(timeout=60)["pid"] != os.getpid()
        wait_until(
            lambda: producer.kit.backend.get_outcome(unwanted.id).state.value == "discarded", 60
        )
        wait_until(lambda: len(_events(events, flaky.id)) >= 3, 60)
    finally:
        lines = worker.stop()
    assert worker.process.returncode == 0, "".join(lines)

    # Sentry: one event per attempt, each with its number; nothing for the others. Read
    # after the stop: a doubled report would have been written (and flushed) by then.
    reported = _events(events, flaky.id)
    assert [e["tags"]["taskkit.attempt"] for e in reported] == ["1", "2", "3"], reported
    assert [e["tags"]["taskkit.outcome"] for e in reported] == ["retried", "retried", "failed"]
    for event in reported:
        assert (event["tags"]["taskkit.group"], event["tags"]["taskkit.name"]) == ("obs", "flaky")
        assert event["exception"]["values"][-1]["type"] == "ValueError"
        assert event["contexts"]["process"]["pid"] != os.getpid()  # sent by a worker
    all_events = [json.loads(line) for line in events.read_text().splitlines()]
    assert len(all_events) == 3, [e.get("message") or e.get("logentry") for e in all_events]

    # JSON logs: every line parses; the outcome lines carry the task's fields, and come from
    # the worker processes (not only the supervisor).
    entries = [json.loads(line) for line in lines]
    outcomes = [e for e in entries if e.get("task_id") == flaky.id]
    assert [e["task_attempt"] for e in outcomes] == [1, 2, 3], outcomes
    assert [e["level"] for e in outcomes] == ["WARNING", "WARNING", "ERROR"]
    assert all(e["task_group"] == "obs" and e["task_name"] == "flaky" for e in outcomes)
    assert all(isinstance(e["task_duration"], float) for e in outcomes)
    assert "ValueError: attempt failed" in outcomes[-1]["exception"]
    (success,) = [e for e in entries if e.get("task_id") == fine.id]
    assert success["level"] == "INFO" and "succeeded" in success["message"]
    supervisor = worker.process.pid
    assert {e["process"] for e in [*outcomes, success]} - {supervisor}
    started = [e for e in entries if " started: groups " in e["message"]]
    assert len({e["process"] for e in started}) == 2  # each worker process logs in JSON
