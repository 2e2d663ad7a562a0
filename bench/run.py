"""Benchmarks of taskkit against its peers (issue 6). Run through ``nox -s bench``.

    python bench/run.py                      # the full suite: every peer, 3 runs
    python bench/run.py --quick              # a smoke run: tiny sizes, 1 run, raw + taskkit
    python bench/run.py --only taskkit,rq --runs 5 --n 5000
    python bench/run.py --workloads E        # workload E only: the Django backends
    python bench/run.py --only taskkit-async,arq,taskiq --workloads B-async,B-async-redis,C-async \
        --doc-block issue13 --update-doc     # a subset, into its own block of the doc

Each peer runs from its own virtualenv under ``bench/.venvs/`` (built on first use), every
Redis system talks to one private ``redis-server`` started here, every E system to its own
private database (PostgreSQL at ``BENCH_PG``, default 127.0.0.1:5432, or a SQLite file), and
every run has a hard time limit. Progress goes to stderr; the markdown tables to stdout; raw
numbers to ``bench/results/latest.json`` (``latest-e.json`` for a run of E alone); the
charts to ``docs/_static/bench.svg`` and ``docs/_static/bench-e.svg``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import functools
import importlib
import importlib.util
import json
import logging
import os
import platform
import shlex
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import chart
import report
from databases import BenchDatabases, postgres_available, server_version_pg
from envs import ensure_env, installed_versions
from peers import (
    ASYNC_CONCURRENCY,
    E_WORKLOADS,
    SELECTABLE,
    WORKLOADS,
    System,
    peer_named,
    systems_for,
)
from procs import AdapterError
from redis_server import PrivateRedis
from workloads import Context, drain, enqueue, idle, roundtrip

log = logging.getLogger("bench")

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DOC = ROOT / "docs" / "performance.md"
DOC_START = "<!-- bench:results:start -->"
DOC_END = "<!-- bench:results:end -->"
#: The Redis suite's block of the doc (``--doc-block``); ``results`` is the main one.
MAIN_BLOCK = "results"
DOC_E_START = "<!-- bench:e:start -->"
DOC_E_END = "<!-- bench:e:end -->"


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: n=200, 50 round trips, 1 run, 2 s idle window, "
                        "raw + taskkit unless --only says otherwise")
    parser.add_argument("--only", default="",
                        help="comma-separated peers (raw, taskkit, taskkit-fn, taskkit-async, "
                        "taskkit024, rq, celery, dramatiq, huey, arq, taskiq; for E: "
                        "taskkit-django-pg, "
                        "taskkit-django-sqlite, django-tasks-pg, django-tasks-sqlite, "
                        "procrastinate)")
    parser.add_argument("--workloads", default="",
                        help=f"comma-separated subset of {','.join(SELECTABLE)}; E selects "
                        f"the Django backends' {','.join(E_WORKLOADS)} (a plain A/B/C name "
                        "selects that workload in both suites; default: everything)")
    parser.add_argument("--runs", type=int, default=None, help="runs per measurement (3)")
    parser.add_argument("--n", type=int, default=None,
                        help="tasks in A and B (20000, as issue 6 asks; a system that cannot "
                        "finish them within --budget reports the rate of what it finished)")
    parser.add_argument("--rt-n", type=int, default=None, help="round trips in C (500)")
    parser.add_argument("--idle-seconds", type=float, default=None,
                        help="D's measuring window (10)")
    parser.add_argument("--budget", type=float, default=5.0,
                        help="seconds an enqueue run or a drain may take; a slower system "
                        "reports the rate of what it finished in that time (5; the drain's "
                        "fill gets twice that)")
    parser.add_argument("--rt-budget", type=float, default=None,
                        help="seconds C's round trips may take per run (10)")
    parser.add_argument("--defaults-runs", type=int, default=1,
                        help="runs of the peers' out-of-the-box variants (1: they show the "
                        "cost of not tuning; the tuned rows get --runs)")
    parser.add_argument("--no-defaults", action="store_true",
                        help="skip the out-of-the-box variants of the peers")
    parser.add_argument("--cache-dir", type=Path, default=HERE / ".venvs",
                        help="where the peers' virtualenvs live")
    parser.add_argument("--json", type=Path, default=None, help="raw results file")
    parser.add_argument("--chart", type=Path, default=None, help="SVG chart file")
    parser.add_argument("--update-doc", action="store_true",
                        help=f"replace the results block of {DOC.relative_to(ROOT)}")
    parser.add_argument("--doc-block", default=MAIN_BLOCK, metavar="NAME",
                        help="the block of the Redis suite's tables: <!-- bench:NAME:start "
                        "--> ... <!-- bench:NAME:end --> (default: the main results block); "
                        "another name also moves the default JSON and chart to "
                        "bench/results/NAME.*, so a partial run leaves the main ones alone")
    parser.add_argument("--replot", type=Path, default=None, metavar="JSON",
                        help="measure nothing: re-render the tables, chart (and, with "
                        "--update-doc, the doc) from a results file of an earlier run")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    quick = args.quick
    args.runs = args.runs or (1 if quick else 3)
    args.n = args.n or (200 if quick else 20000)
    args.rt_n = args.rt_n or (50 if quick else 500)
    args.idle_seconds = args.idle_seconds or (2.0 if quick else 10.0)
    args.rt_budget = args.rt_budget or 10.0
    args.peers = [p for p in args.only.split(",") if p] or (["raw", "taskkit"] if quick else None)
    args.workload_list = [w for w in args.workloads.split(",") if w] or list(SELECTABLE)
    unknown = set(args.workload_list) - set(SELECTABLE)
    if unknown:
        parser.error(f"unknown workloads: {', '.join(sorted(unknown))}")
    only_e = not set(args.workload_list) & set(WORKLOADS) or bool(
        args.peers and all(peer_named(p).suite == "E" for p in args.peers))
    results = HERE / "results"
    stem = "quick" if quick else ("latest-e" if only_e else "latest")
    if args.doc_block != MAIN_BLOCK and not quick:
        stem = args.doc_block
    args.json = args.json or results / f"{stem}.json"
    main_chart = ROOT / "docs/_static/bench.svg"
    args.chart = args.chart or (main_chart if stem in ("latest", "latest-e")
                                else results / f"{stem}.svg")
    # Workload E gets its own chart beside the main one (bench.svg -> bench-e.svg).
    args.chart_e = args.chart.with_name(args.chart.stem + "-e.svg")
    if args.no_defaults or quick:
        args.with_defaults = False
    else:
        args.with_defaults = True
    return args


def source_revision() -> str:
    """The commit the taskkit code under test comes from (``+dirty`` with local changes).

    Asked of the checkout that ``taskkit`` is imported from (the adapters run under this
    interpreter), which is not this harness's when a venv or ``PYTHONPATH`` points elsewhere.
    """
    spec = importlib.util.find_spec("taskkit")
    origin = Path(spec.origin) if spec is not None and spec.origin else HERE
    try:
        top = subprocess.run(["git", "-C", str(origin.parent), "rev-parse", "--show-toplevel"],
                             capture_output=True, text=True, timeout=10).stdout.strip()
        tree = top or str(ROOT)
        head = subprocess.run(["git", "-C", tree, "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", tree, "status", "--porcelain", "--", "taskkit-core",
             "taskkit-redis", "taskkit-django"],
            capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return (head or "unknown") + ("+dirty" if dirty else "")


def machine_info() -> dict[str, Any]:
    model = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "memory_gib": round(mem_gib, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "load_average_at_start": os.getloadavg(),
    }


class Progress:
    """A tqdm bar on stderr when tqdm is installed, plain log lines otherwise."""

    def __init__(self, total: int) -> None:
        self._bar: Any = None
        try:
            # Imported by name: tqdm is optional and ships no type information.
            tqdm = importlib.import_module("tqdm").tqdm
        except ImportError:
            pass
        else:
            self._bar = tqdm(total=total, file=sys.stderr, unit="run", dynamic_ncols=True)
        self.total = total
        self.done = 0

    def step(self, text: str) -> None:
        if self._bar is not None:
            self._bar.set_description_str(text)
        else:
            log.info("[%d/%d] %s", self.done + 1, self.total, text)

    def advance(self) -> None:
        self.done += 1
        if self._bar is not None:
            self._bar.update(1)

    def write(self, text: str) -> None:
        if self._bar is not None:
            self._bar.write(text, file=sys.stderr)
        else:
            log.info("%s", text)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


def prepare_envs(systems: list[System], cache: Path) -> tuple[dict[str, str], dict[str, Any]]:
    """Build (or reuse) each peer's virtualenv; return its Python and the versions found."""
    pythons: dict[str, str] = {}
    versions: dict[str, Any] = {}
    for system in systems:
        peer = system.peer
        if peer.name in pythons or peer.name in versions:
            continue
        if peer.requirements:
            python = ensure_env(cache, peer.env_name, list(peer.requirements))
            pythons[peer.name] = str(python)
        else:
            python = Path(sys.executable)
        versions[peer.name] = installed_versions(python, list(peer.distributions))
    return pythons, versions


