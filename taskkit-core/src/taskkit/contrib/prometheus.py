"""Prometheus metrics of a supervisor's workers: a plugin over taskkit's lifecycle hooks.

Turn it on with ``taskkit worker --metrics-port 9100`` or ``KitConfig(metrics_port=9100)``,
or give the kit the plugin yourself (to tune it)::

    kit = Kit(backend, plugins=[PrometheusExporter(port=9100, flush_interval=5.0)])

It needs the extra: ``pip install 'taskkit-core[prometheus]'``. The endpoint is served by the
supervisor (``Kit.start``, ``taskkit worker``) and binds to 127.0.0.1 unless told otherwise;
nothing listens without a port. :data:`METRICS` lists what it serves.

One endpoint covers every worker process of the supervisor, aggregated in the supervisor:

* each worker process counts in plain Python (a lock and a few dict updates per task, no
  ``prometheus_client`` objects) and writes its counts as a JSON snapshot into a directory of
  the supervisor's every ``flush_interval`` seconds and once more when it stops;
* the supervisor serves ``/metrics``: each scrape sums the snapshots (a dead worker keeps its
  counters, its gauges go once it is replaced), what the supervisor counted itself (restarts,
  and the tasks of a worker that runs in its process, as with the in-memory backend), and the
  queue figures one thread of its own reads from the backend every ``stats_interval``
  seconds (never per task, never per scrape).

Why not ``prometheus_client``'s multiprocess mode: an environment variable turns it on, which
must be set before ``prometheus_client`` is first imported and then applies to every metric of
the process, the application's own included. A directory per supervisor keeps two kits (or two
supervisors in one test process) apart and works alike for ``fork``, ``spawn`` and thread
workers. The price: a worker killed outright (SIGKILL, ``os._exit``) loses what it counted
since its last snapshot, at most ``flush_interval`` seconds of it.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import socketserver
import tempfile
import threading
import time
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer

from prometheus_client import CollectorRegistry, make_wsgi_app
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

from .._health import BackendHealth
from .._task import Task
from ..backend import Backend
from ..errors import ConfigurationError, UnknownTask
from ..hookspecs import hookimpl
from ._prometheus_counts import DEFAULT_BUCKETS, FORK_SAFE, Counts, Flusher, read_snapshots

__all__ = ["DEFAULT_BUCKETS", "METRICS", "MetricInfo", "PrometheusExporter"]

log = logging.getLogger("taskkit.metrics")


@dataclass(frozen=True)
class MetricInfo:
    """One metric the exporter serves, as the docs (and a dashboard generator) list it.

    :ivar name: the exposed name (counters end in ``_total``).
    :ivar kind: ``"counter"``, ``"gauge"`` or ``"histogram"``.
    :ivar labels: its label names.
    :ivar help: what it means (the ``# HELP`` text).
    """

    name: str
    kind: str
    labels: tuple[str, ...]
    help: str


#: Every metric the exporter serves.
METRICS: tuple[MetricInfo, ...] = (
    MetricInfo(
        "taskkit_tasks_finished_total",
        "counter",
        ("group", "name", "outcome"),
        "Attempts that ended, by outcome: succeeded, retried (failed and queued again), "
        "failed, discarded, dead (became a dead letter).",
    ),
    MetricInfo(
        "taskkit_task_duration_seconds",
        "histogram",
        ("group", "name"),
        "Seconds a handler ran, per attempt, whatever its outcome.",
    ),
    MetricInfo(
        "taskkit_tasks_running",
        "gauge",
        ("group",),
        "Handlers running now in the supervisor's workers.",
    ),
    MetricInfo(
        "taskkit_leases_reclaimed_total",
        "counter",
        ("group",),
        "Tasks claimed again after an earlier delivery ended without an outcome (its worker "
        "died or lost its lease).",
    ),
    MetricInfo(
        "taskkit_stale_writes_rejected_total",
        "counter",
        ("group",),
        "Outcomes the backend refused because the worker's claim was stale (the task had "
        "been reclaimed by another worker).",
    ),
    MetricInfo(
        "taskkit_dead_letters_total",
        "counter",
        ("group",),
        "Tasks that became dead letters (they kept killing workers, or no worker knew them).",
    ),
    MetricInfo(
        "taskkit_scheduler_lag_seconds",
        "gauge",
        ("scheduler", "entry"),
        "Seconds from the last fired schedule point to its firing, on the backend's clock.",
    ),
    MetricInfo(
        "taskkit_worker_restarts_total",
        "counter",
        (),
        "Worker processes the supervisor started in place of one that died or recycled.",
    ),
    MetricInfo(
        "taskkit_queue_depth",
        "gauge",
        ("group",),
        "Tasks of the group waiting to run (queued; those due later too until the backend "
        "reports them apart), read every stats_interval seconds.",
    ),
    MetricInfo(
        "taskkit_queue_running",
        "gauge",
        ("group",),
        "Tasks of the group under a lease, on every worker of the fleet (backend figure).",
    ),
    MetricInfo(
        "taskkit_queue_scheduled",
        "gauge",
        ("group",),
        "Tasks of the group due later (served once the backend reports them).",
    ),
    MetricInfo(
        "taskkit_queue_dead_letters",
        "gauge",
        ("group",),
        "Dead letters of the group now stored (served once the backend reports them).",
    ),
    MetricInfo(
        "taskkit_oldest_due_age_seconds",
        "gauge",
        ("group",),
        "Seconds the group's oldest due task has waited past its due time, on the backend's "
        "clock (served once the backend reports it).",
    ),
)

#: ``QueueStats`` fields (and those of a richer ``group_stats``) -> the gauge serving each.
_STATS_GAUGES = {
    "queued": "taskkit_queue_depth",
    "running": "taskkit_queue_running",
    "scheduled": "taskkit_queue_scheduled",
    "dead_letters": "taskkit_queue_dead_letters",
    "oldest_due_age": "taskkit_oldest_due_age_seconds",
}
_INFO = {metric.name: metric for metric in METRICS}


# --------------------------------------------------------------------------- the plugin


class PrometheusExporter:
    """Counts what a supervisor's workers do and serves it on ``http://host:port/metrics``.

    A kit plugin (``Kit(..., plugins=[PrometheusExporter(port=9100)])``), or made for you by
    ``KitConfig.metrics_port`` / ``taskkit worker --metrics-port``. It listens while a
    supervisor runs (from ``taskkit_supervisor_started`` to ``taskkit_supervisor_stopped``)
    and serves one supervisor at a time.

    :param port: the TCP port; 0 picks a free one (see :attr:`address`, and the INFO line
        the supervisor logs).
    :param host: the address to bind to; the default serves this host only.
    :param buckets: the upper bounds of the duration histogram, in seconds.
    :param flush_interval: seconds between a worker process's snapshots.
    :param stats_interval: seconds between reads of the queue figures from the backend.
    :raises ConfigurationError: a bad argument.
    """

    def __init__(
        self,
        port: int = 0,
        host: str = "127.0.0.1",
        *,
        buckets: Sequence[float] = DEFAULT_BUCKETS,
        flush_interval: float = 1.0,
        stats_interval: float = 5.0,
    ) -> None:
        if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
            raise ConfigurationError(f"port must be a TCP port (0 to 65535), not {port!r}")
        if not isinstance(host, str) or not host.strip():
            raise ConfigurationError(f"host must be a host name or address, not {host!r}")
        bounds = tuple(float(b) for b in buckets)
        if not bounds or list(bounds) != sorted(set(bounds)) or bounds[-1] == float("inf"):
            raise ConfigurationError(
                f"buckets must be increasing finite upper bounds, not {buckets!r}"
            )
        for name, value in (("flush_interval", flush_interval), ("stats_interval", stats_interval)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                raise ConfigurationError(f"{name} must be seconds > 0, not {value!r}")
        self.port = port
        self.host = host
        self.buckets = bounds
        self.flush_interval = float(flush_interval)
        self.stats_interval = float(stats_interval)
        #: Inherited by the workers (forked or unpickled): where they write their snapshots
        #: and which process is the supervisor's (it counts its own worker live instead).
        self._dir: Path | None = None
        self._supervisor_pid: int | None = None
        self._reset_process_state()
        self._supervisor: _Supervising | None = None

    def _reset_process_state(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counts | None = None
        self._counts_pid: int | None = None
        self._flusher: Flusher | None = None

    def __getstate__(self) -> dict[str, Any]:
        # What a ``spawn`` worker needs: the settings and the supervisor's directory.
        keep = ("port", "host", "buckets", "flush_interval", "stats_interval")
        state = {name: self.__dict__[name] for name in keep}
        return {**state, "_dir": self._dir, "_supervisor_pid": self._supervisor_pid}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._reset_process_state()
        self._supervisor = None

    def __repr__(self) -> str:
        return f"PrometheusExporter(host={self.host!r}, port={self.port!r})"

    @property
    def address(self) -> tuple[str, int] | None:
        """``(host, port)`` being served, or None while no supervisor runs it."""
        supervising = self._supervisor
        return None if supervising is None else supervising.address

    @property
    def registry(self) -> CollectorRegistry:
        """A registry holding the exporter's collector (what ``/metrics`` renders)."""
        registry = CollectorRegistry(auto_describe=False)
        registry.register(_Collector(self))
        return registry

    def _process_counts(self) -> Counts:
        """This process's counts (fresh in a new process: a fork does not inherit them)."""
        counts = self._counts
        if counts is not None and self._counts_pid == os.getpid():
            return counts
        with FORK_SAFE.lock:
            if self._counts is None or self._counts_pid != os.getpid():
                self._counts = Counts(self.buckets)
                self._counts_pid = os.getpid()
                self._flusher = None
            return self._counts

    # ------------------------------------------------------------------ supervisor hooks

    @hookimpl
    def taskkit_supervisor_started(
        self, supervisor_id: str, groups: list[str], backend: Backend
    ) -> None:
        if self._supervisor is not None:
            log.error(
                "metrics: %r already serves a supervisor in this process; %s gets no endpoint",
                self,
                supervisor_id,
            )
            return
        try:
            supervising = _Supervising(self, supervisor_id, groups, backend)
        except OSError as exc:
            log.error(
                "metrics: cannot listen on %s:%d (%s); running without a metrics endpoint",
                self.host,
                self.port,
                exc,
            )
            return
        self._supervisor = supervising
        self._dir = supervising.directory
        self._supervisor_pid = os.getpid()
        host, port = supervising.address
        shown = f"[{host}]" if ":" in host else host
        log.info("metrics: serving http://%s:%d/metrics", shown, port)

    @hookimpl
    def taskkit_supervisor_stopped(self, supervisor_id: str) -> None:
        supervising = self._supervisor
        if supervising is None or supervising.supervisor_id != supervisor_id:
            return
        self._supervisor = None
        self._dir = None
        supervising.close()

    @hookimpl
    def taskkit_worker_restarted(
        self, worker_id: str, replaced: str, exit_code: int | None
    ) -> None:
        supervising = self._supervisor
        if supervising is not None:
            supervising.restarted(replaced)

    # ------------------------------------------------------------------ worker hooks

    @hookimpl
    def taskkit_worker_started(self, worker_id: str, groups: list[str]) -> None:
        counts = self._process_counts()
        if self._dir is None or os.getpid() == self._supervisor_pid:
            return  # not supervised, or in the supervisor's process: counted live there
        with FORK_SAFE.lock:
            if self._flusher is None:
                self._flusher = Flusher(counts, self._dir / f"{worker_id}.json", worker_id)
                self._flusher.start(self.flush_interval)

    @hookimpl
    def taskkit_worker_stopped(self, worker_id: str) -> None:
        flusher = self._flusher
        if flusher is not None and self._counts_pid == os.getpid():
            self._flusher = None
            flusher.stop()  # writes the last snapshot, marked as stopped

    @hookimpl(wrapper=True)
    def taskkit_execute_task(
        self, task: Task, call: Callable[[], Any]
    ) -> Generator[None, Any, Any]:
        counts = self._process_counts()
        counts.began(task.group)
        began = time.perf_counter()
        ran = True
        try:
            return (yield)
        except UnknownTask:
            ran = False  # nothing here knows the task: it did not run
            raise
        finally:
            counts.ended(task.group, task.name, time.perf_counter() - began if ran else None)

    @hookimpl
    def taskkit_task_succeeded(self, task: Task, duration: float) -> None:
        self._process_counts().finish(task, "succeeded")

    @hookimpl
    def taskkit_task_retried(self, task: Task, exception: BaseException, delay: float) -> None:
        self._process_counts().finish(task, "retried")

    @hookimpl
    def taskkit_task_failed(
        self, task: Task, exception: BaseException | None, message: str
    ) -> None:
        self._process_counts().finish(task, "failed")

    @hookimpl
    def taskkit_task_discarded(self, task: Task, reason: str) -> None:
        self._process_counts().finish(task, "discarded")

    @hookimpl
    def taskkit_task_dead_lettered(self, task: Task, reason: str) -> None:
        self._process_counts().finish(task, "dead")

    @hookimpl
    def taskkit_task_reclaimed(self, task: Task, worker_id: str) -> None:
        counts = self._process_counts()
        counts.count(counts.reclaimed, task.group)

    @hookimpl
    def taskkit_outcome_rejected(self, task: Task, action: str) -> None:
        counts = self._process_counts()
        counts.count(counts.rejected, task.group)

    @hookimpl
    def taskkit_schedule_fired(self, scheduler: str, entry: str, task: Task, lag: float) -> None:
        point = task.scheduled if task.scheduled is not None else task.created
        self._process_counts().fired(scheduler, entry, point, lag)


# --------------------------------------------------------------------------- the supervisor's side


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass  # a scrape is not worth a log line


class _Server(socketserver.ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _Supervising:
    """What the exporter runs in a supervisor's process: the directory its workers write
    to, the HTTP endpoint, the thread reading queue figures, and the restart count."""

    def __init__(
        self, exporter: PrometheusExporter, supervisor_id: str, groups: list[str], backend: Backend
    ) -> None:
        self.supervisor_id = supervisor_id
        self.groups = tuple(groups)
        self.restarts = 0
        self.dead_workers: set[str] = set()
        self.lock = threading.Lock()
        family = socket.AF_INET6 if ":" in exporter.host else socket.AF_INET
        server_class = type("_MetricsServer", (_Server,), {"address_family": family})
        self._server = server_class((exporter.host, exporter.port), _QuietHandler)
        self.directory = Path(tempfile.mkdtemp(prefix="taskkit-metrics-"))
        self.address: tuple[str, int] = (exporter.host, self._server.server_address[1])
        self._server.set_app(make_wsgi_app(exporter.registry))
        self._stats = _QueueStats(backend, self.groups, exporter.stats_interval)
        self._http = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.5},
            name="taskkit-metrics-http",
            daemon=True,
        )
        self._http.start()

    def restarted(self, replaced: str) -> None:
        with self.lock:
            self.restarts += 1
            self.dead_workers.add(replaced)

    def queue_figures(self) -> dict[str, dict[str, float]]:
        return self._stats.latest()

    def snapshots(self) -> Iterator[dict[str, Any]]:
        """The snapshots the workers wrote."""
        return read_snapshots(self.directory)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._http.join(5.0)
        self._stats.close()
        shutil.rmtree(self.directory, ignore_errors=True)


