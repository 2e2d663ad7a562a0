"""The Prometheus exporter (taskkit.contrib.prometheus) and the hooks it is built on.

Hooks -> metric values through the exporter's own registry; the endpoint through a real
supervisor (thread workers on the in-memory backend) scraped over HTTP; worker processes'
snapshots through a real fork. The integration suite scrapes supervisors of real worker
processes on Redis and PostgreSQL.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import pickle
import re
import socket
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from taskkit import (
    ConfigurationError,
    Kit,
    KitConfig,
    MemoryBackend,
    RegularSchedule,
    Task,
    TaskState,
    hookimpl,
)
from taskkit._supervisor import Supervisor, _Slot, config_plugins
from taskkit._worker import WorkerSpec
from taskkit.cli import main
from taskkit.errors import UnknownTask
from taskkit.plugins import make_plugin_manager

pytest.importorskip("prometheus_client")
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from taskkit.contrib.prometheus import METRICS, PrometheusExporter

from .conftest import wait_until
from .handlers import RecordingHandler

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]
SPEC = WorkerSpec(num_processes=1, threads={"g": 1}, schedule_entries={}, tzinfo=None)


def parse(text: str) -> Samples:
    """Every sample of a /metrics page, by name and labels."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, metric: str, /, **labels: str) -> float | None:
    return samples.get((metric, tuple(sorted(labels.items()))))


def scrape(exporter: PrometheusExporter) -> Samples:
    """What the exporter serves, rendered without HTTP."""
    return parse(generate_latest(exporter.registry).decode())


def scrape_until(
    exporter: PrometheusExporter, condition: Callable[[Samples], bool], timeout: float = 10.0
) -> Samples:
    """Scrape until ``condition`` holds for the page (queue figures are read on a timer)."""

    def ready() -> Samples | None:
        samples = scrape(exporter)
        return samples if condition(samples) else None

    result: Samples = wait_until(ready, timeout)
    return result


def fetch(address: tuple[str, int]) -> Samples:
    host, port = address
    with urllib.request.urlopen(f"http://{host}:{port}/metrics", timeout=10) as response:
        return parse(response.read().decode())


def a_task(group: str = "g", name: str = "job", **fields: Any) -> Task:
    return Task(id=f"t-{name}", group=group, name=name, data=b"1", due=0.0, created=0.0, **fields)


def finished(samples: Samples, name: str, outcome: str, group: str = "g") -> float | None:
    return value(samples, "taskkit_tasks_finished_total", group=group, name=name, outcome=outcome)