def unavailable(system: System) -> str | None:
    """None when ``system`` can run here, else the reason it cannot."""
    module = {"taskkit": "taskkit_redis", "taskkit-fn": "taskkit_redis",
              "taskkit-async": "taskkit_redis"}.get(system.peer.name)
    if system.peer.name.startswith("taskkit-django"):
        module = "taskkit_django"
    if module is not None:
        try:
            importlib.import_module(module)
        except ImportError as exc:
            return f"{module} is not importable ({exc})"
    if system.peer.database == "postgresql":
        return postgres_available()
    return None


def wants(system: System, workload: str, wanted: list[str]) -> bool:
    """Whether the selection asks ``system`` to run ``workload``."""
    if not system.runs(workload):
        return False
    return workload in wanted or (system.peer.suite == "E" and "E" in wanted)


def _enqueue(ctx: Context, *, system: System, n: int, bulk: bool, timeout: float) -> Any:
    return enqueue(ctx, system, n, bulk, timeout)


def _drain(
    ctx: Context, *, system: System, workload: str, n: int, procs: int, timeout: float,
    rates: dict[tuple[str, str], float], threads: int = 4, task: str = "noop",
) -> Any:
    seen = (system.key, workload)
    result = drain(ctx, system, n, procs, threads, timeout, rates.get(seen), task)
    rates[seen] = max(float(result["value"]), rates.get(seen, 0.0))
    return result


