"""Issue 14's Prometheus test: scrape a real supervisor of two worker processes.

``taskkit worker --processes 2 --metrics-port 0`` runs on Redis and on PostgreSQL (forked
workers), and on Redis with spawned ones; 100 tasks succeed, are retried, fail and become dead
letters; the page, parsed with ``prometheus_client``'s parser, must show what the test sent
and what the tasks wrote to their ledger. Then a worker process is killed while it runs a
task: the page counts the restart, the reclaimed lease and the task's second delivery.
"""

from __future__ import annotations

import importlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
import urllib.request
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
from taskkit import DeadLettered, Failed

from .conftest import wait_until
from .test_function_tasks import _postgres_database

prometheus_parser = pytest.importorskip("prometheus_client.parser")

HERE = Path(__file__).resolve().parent
APP = "integration.metrics_app"

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def parse(text: str) -> Samples:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in prometheus_parser.text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, metric: str, /, **labels: str) -> float:
    return samples.get((metric, tuple(sorted(labels.items()))), 0.0)


# The backends, and how the supervisor starts its workers: forked ones copy the exporter,
# spawned ones unpickle it.
@pytest.fixture(params=["redis", "postgresql", "redis-spawn"])
def backend_env(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[dict[str, str]]:
    """The app's environment: a fresh, private store and a ledger directory (and, in
    ``START_METHOD``, how the supervisor starts its workers)."""
    ledger = tmp_path / "ledger"
    ledger.mkdir()
    if request.param.startswith("redis"):
        options = {"prefix": f"tkprom-{uuid.uuid4().hex[:10]}"}
        yield {
            "TASKKIT_URL": "redis://127.0.0.1:6379/0",
            "TASKKIT_OPTIONS": json.dumps(options),
            "TASKKIT_LEDGER": str(ledger),
            "START_METHOD": "spawn" if request.param.endswith("spawn") else "fork",
        }
    else:
        for url in _postgres_database():
            yield {
                "TASKKIT_URL": url,
                "TASKKIT_OPTIONS": "{}",
                "TASKKIT_LEDGER": str(ledger),
                "START_METHOD": "fork",
            }


@pytest.fixture
def app(backend_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    """The app imported in this (producer) process, on the test's store."""
    for key, val in backend_env.items():
        monkeypatch.setenv(key, val)
    sys.modules.pop(APP, None)
    module = importlib.import_module(APP)
    yield module
    module.kit.backend.close()
    sys.modules.pop(APP, None)


class Supervisor:
    """``python -m taskkit --app integration.metrics_app:kit worker ...``, stderr collected."""

    def __init__(self, env: dict[str, str], *args: str) -> None:
        self.lines: list[str] = []
        self.process = subprocess.Popen(
            [sys.executable, "-m", "taskkit", "--app", f"{APP}:kit", "worker", *args],
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

    def metrics_url(self) -> str:
        found = wait_until(
            lambda: (
                re.search(r"metrics: serving (http://\S+/metrics)", self.log())
                or self.process.poll() is not None
            ),
            60,
        )
        assert isinstance(found, re.Match), self.log()
        return found.group(1)

    def stop(self) -> str:
        """Ctrl-C to the process group, as a terminal does; the log."""
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
def supervisor(backend_env: dict[str, str]) -> Iterator[Supervisor]:
    started = Supervisor(
        backend_env,
        *("--processes", "2", "--threads", "work=4", "--metrics-port", "0"),
        *("--start-method", backend_env["START_METHOD"]),
    )
    yield started
    log = started.stop()
    assert started.process.returncode == 0, log
    # (The failing tasks' tracebacks are logged, as they should be; the exporter's are not.)
    assert "plugin hook" not in log and "ERROR taskkit.metrics" not in log, log


def scrape(url: str) -> Samples:
    with urllib.request.urlopen(url, timeout=10) as response:
        return parse(response.read().decode())


def scrape_until(url: str, expected: dict[tuple[str, tuple[tuple[str, str], ...]], float]) -> None:
    """Poll the page until it shows ``expected`` (workers write their counts every second);
    fail with what differs."""
    last: dict[str, Samples] = {}

    def shows() -> bool:
        page = last["page"] = scrape(url)
        return all(page.get(key, 0.0) == want for key, want in expected.items())

    try:
        wait_until(shows, 60, interval=0.2)
    except AssertionError:
        page = last.get("page", {})
        wrong = {
            key: (page.get(key), want) for key, want in expected.items() if page.get(key) != want
        }
        raise AssertionError(f"the page differs (got, wanted): {wrong}") from None


def key(metric: str, **labels: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    return (metric, tuple(sorted(labels.items())))


def ledger(backend_env: dict[str, str]) -> Counter[str]:
    """Runs per task name, as the tasks recorded them."""
    runs: Counter[str] = Counter()
    for path in Path(backend_env["TASKKIT_LEDGER"]).glob("ledger-*.log"):
        for line in path.read_text().splitlines():
            runs[line.split()[0]] += 1
    return runs


def test_a_scraped_supervisor_of_two_processes_counts_what_its_tasks_did(
    app: ModuleType, backend_env: dict[str, str], supervisor: Supervisor, tmp_path: Path
) -> None:
    url = supervisor.metrics_url()
    assert url.startswith("http://127.0.0.1:"), "binds to this host only by default"
    sent = Counter({"ok": 60, "flaky": 20, "broken": 15, "vanished": 5})
    oks = [app.ok.delay(i) for i in range(sent["ok"])]
    flakies = [app.flaky.delay(i, failures=1 + i % 2) for i in range(sent["flaky"])]  # 1 or 2
    brokens = [app.broken.delay(i) for i in range(sent["broken"])]
    vanished = [app.kit.initiate_task("work", "vanished", i) for i in range(sent["vanished"])]
    assert sum(sent.values()) == 100
    assert [r.get(timeout=120) for r in oks] == list(range(sent["ok"]))
    assert [r.get(timeout=120) for r in flakies] == list(range(sent["flaky"]))
    for result in brokens:
        with pytest.raises(Failed) as failed:
            result.get(timeout=120)
        assert not isinstance(failed.value, DeadLettered)
    for result in vanished:
        with pytest.raises(DeadLettered):
            result.get(timeout=120)

    runs = ledger(backend_env)
    retries = sum(1 + i % 2 for i in range(sent["flaky"]))
    assert runs == {"ok": 60, "flaky": sent["flaky"] + retries, "broken": 15}

    def finished(name: str, outcome: str) -> tuple[str, tuple[tuple[str, str], ...]]:
        return key("taskkit_tasks_finished_total", group="work", name=name, outcome=outcome)

    def runs_of(name: str) -> tuple[str, tuple[tuple[str, str], ...]]:
        return key("taskkit_task_duration_seconds_count", group="work", name=name)

    ok_name, flaky_name, broken_name = app.ok.name, app.flaky.name, app.broken.name
    scrape_until(
        url,
        {
            finished(ok_name, "succeeded"): sent["ok"],
            finished(flaky_name, "succeeded"): sent["flaky"],
            finished(flaky_name, "retried"): retries,
            finished(broken_name, "failed"): sent["broken"],
            finished("vanished", "dead"): sent["vanished"],
            key("taskkit_dead_letters_total", group="work"): sent["vanished"],
            runs_of(ok_name): runs["ok"],
            runs_of(flaky_name): runs["flaky"],
            runs_of(broken_name): runs["broken"],
            runs_of("vanished"): 0,  # nothing knew it: it never ran
            key("taskkit_tasks_running", group="work"): 0,
            key("taskkit_queue_depth", group="work"): 0,
            key("taskkit_queue_running", group="work"): 0,
            key("taskkit_leases_reclaimed_total", group="work"): 0,
            key("taskkit_stale_writes_rejected_total", group="work"): 0,
            key("taskkit_worker_restarts_total"): 0,
        },
    )
    page = scrape(url)
    total = sum(v for (name, _), v in page.items() if name == "taskkit_tasks_finished_total")
    assert total == sent["ok"] + sent["flaky"] + retries + sent["broken"] + sent["vanished"]

    # A worker process killed in the middle of a task: the supervisor restarts it and
    # expires its leases, another delivery runs the task.
    marker = tmp_path / "held-by"
    held = app.hold.delay(str(marker))
    pid = int(wait_until(lambda: marker.exists() and marker.read_text(), 60))
    os.kill(pid, signal.SIGKILL)
    assert held.get(timeout=120) == "held"
    scrape_until(
        url,
        {
            key("taskkit_worker_restarts_total"): 1,
            key("taskkit_leases_reclaimed_total", group="work"): 1,
            finished(app.hold.name, "succeeded"): 1,
            key("taskkit_tasks_running", group="work"): 0,
            finished(ok_name, "succeeded"): sent["ok"],  # the dead worker's counts stay
            finished(flaky_name, "retried"): retries,
        },
    )