class Recorder:
    """A kit plugin that records the calls of the hooks added for the metrics."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def of(self, hook: str) -> list[dict[str, Any]]:
        return [kwargs for name, kwargs in self.calls if name == hook]

    @hookimpl
    def taskkit_task_reclaimed(self, task: Task, worker_id: str) -> None:
        self.calls.append(("reclaimed", {"task": task, "worker_id": worker_id}))

    @hookimpl
    def taskkit_outcome_rejected(self, task: Task, action: str) -> None:
        self.calls.append(("rejected", {"task": task, "action": action}))

    @hookimpl
    def taskkit_schedule_fired(self, scheduler: str, entry: str, task: Task, lag: float) -> None:
        self.calls.append(
            ("fired", {"scheduler": scheduler, "entry": entry, "task": task, "lag": lag})
        )

    @hookimpl
    def taskkit_worker_restarted(
        self, worker_id: str, replaced: str, exit_code: int | None
    ) -> None:
        self.calls.append(("restarted", {"new": worker_id, "old": replaced, "code": exit_code}))

    @hookimpl
    def taskkit_supervisor_started(
        self, supervisor_id: str, groups: list[str], backend: object
    ) -> None:
        self.calls.append(("started", {"id": supervisor_id, "groups": groups}))

    @hookimpl
    def taskkit_supervisor_stopped(self, supervisor_id: str) -> None:
        self.calls.append(("stopped", {"id": supervisor_id}))

    @hookimpl
    def taskkit_worker_started(self, worker_id: str, groups: list[str]) -> None:
        self.calls.append(("worker_started", {"worker_id": worker_id}))

    @hookimpl
    def taskkit_worker_stopped(self, worker_id: str) -> None:
        self.calls.append(("worker_stopped", {"worker_id": worker_id}))

    @hookimpl
    def taskkit_task_initiated(self, task: Task) -> None:
        self.calls.append(("initiated", {"task": task}))

    @hookimpl
    def taskkit_task_dead_lettered(self, task: Task, reason: str) -> None:
        self.calls.append(("dead_lettered", {"task": task, "reason": reason}))


@contextlib.contextmanager
def supervised(kit: Kit, threads: dict[str, int] | None = None) -> Iterator[None]:
    """``kit.start`` on a thread (a thread worker, with the in-memory backend) for the block;
    a shutdown event ends it."""
    errors: list[BaseException] = []

    def run() -> None:
        try:
            kit.start(1, threads or {"g": 2})
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield
    finally:
        kit.send_shutdown_event()
        thread.join(30)
        assert not thread.is_alive()
    assert not errors, errors


def memory_kit(*plugins: object, **options: Any) -> Kit:
    return Kit(
        MemoryBackend(), RecordingHandler(), plugins=plugins, control_interval=0.05, **options
    )


@pytest.fixture
def exporter() -> Iterator[PrometheusExporter]:
    exporter = PrometheusExporter(port=0, stats_interval=0.05)
    yield exporter
    supervising = exporter._supervisor
    if supervising is not None:  # a test that played the supervisor
        exporter.taskkit_supervisor_stopped(supervising.supervisor_id)


# --------------------------------------------------------------------------- hooks -> values


def test_outcome_hooks_count_each_attempt_by_group_name_and_outcome(
    exporter: PrometheusExporter,
) -> None:
    job, other = a_task(), a_task("h", "other")
    exporter.taskkit_task_succeeded(task=job, duration=0.1)
    exporter.taskkit_task_succeeded(task=job, duration=0.1)
    exporter.taskkit_task_retried(task=job, exception=ValueError(), delay=1.0)
    exporter.taskkit_task_failed(task=other, exception=None, message="timed out")
    exporter.taskkit_task_discarded(task=other, reason="not wanted")
    exporter.taskkit_task_dead_lettered(task=other, reason="worker lost")
    samples = scrape(exporter)
    assert finished(samples, "job", "succeeded") == 2
    assert finished(samples, "job", "retried") == 1
    assert finished(samples, "other", "failed", "h") == 1
    assert finished(samples, "other", "discarded", "h") == 1
    assert finished(samples, "other", "dead", "h") == 1
    assert value(samples, "taskkit_dead_letters_total", group="h") == 1
    assert value(samples, "taskkit_dead_letters_total", group="g") is None


def test_each_run_is_timed_and_counted_running_while_it_runs_but_an_unknown_task_is_not_timed(
    exporter: PrometheusExporter,
) -> None:
    hook = make_plugin_manager(plugins=(exporter,)).hook.taskkit_execute_task
    job = a_task()
    during: list[float | None] = []

    def handler() -> str:
        during.append(value(scrape(exporter), "taskkit_tasks_running", group="g"))
        return "done"

    def raises() -> None:
        raise ValueError("boom")

    def unknown() -> None:
        raise UnknownTask(job)

    assert hook(task=job, call=handler) == "done"
    with pytest.raises(ValueError):
        hook(task=job, call=raises)
    with pytest.raises(UnknownTask):
        hook(task=job, call=unknown)
    samples = scrape(exporter)
    assert during == [1.0]
    assert value(samples, "taskkit_tasks_running", group="g") == 0
    # The return and the raise are timed; the unknown task did not run.
    assert value(samples, "taskkit_task_duration_seconds_count", group="g", name="job") == 2
    assert (
        value(samples, "taskkit_task_duration_seconds_bucket", group="g", name="job", le="+Inf")
        == 2
    )
    assert (
        value(samples, "taskkit_task_duration_seconds_bucket", group="g", name="job", le="600.0")
        == 2
    )


def test_reclaims_rejected_writes_and_schedule_lag_are_counted(
    exporter: PrometheusExporter,
) -> None:
    job = a_task(deliveries=2)
    exporter.taskkit_task_reclaimed(task=job, worker_id="w")
    exporter.taskkit_task_reclaimed(task=job, worker_id="w")
    exporter.taskkit_outcome_rejected(task=job, action="complete")
    exporter.taskkit_schedule_fired(
        scheduler="main", entry="tick", task=a_task(scheduled=10.0), lag=0.25
    )
    exporter.taskkit_schedule_fired(
        scheduler="main", entry="tick", task=a_task(scheduled=20.0), lag=1.5
    )
    samples = scrape(exporter)
    assert value(samples, "taskkit_leases_reclaimed_total", group="g") == 2
    assert value(samples, "taskkit_stale_writes_rejected_total", group="g") == 1
    assert value(samples, "taskkit_scheduler_lag_seconds", scheduler="main", entry="tick") == 1.5


def test_the_page_serves_exactly_the_listed_metrics_all_named_taskkit(
    exporter: PrometheusExporter,
) -> None:
    exporter.taskkit_supervisor_started(supervisor_id="s", groups=["g"], backend=MemoryBackend())
    families = {
        family.name: family.type
        for family in text_string_to_metric_families(generate_latest(exporter.registry).decode())
    }
    listed = {
        m.name.removesuffix("_total") if m.kind == "counter" else m.name: m.kind for m in METRICS
    }
    assert families == listed
    assert all(name.startswith("taskkit_") for name in listed)
    # A served group shows its per-group counters and gauges at 0 before its first event.
    samples = scrape(exporter)
    for name in (
        "taskkit_tasks_running",
        "taskkit_leases_reclaimed_total",
        "taskkit_stale_writes_rejected_total",
        "taskkit_dead_letters_total",
    ):
        assert value(samples, name, group="g") == 0, name
    assert value(samples, "taskkit_worker_restarts_total") == 0


# --------------------------------------------------------------------------- a real supervisor


def test_a_supervisor_serves_what_its_worker_ran_over_http_while_it_runs() -> None:
    exporter = PrometheusExporter(port=0, stats_interval=0.05)
    kit = memory_kit(exporter)
    assert exporter.address is None
    with supervised(kit):
        address = wait_until(lambda: exporter.address)
        assert address[0] == "127.0.0.1"
        assert exporter._supervisor is not None
        assert exporter._supervisor._server.socket.getsockname()[0] == "127.0.0.1"
        results = [kit.initiate_task("g", "double", i) for i in range(3)]
        failing = kit.initiate_task("g", "fail", "x")  # retried twice, then fails
        discarded = kit.initiate_task("g", "discard", None)
        assert [r.get(timeout=10) for r in results] == [0, 2, 4]
        for result in (failing, discarded):
            wait_until(lambda r=result: kit.backend.get_outcome(r.id).state.finished, 10)

        def settled() -> Samples | None:
            samples = fetch(address)
            return samples if value(samples, "taskkit_queue_depth", group="g") == 0 else None

        samples = wait_until(settled, 10)
        assert finished(samples, "double", "succeeded") == 3
        assert finished(samples, "fail", "retried") == 2
        assert finished(samples, "fail", "failed") == 1
        assert finished(samples, "discard", "discarded") == 1
        assert value(samples, "taskkit_task_duration_seconds_count", group="g", name="fail") == 3
        assert value(samples, "taskkit_tasks_running", group="g") == 0
        assert value(samples, "taskkit_queue_running", group="g") == 0
        directory = exporter._dir
        assert directory is not None and directory.is_dir()
    assert exporter.address is None
    assert not directory.exists(), "the supervisor's directory is removed when it stops"
    with pytest.raises(urllib.error.URLError):
        fetch(address)


def test_kitconfig_metrics_port_turns_the_exporter_on_and_the_supervisor_logs_its_address(
    caplog: pytest.LogCaptureFixture,
) -> None:
    kit = memory_kit(metrics_port=0)
    caplog.set_level(logging.INFO, logger="taskkit.metrics")
    with supervised(kit):
        line = wait_until(
            lambda: re.search(r"serving http://127\.0\.0\.1:(\d+)/metrics", caplog.text)
        )
        assert kit.initiate_task("g", "double", 2).get(timeout=10) == 4
        address = ("127.0.0.1", int(line.group(1)))
        wait_until(lambda: finished(fetch(address), "double", "succeeded") == 1, 10)


def test_no_listener_unless_asked() -> None:
    assert config_plugins(memory_kit()) == ()
    recorder = Recorder()
    kit = memory_kit(recorder)
    with supervised(kit):
        wait_until(lambda: recorder.of("started"))
    assert not any(isinstance(p, PrometheusExporter) for p in kit.plugins)


def test_workers_started_without_a_supervisor_say_that_nothing_serves_their_metrics(
    caplog: pytest.LogCaptureFixture,
) -> None:
    kit = memory_kit(metrics_port=0)
    [handle] = kit.start_processes(1, {"g": 1})
    try:
        assert kit.initiate_task("g", "double", 1).get(timeout=10) == 2
    finally:
        handle.kill()
        handle.join(10)
    assert "workers started without a supervisor serve no metrics" in caplog.text
    assert "serving http" not in caplog.text


def test_the_supervision_hooks_wrap_the_workers_run_with_one_id() -> None:
    recorder = Recorder()
    kit = memory_kit(recorder)
    with supervised(kit, {"g": 1, "h": 1}):
        [started] = wait_until(lambda: recorder.of("started"))
        assert kit.initiate_task("g", "double", 1).get(timeout=10) == 2
        assert recorder.of("stopped") == []
    assert started["groups"] == ["g", "h"]
    assert recorder.of("stopped") == [{"id": started["id"]}]
    order = [name for name, _ in recorder.calls if name != "initiated"]
    assert order == ["started", "worker_started", "worker_stopped", "stopped"]


@dataclass(frozen=True)
class RicherStats:
    """What the richer stats contract will answer (an ``oldest_due_age`` among others)."""

    queued: int
    running: int
    scheduled: int
    dead_letters: int
    oldest_due_age: float


class PlainBackend(MemoryBackend):
    """A backend that keeps only ``stats(group)``."""

    supports_fleet_stats = False


class RicherBackend(MemoryBackend):
    def group_stats(self, group: str) -> RicherStats:
        stats = self.stats(group)
        return RicherStats(stats.queued, stats.running, 5, 1, 42.5)


def test_queue_figures_come_from_the_backend_and_its_richer_stats_where_it_has_them(
    exporter: PrometheusExporter,
) -> None:
    plain = PrometheusExporter(port=0, stats_interval=0.05)
    plain_kit = Kit(PlainBackend(), RecordingHandler())
    plain.taskkit_supervisor_started(supervisor_id="p", groups=["g"], backend=plain_kit.backend)
    rich_kit = Kit(RicherBackend(), RecordingHandler())
    exporter.taskkit_supervisor_started(supervisor_id="r", groups=["g"], backend=rich_kit.backend)
    try:
        for kit in (plain_kit, rich_kit):
            kit.initiate_task("g", "double", 1)
            kit.initiate_task("g", "double", 2)
        samples = scrape_until(plain, lambda s: value(s, "taskkit_queue_depth", group="g") == 2)
        assert value(samples, "taskkit_queue_running", group="g") == 0
        assert value(samples, "taskkit_oldest_due_age_seconds", group="g") is None
        rich = scrape_until(exporter, lambda s: value(s, "taskkit_queue_depth", group="g") == 2)
        assert value(rich, "taskkit_oldest_due_age_seconds", group="g") == 42.5
        assert value(rich, "taskkit_queue_scheduled", group="g") == 5
        assert value(rich, "taskkit_queue_dead_letters", group="g") == 1
    finally:
        plain.taskkit_supervisor_stopped(supervisor_id="p")


class CountingBackend(PlainBackend):
    def __init__(self) -> None:
        super().__init__()
        self.stats_calls = 0

    def stats(self, group: str) -> Any:
        self.stats_calls += 1
        return super().stats(group)


def test_scrapes_read_the_queue_figures_of_the_timer_not_the_backend() -> None:
    backend = CountingBackend()
    exporter = PrometheusExporter(port=0, stats_interval=3600.0)
    exporter.taskkit_supervisor_started(supervisor_id="s", groups=["g"], backend=backend)
    try:
        wait_until(lambda: value(scrape(exporter), "taskkit_queue_depth", group="g") == 0)
        for _ in range(20):
            scrape(exporter)
        assert backend.stats_calls == 1, "one read at start, the next after stats_interval"
    finally:
        exporter.taskkit_supervisor_stopped(supervisor_id="s")


def test_an_exporter_serves_one_supervisor_at_a_time(
    exporter: PrometheusExporter, caplog: pytest.LogCaptureFixture
) -> None:
    exporter.taskkit_supervisor_started(supervisor_id="one", groups=["g"], backend=MemoryBackend())
    address = exporter.address
    exporter.taskkit_supervisor_started(supervisor_id="two", groups=["h"], backend=MemoryBackend())
    assert "already serves a supervisor" in caplog.text and "two gets no endpoint" in caplog.text
    exporter.taskkit_supervisor_stopped(supervisor_id="two")  # not the one it serves
    assert exporter.address == address
    assert value(scrape(exporter), "taskkit_tasks_running", group="g") == 0


def test_a_port_in_use_is_logged_and_the_supervisor_runs_on_without_an_endpoint(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        exporter = PrometheusExporter(port=taken.getsockname()[1])
        kit = memory_kit(exporter)
        with supervised(kit):
            assert kit.initiate_task("g", "double", 1).get(timeout=10) == 2
        assert exporter.address is None
    [record] = [r for r in caplog.records if r.name == "taskkit.metrics"]
    assert record.levelno == logging.ERROR and "cannot listen on 127.0.0.1:" in record.getMessage()


# --------------------------------------------------------------------------- worker processes


def _worker_process(exporter: PrometheusExporter, worker_id: str, ends: str) -> None:
    """A forked worker's life as the exporter sees it: two tasks succeed, one runs on."""
    exporter.taskkit_worker_started(worker_id=worker_id, groups=["g"])
    job = a_task()
    exporter.taskkit_task_succeeded(task=job, duration=0.1)
    exporter.taskkit_task_succeeded(task=job, duration=0.1)
    exporter._process_counts().began("g")
    if ends == "stops":
        exporter._process_counts().ended("g", "job", 0.1)
        exporter.taskkit_worker_stopped(worker_id=worker_id)
    else:  # killed after its last snapshot
        assert exporter._flusher is not None
        exporter._flusher.write()
    os._exit(0)