class _QueueStats:
    """Reads each group's queue figures on a thread of its own, every ``interval`` seconds.

    One thread, so a backend with a connection per thread (Django) opens one; a clone of the
    backend, so its connections are its own and closed with it.
    """

    def __init__(self, backend: Backend, groups: Sequence[str], interval: float) -> None:
        self._backend = backend
        self._groups = tuple(groups)
        self._interval = interval
        self._figures: dict[str, dict[str, float]] = {}
        self._stop = threading.Event()
        self._health = BackendHealth(log, backend.name)
        self._thread = threading.Thread(target=self._run, name="taskkit-metrics-stats", daemon=True)
        if self._groups:
            self._thread.start()

    def latest(self) -> dict[str, dict[str, float]]:
        return self._figures  # replaced whole, never changed in place

    def _run(self) -> None:
        own = self._backend.supports_processes  # a single-process store is shared as is
        backend = self._backend.clone() if own else self._backend
        try:
            while True:
                try:
                    self._figures = {group: _read_stats(backend, group) for group in self._groups}
                    self._health.succeeded()
                except Exception as exc:
                    self._figures = {}  # no figures rather than stale ones
                    self._health.failed("reading queue figures for the metrics", exc)
                if self._stop.wait(self._interval):
                    return
        finally:
            if own:
                try:
                    backend.close()
                except Exception:
                    log.debug("metrics: closing the stats backend failed", exc_info=True)

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5.0)