def _roundtrip(ctx: Context, *, system: System, n: int, timeout: float, threads: int = 4) -> Any:
    return roundtrip(ctx, system, n, 20, timeout, threads)


@contextmanager
def _guard(record: list[dict[str, Any]], progress: Progress, what: str) -> Iterator[None]:
    try:
        yield
    except AdapterError as exc:
        progress.write(f"{what}: {exc}")
        record.append({"error": str(exc)})


def run_suite(args: argparse.Namespace) -> dict[str, Any]:
    wanted = args.workload_list
    systems = [s for s in systems_for(args.peers, args.with_defaults)
               if any(wants(s, w, wanted) for w in WORKLOADS)]
    for system in list(systems):
        reason = unavailable(system)
        if reason:
            log.warning("skipping %s: %s", system.key, reason)
            systems.remove(system)
    pythons, versions = prepare_envs(systems, args.cache_dir)
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    log_dir = HERE / "results" / "raw" / stamp
    n, timeout = args.n, 60.0 + args.n / 100.0

    per_run: list[tuple[str, System, Callable[[Context], Any]]] = []
    rt_timeout = 180.0
    rates: dict[tuple[str, str], float] = {}
    coroutines = ASYNC_CONCURRENCY
    for system in systems:
        drain_ = functools.partial(_drain, system=system, n=n, timeout=timeout, rates=rates)
        plan: dict[str, Callable[[Context], Any]] = {
            "A-one": functools.partial(_enqueue, system=system, n=n, bulk=False, timeout=timeout),
            "A-bulk": functools.partial(_enqueue, system=system, n=n, bulk=True, timeout=timeout),
            "B1": functools.partial(drain_, workload="B1", procs=1),
            "B2": functools.partial(drain_, workload="B2", procs=2),
            "C": functools.partial(_roundtrip, system=system, n=args.rt_n, timeout=rt_timeout),
            "B-async": functools.partial(drain_, workload="B-async", procs=1,
                                         threads=coroutines),
            "B-async-redis": functools.partial(drain_, workload="B-async-redis", procs=1,
                                               threads=coroutines, task="redis"),
            "C-async": functools.partial(_roundtrip, system=system, n=args.rt_n,
                                         timeout=rt_timeout, threads=coroutines),
        }
        for workload, fn in plan.items():
            if wants(system, workload, wanted):
                per_run.append((workload, system, fn))
    idle_systems = [s for s in systems if wants(s, "D", wanted)]
    defaults_steps = sum(1 for _, s, _ in per_run if s.variant == "defaults")
    total = args.runs * (len(per_run) + (1 if idle_systems else 0)) - max(
        0, args.runs - args.defaults_runs) * defaults_steps

    results: dict[str, dict[str, list[dict[str, Any]]]] = {s.key: {} for s in systems}
    with ExitStack() as stack:
        server = None
        if any(s.peer.suite == "redis" for s in systems):
            server = stack.enter_context(PrivateRedis())
        e_systems = [s for s in systems if s.peer.suite == "E"]
        databases = stack.enter_context(BenchDatabases()) if e_systems else None
        ctx = Context(server, pythons, log_dir, budget=args.budget,
                      roundtrip_budget=args.rt_budget, databases=databases)
        for system in e_systems:
            log.info("%s: migrating its template database (untimed)", system.key)
            ctx.setup(system)
        progress = Progress(total)
        meta = {
            "command": "python bench/run.py " + shlex.join(sys.argv[1:]),
            "started": stamp,
            "machine": machine_info(),
            "redis_server": server.version() if server is not None else None,
            "postgresql_server": server_version_pg() if any(
                s.peer.database == "postgresql" for s in e_systems) else None,
            "taskkit_revision": source_revision(),
            "versions": versions,
            "n": n,
            "roundtrips": args.rt_n,
            "idle_seconds": args.idle_seconds,
            "runs": args.runs,
            "budget_s": args.budget,
            "defaults_runs": args.defaults_runs,
            "roundtrip_budget_s": args.rt_budget,
        }
        try:
            # Runs are interleaved (run 1 of every system, then run 2, ...) so a burst of
            # load from elsewhere on the machine does not land on one system only.
            for run in range(args.runs):
                for workload, system, fn in per_run:
                    if system.variant == "defaults" and run >= args.defaults_runs:
                        continue
                    progress.step(f"run {run + 1}/{args.runs} {system.key} {workload}")
                    record = results[system.key].setdefault(workload, [])
                    began = time.monotonic()
                    with _guard(record, progress, f"{system.key} {workload}"):
                        record.append(fn(ctx))
                    # Wall time of the whole step (fill, start-up, shutdown included).
                    record[-1]["wall_s"] = round(time.monotonic() - began, 2)
                    progress.advance()
                if idle_systems:
                    these = [s for s in idle_systems
                             if s.variant != "defaults" or run < args.defaults_runs]
                    progress.step(f"run {run + 1}/{args.runs} D idle "
                                  f"({len(these)} side by side)")
                    measured = idle(ctx, these, args.idle_seconds, 8, 60.0)
                    for system in these:
                        results[system.key].setdefault("D", []).append(
                            measured.get(system.key, {"error": "not measured"}))
                    progress.advance()
        finally:
            progress.close()
    meta["machine"]["load_average_at_end"] = os.getloadavg()
    summary = report.summaries(results)
    redis_systems = [s for s in systems if s.peer.suite == "redis"]
    has_taskkit = any(s.peer.name == "taskkit" for s in systems)
    checks = report.targets(redis_systems, summary) if has_taskkit else []
    issue13 = report.issue13_targets(redis_systems, summary)
    has_e = any(s.peer.name == "taskkit-django-pg" for s in systems)
    e_checks = report.e_targets(summary) if has_e else []
    return {
        "meta": meta,
        "systems": [
            {"key": s.key, "label": s.label, "peer": s.peer.name, "variant": s.variant,
             "config": s.config, "concurrency": s.peer.concurrency,
             "bulk_api": s.peer.bulk_api}
            for s in systems
        ],
        "results": results,
        "summary": summary,
        "targets": checks,
        "issue13_targets": issue13,
        "e_targets": e_checks,
        "_systems": systems,
    }