def _run_worker_process(exporter: PrometheusExporter, worker_id: str, ends: str) -> None:
    process = multiprocessing.get_context("fork").Process(
        target=_worker_process, args=(exporter, worker_id, ends)
    )
    process.start()
    process.join(30)
    assert process.exitcode == 0


@pytest.mark.skipif(sys.platform == "win32", reason="fork")
def test_worker_processes_snapshots_are_summed_and_a_replaced_workers_gauges_dropped(
    exporter: PrometheusExporter,
) -> None:
    exporter.taskkit_supervisor_started(supervisor_id="s", groups=["g"], backend=MemoryBackend())
    _run_worker_process(exporter, "w-killed", ends="killed")
    _run_worker_process(exporter, "w-stopped", ends="stops")
    samples = scrape(exporter)
    assert finished(samples, "job", "succeeded") == 4
    # The killed one never ended its task: it shows as running until it is replaced.
    assert value(samples, "taskkit_tasks_running", group="g") == 1
    assert value(samples, "taskkit_task_duration_seconds_count", group="g", name="job") == 1
    exporter.taskkit_worker_restarted(worker_id="w-new", replaced="w-killed", exit_code=-9)
    samples = scrape(exporter)
    assert value(samples, "taskkit_tasks_running", group="g") == 0
    assert value(samples, "taskkit_worker_restarts_total") == 1
    assert finished(samples, "job", "succeeded") == 4, "a dead worker's counters stay"
    directory = exporter._dir
    assert directory is not None and sorted(p.name for p in directory.iterdir()) == [
        "w-killed.json",
        "w-stopped.json",
    ]
    exporter.taskkit_supervisor_stopped(supervisor_id="s")
    assert not directory.exists()