def _read_stats(backend: Backend, group: str) -> dict[str, float]:
    """The numeric queue figures of ``group``: ``backend.group_stats(group)`` where the
    backend keeps them (``supports_fleet_stats``: queued due now, scheduled, running, dead
    letters, oldest due age), else ``backend.stats(group)`` (queued and running)."""
    stats = backend.group_stats(group) if backend.supports_fleet_stats else backend.stats(group)
    figures = {}
    for field in _STATS_GAUGES:
        value = getattr(stats, field, None)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            figures[field] = float(value)
    return figures


class _Collector:
    """Renders the exporter's figures at each scrape."""

    def __init__(self, exporter: PrometheusExporter) -> None:
        self._exporter = exporter

    def collect(self) -> Iterable[Metric]:
        exporter = self._exporter
        supervising = exporter._supervisor
        totals = Counts(exporter.buckets)
        groups: tuple[str, ...] = ()
        restarts = 0
        queue: dict[str, dict[str, float]] = {}
        if supervising is not None:
            with supervising.lock:
                restarts, dead = supervising.restarts, set(supervising.dead_workers)
            groups = supervising.groups
            queue = supervising.queue_figures()
            for snapshot in supervising.snapshots():
                live = not snapshot.get("stopped") and snapshot.get("worker_id") not in dead
                totals.add(snapshot, gauges=live)
        if exporter._counts is not None and exporter._counts_pid == os.getpid():
            totals.add(exporter._counts.snapshot(), gauges=True)  # a worker in this process
        yield from _families(totals, groups, restarts, queue)