def _suite(outcome: dict[str, Any], suite: str) -> list[System]:
    return [s for s in outcome["_systems"] if s.peer.suite == suite]


def _header(meta: dict[str, Any], e: bool) -> str:
    machine = meta["machine"]
    if e:
        servers = (f"PostgreSQL {meta.get('postgresql_server') or '—'} (local, default "
                   "settings), SQLite files in a temp directory")
        what = f"{meta['roundtrips']} round trips for C"
    else:
        servers = f"redis-server {meta['redis_server']}"
        what = (f"{meta['roundtrips']} round trips for C, a {meta['idle_seconds']:g} s window "
                "for D")
    return (
        f"Measured {meta['started']} with `{meta['command']}`: n={meta['n']} tasks for A and B, "
        f"{what}, taskkit at commit {meta.get('taskkit_revision', 'unknown')}, "
        f"{meta['runs']} run(s) each; {servers}; "
        f"{machine['cores']} cores ({machine['cpu']}), Python {machine['python']}; load "
        f"average at start {', '.join(f'{x:.1f}' for x in machine['load_average_at_start'])}."
    )


def _versions(meta: dict[str, Any], systems: list[System]) -> str:
    peers = {s.peer.name for s in systems}
    return "Versions: " + "; ".join(
        f"{peer}: " + ", ".join(f"{d} {v}" for d, v in vs.items())
        for peer, vs in meta["versions"].items() if peer in peers
    ) + "."