def test_a_spawned_worker_gets_the_settings_and_the_directory_not_the_endpoint(
    exporter: PrometheusExporter,
) -> None:
    exporter.taskkit_supervisor_started(supervisor_id="s", groups=["g"], backend=MemoryBackend())
    copy = pickle.loads(pickle.dumps(exporter))
    assert (copy.port, copy.host, copy.buckets, copy.flush_interval) == (
        exporter.port,
        exporter.host,
        exporter.buckets,
        exporter.flush_interval,
    )
    assert copy._dir == exporter._dir and copy._supervisor_pid == os.getpid()
    assert copy.address is None and copy._counts is None


# --------------------------------------------------------------------------- the runtime's hooks


def test_a_claim_of_a_task_whose_delivery_was_lost_calls_the_reclaimed_hook() -> None:
    recorder = Recorder()
    kit = memory_kit(recorder, lease_seconds=2.0)
    lost = kit.initiate_task("g", "double", 2)
    [claim] = kit.backend.claim("g", "w-dead", 1, 60.0, 3).claims
    kit.backend.release_worker("w-dead")  # what the supervisor does when w-dead dies
    [handle] = kit.start_processes(1, {"g": 1})
    try:
        assert lost.get(timeout=10) == 4
        assert kit.initiate_task("g", "double", 3).get(timeout=10) == 6  # a first delivery
    finally:
        handle.kill()
        handle.join(10)
    [call] = recorder.of("reclaimed")
    assert call["task"].id == claim.task.id and call["task"].deliveries == 2
    assert call["worker_id"] == handle.worker_id