def _family(name: str) -> Any:
    info = _INFO[name]
    if info.kind == "counter":
        return CounterMetricFamily(name.removesuffix("_total"), info.help, labels=info.labels)
    if info.kind == "gauge":
        return GaugeMetricFamily(name, info.help, labels=info.labels)
    return HistogramMetricFamily(name, info.help, labels=info.labels)


def _families(
    totals: Counts,
    groups: Sequence[str],
    restarts: int,
    queue: dict[str, dict[str, float]],
) -> Iterator[Metric]:
    finished = _family("taskkit_tasks_finished_total")
    for (group, name, outcome), n in sorted(totals.finished.items()):
        finished.add_metric([group, name, outcome], n)
    yield finished

    durations = _family("taskkit_task_duration_seconds")
    bounds = [repr(b) for b in totals.buckets] + ["+Inf"]
    for (group, name), (counts, total) in sorted(totals.durations.items()):
        cumulative, seen = [], 0
        for bound, n in zip(bounds, counts):
            seen += n
            cumulative.append((bound, seen))
        durations.add_metric([group, name], cumulative, total[0])
    yield durations

    # Per group: every served group shows 0 before its first event (so rate() has a start).
    for name, table in (
        ("taskkit_tasks_running", totals.running),
        ("taskkit_leases_reclaimed_total", totals.reclaimed),
        ("taskkit_stale_writes_rejected_total", totals.rejected),
        ("taskkit_dead_letters_total", totals.dead),
    ):
        family = _family(name)
        for group in sorted(set(groups) | set(table)):
            family.add_metric([group], table.get(group, 0))
        yield family

    lag = _family("taskkit_scheduler_lag_seconds")
    for (scheduler, entry), (_point, seconds) in sorted(totals.lag.items()):
        lag.add_metric([scheduler, entry], seconds)
    yield lag

    restarted = _family("taskkit_worker_restarts_total")
    restarted.add_metric([], restarts)
    yield restarted

    for field, name in _STATS_GAUGES.items():
        family = _family(name)
        for group in sorted(queue):
            if field in queue[group]:
                family.add_metric([group], queue[group][field])
        yield family