def render_markdown(outcome: dict[str, Any]) -> tuple[str, str]:
    """The markdown of the Redis suite (A-D) and of workload E ('' for a suite not run)."""
    meta = outcome["meta"]
    redis_md = e_md = ""
    systems = _suite(outcome, "redis")
    if systems:
        parts = [_header(meta, False), "", report.tables(systems, outcome["summary"])]
        measured = report.measured(outcome["targets"])
        if measured:
            parts += ["", "Issue 6 targets (taskkit with its defaults, results stored):", "",
                      report.targets_table(measured)]
        measured = report.measured(outcome.get("issue13_targets", []))
        if measured:
            parts += ["", "Issue 13 targets (function tasks and asyncio, taskkit's defaults):",
                      "", report.targets_table(measured)]
        parts += ["", _versions(meta, systems)]
        redis_md = "\n".join(parts) + "\n"
    systems = _suite(outcome, "E")
    if systems:
        parts = [_header(meta, True), "", report.e_table(systems, outcome["summary"])]
        if outcome.get("e_targets"):
            parts += ["", "Issue 6 target for E (taskkit-django on PostgreSQL, its defaults):",
                      "", report.targets_table(outcome["e_targets"])]
        parts += ["", _versions(meta, systems)]
        e_md = "\n".join(parts) + "\n"
    return redis_md, e_md


def update_doc(markdown: str, start_marker: str = DOC_START, end_marker: str = DOC_END) -> None:
    text = DOC.read_text()
    start, end = text.find(start_marker), text.find(end_marker)
    if start < 0 or end < start:
        raise SystemExit(f"{DOC} lacks the {start_marker} ... {end_marker} markers")
    DOC.write_text(text[: start + len(start_marker)] + "\n" + markdown + text[end:])


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        stream=sys.stderr, format="%(asctime)s %(name)s %(message)s")
    if args.replot is not None:
        outcome = json.loads(args.replot.read_text())
        outcome["_systems"] = [System(peer_named(s["peer"]), s["variant"], i)
                               for i, s in enumerate(outcome["systems"])]
    else:
        outcome = run_suite(args)
    redis_md, e_md = render_markdown(outcome)
    sys.stdout.write(redis_md + ("\n" if redis_md and e_md else "") + e_md)
    if args.replot is None:
        payload = {k: v for k, v in outcome.items() if not k.startswith("_")}
        report.write_json(args.json, payload)
    meta = outcome["meta"]
    subtitle = (f"{meta['started']} · {meta['machine']['cores']} cores · n={meta['n']} · "
                f"{meta['runs']} run(s), medians")
    block = (f"<!-- bench:{args.doc_block}:start -->", f"<!-- bench:{args.doc_block}:end -->")
    for suite, path, text, marks in (
        ("redis", args.chart, redis_md, block),
        ("E", args.chart_e, e_md, (DOC_E_START, DOC_E_END)),
    ):
        if not text:
            continue
        chart.write(path, _suite(outcome, suite), outcome["summary"],
                    subtitle + (" · workload E" if suite == "E" else ""))
        log.info("chart: %s", path)
        if args.update_doc:
            update_doc(text, *marks)
            log.info("updated %s", DOC)
    if args.replot is None:
        log.info("raw results: %s", args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