def test_a_task_reclaimed_once_too_often_is_a_dead_letter_not_a_reclaim() -> None:
    recorder = Recorder()
    kit = memory_kit(recorder, lease_seconds=2.0, max_deliveries=1)
    lost = kit.initiate_task("g", "double", 2)
    kit.backend.claim("g", "w-dead", 1, 60.0, 1)
    kit.backend.release_worker("w-dead")
    [handle] = kit.start_processes(1, {"g": 1})
    try:
        [buried] = wait_until(lambda: recorder.of("dead_lettered"), 10)
    finally:
        handle.kill()
        handle.join(10)
    assert buried["task"].id == lost.id
    assert recorder.of("reclaimed") == []


def test_an_outcome_the_backend_refuses_calls_the_rejected_hook() -> None:
    recorder = Recorder()
    kit = memory_kit(recorder, lease_seconds=2.0)
    handler = kit.handler
    assert isinstance(handler, RecordingHandler)
    [handle] = kit.start_processes(1, {"g": 1})
    try:
        held = kit.initiate_task("g", "wait_release", None)
        wait_until(lambda: handler.runs)
        kit.backend.release_worker(handle.worker_id)
        [thief] = kit.backend.claim("g", "thief", 1, 60.0, 3).claims
        handler.release.set()
        [call] = wait_until(lambda: recorder.of("rejected"), 10)
    finally:
        handle.kill()
        handle.join(10)
    assert call["task"].id == held.id and call["action"] == "complete"
    outcome = kit.backend.get_outcome(held.id)
    assert outcome is not None and outcome.state is TaskState.RUNNING  # still the thief's
    assert thief.task.deliveries == 2


def test_a_fired_schedule_point_calls_the_hook_with_its_entry_and_lag() -> None:
    recorder = Recorder()
    kit = memory_kit(recorder)
    every_second = {
        "key": "tick",
        "schedule": RegularSchedule(seconds=None),
        "group": "g",
        "name": "double",
        "data": 1,
    }
    [handle] = kit.start_processes(1, {"g": 1}, {"main": [every_second]})
    try:
        call = wait_until(lambda: recorder.of("fired"), 10)[0]
    finally:
        handle.kill()
        handle.join(10)
    assert (call["scheduler"], call["entry"]) == ("main", "tick")
    assert 0.0 <= call["lag"] < 5.0
    fired = call["task"]
    assert call["lag"] == fired.created - fired.scheduled
    # The task was announced as initiated first.
    names = [(name, kwargs.get("task")) for name, kwargs in recorder.calls]
    assert names.index(("initiated", fired)) < names.index(("fired", fired))


class _LiveProcess:
    def __init__(self, worker_id: str) -> None:
        self.worker_id = worker_id
        self.exitcode: int | None = None


class _ExitedProcess(_LiveProcess):
    def __init__(self, worker_id: str, exitcode: int) -> None:
        super().__init__(worker_id)
        self.exitcode = exitcode


def test_the_supervisor_reports_each_restart_with_the_process_it_replaces(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    recorder = Recorder()
    supervisor = Supervisor(memory_kit(recorder), SPEC)
    try:
        monkeypatch.setattr(
            "taskkit._supervisor._spawn", lambda kit, spec, ctx, daemon: _LiveProcess("w-new")
        )
        slot = _Slot(_ExitedProcess("w-old", -9), started=0.0)
        supervisor._handle_death(slot)
        assert recorder.of("restarted") == []  # not before the replacement starts
        supervisor._restart(slot, ctx=None)
        supervisor._restart(slot, ctx=None)  # a start that replaces nothing is no restart
    finally:
        os.close(supervisor._wake_r)
        os.close(supervisor._wake_w)
    assert recorder.of("restarted") == [{"new": "w-new", "old": "w-old", "code": -9}]


# --------------------------------------------------------------------------- configuration


def test_kitconfig_metrics_defaults_serve_nothing_and_bind_locally() -> None:
    # (Each field's bad and edge values are in test_kitdata, with the other fields'.)
    assert (KitConfig().metrics_port, KitConfig().metrics_host) == (None, "127.0.0.1")


@pytest.mark.parametrize(
    "options",
    [
        {"port": -1},
        {"port": 70000},
        {"host": ""},
        {"buckets": (1.0, 0.5)},
        {"buckets": ()},
        {"buckets": (1.0, float("inf"))},
        {"flush_interval": 0},
        {"stats_interval": -1.0},
    ],
)
def test_the_exporter_refuses_bad_settings(options: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError):
        PrometheusExporter(**options)


def test_metrics_port_and_an_exporter_among_the_kits_plugins_are_refused_together() -> None:
    kit = memory_kit(PrometheusExporter(), metrics_port=0)
    with pytest.raises(ConfigurationError, match="keep one"):
        config_plugins(kit)
    with pytest.raises(ConfigurationError, match="keep one"):
        Supervisor(kit, SPEC).run()


def test_without_prometheus_client_metrics_port_names_the_extra_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delitem(sys.modules, "taskkit.contrib.prometheus")
    monkeypatch.setitem(sys.modules, "prometheus_client", None)  # "not installed"
    with pytest.raises(ConfigurationError, match=r"taskkit-core\[prometheus\]"):
        config_plugins(memory_kit(metrics_port=0))


def test_the_worker_command_checks_its_metrics_options(capsys: pytest.CaptureFixture[str]) -> None:
    app = "tests.cli_app:kit"
    assert main(["--app", app, "worker", "--threads", "g=1", "--metrics-port", "70000"]) == 2
    assert "not a TCP port" in capsys.readouterr().err
    assert main(["--app", app, "worker", "--threads", "g=1", "--metrics-host", "0.0.0.0"]) == 2
    assert "--metrics-host needs --metrics-port" in capsys.readouterr().err
