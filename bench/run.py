"""Benchmarks of taskkit against its peers (issue 6). Run through ``nox -s bench``.

    python bench/run.py                      # the full suite: every peer, 3 runs
    python bench/run.py --quick              # a smoke run: tiny sizes, 1 run, raw + taskkit
    python bench/run.py --only taskkit,rq --runs 5 --n 5000

Each peer runs from its own virtualenv under ``bench/.venvs/`` (built on first use), every
system talks to one private ``redis-server`` started here, and every run has a hard time
limit. Progress goes to stderr; the markdown tables to stdout; raw numbers to
``bench/results/latest.json``; the chart to ``docs/_static/bench.svg``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import functools
import importlib
import json
import logging
import os
import platform
import shlex
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import chart
import report
from envs import ensure_env, installed_versions
from peers import WORKLOADS, System, peer_named, systems_for
from procs import AdapterError
from redis_server import PrivateRedis
from workloads import Context, drain, enqueue, idle, roundtrip

log = logging.getLogger("bench")

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DOC = ROOT / "docs" / "performance.md"
DOC_START = "<!-- bench:results:start -->"
DOC_END = "<!-- bench:results:end -->"


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: n=200, 50 round trips, 1 run, 2 s idle window, "
                        "raw + taskkit unless --only says otherwise")
    parser.add_argument("--only", default="",
                        help="comma-separated peers (raw, taskkit, taskkit024, rq, celery, "
                        "dramatiq, huey, arq, taskiq)")
    parser.add_argument("--workloads", default="",
                        help=f"comma-separated subset of {','.join(WORKLOADS)}")
    parser.add_argument("--runs", type=int, default=None, help="runs per measurement (3)")
    parser.add_argument("--n", type=int, default=None,
                        help="tasks in A and B (5000; issue 6 asks 20000, see "
                        "docs/performance.md for why the default is smaller)")
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
    parser.add_argument("--replot", type=Path, default=None, metavar="JSON",
                        help="measure nothing: re-render the tables, chart (and, with "
                        "--update-doc, the doc) from a results file of an earlier run")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    quick = args.quick
    args.runs = args.runs or (1 if quick else 3)
    args.n = args.n or (200 if quick else 5000)
    args.rt_n = args.rt_n or (50 if quick else 500)
    args.idle_seconds = args.idle_seconds or (2.0 if quick else 10.0)
    args.rt_budget = args.rt_budget or 10.0
    args.peers = [p for p in args.only.split(",") if p] or (["raw", "taskkit"] if quick else None)
    args.workload_list = [w for w in args.workloads.split(",") if w] or list(WORKLOADS)
    unknown = set(args.workload_list) - set(WORKLOADS)
    if unknown:
        parser.error(f"unknown workloads: {', '.join(sorted(unknown))}")
    results = HERE / "results"
    args.json = args.json or results / ("quick.json" if quick else "latest.json")
    args.chart = args.chart or (results / "quick.svg" if quick else ROOT / "docs/_static/bench.svg")
    if args.no_defaults or quick:
        args.with_defaults = False
    else:
        args.with_defaults = True
    return args


def source_revision() -> str:
    """The commit the taskkit code under test comes from (``+dirty`` with local changes)."""
    try:
        head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(ROOT), "status", "--porcelain", "--", "taskkit-core",
             "taskkit-redis"], capture_output=True, text=True, timeout=10).stdout.strip()
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
            python = ensure_env(cache, peer.name, list(peer.requirements))
            pythons[peer.name] = str(python)
        else:
            python = Path(sys.executable)
        versions[peer.name] = installed_versions(python, list(peer.distributions))
    return pythons, versions


def taskkit_available() -> str | None:
    """None when the taskkit Redis backend can run here, else the reason it cannot."""
    try:
        import taskkit_redis  # noqa: F401
    except ImportError as exc:
        return f"taskkit-redis is not importable ({exc})"
    return None


def _enqueue(ctx: Context, *, system: System, n: int, bulk: bool, timeout: float) -> Any:
    return enqueue(ctx, system, n, bulk, timeout)


def _drain(
    ctx: Context, *, system: System, n: int, procs: int, timeout: float,
    rates: dict[tuple[str, int], float],
) -> Any:
    result = drain(ctx, system, n, procs, 4, timeout, rates.get((system.key, procs)))
    rates[(system.key, procs)] = max(float(result["value"]), rates.get((system.key, procs), 0.0))
    return result


def _roundtrip(ctx: Context, *, system: System, n: int, timeout: float) -> Any:
    return roundtrip(ctx, system, n, 20, timeout)


@contextmanager
def _guard(record: list[dict[str, Any]], progress: Progress, what: str) -> Iterator[None]:
    try:
        yield
    except AdapterError as exc:
        progress.write(f"{what}: {exc}")
        record.append({"error": str(exc)})


def run_suite(args: argparse.Namespace) -> dict[str, Any]:
    systems = systems_for(args.peers, args.with_defaults)
    reason = taskkit_available()
    if reason and any(s.peer.name == "taskkit" for s in systems):
        log.warning("skipping taskkit: %s", reason)
        systems = [s for s in systems if s.peer.name != "taskkit"]
    wanted = args.workload_list
    pythons, versions = prepare_envs(systems, args.cache_dir)
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    log_dir = HERE / "results" / "raw" / stamp
    n, timeout = args.n, 60.0 + args.n / 100.0

    per_run: list[tuple[str, System, Callable[[Context], Any]]] = []
    rt_timeout = 180.0
    rates: dict[tuple[str, int], float] = {}
    for system in systems:
        plan: dict[str, Callable[[Context], Any]] = {
            "A-one": functools.partial(_enqueue, system=system, n=n, bulk=False, timeout=timeout),
            "A-bulk": functools.partial(_enqueue, system=system, n=n, bulk=True, timeout=timeout),
            "B1": functools.partial(_drain, system=system, n=n, procs=1, timeout=timeout,
                                    rates=rates),
            "B2": functools.partial(_drain, system=system, n=n, procs=2, timeout=timeout,
                                    rates=rates),
            "C": functools.partial(_roundtrip, system=system, n=args.rt_n, timeout=rt_timeout),
        }
        for workload, fn in plan.items():
            if workload in wanted and system.runs(workload):
                per_run.append((workload, system, fn))
    idle_systems = [s for s in systems if "D" in wanted and s.runs("D")]
    defaults_steps = sum(1 for _, s, _ in per_run if s.variant == "defaults")
    total = args.runs * (len(per_run) + (1 if idle_systems else 0)) - max(
        0, args.runs - args.defaults_runs) * defaults_steps

    results: dict[str, dict[str, list[dict[str, Any]]]] = {s.key: {} for s in systems}
    progress = Progress(total)
    with PrivateRedis() as server:
        ctx = Context(server, pythons, log_dir, budget=args.budget,
                      roundtrip_budget=args.rt_budget)
        meta = {
            "command": "python bench/run.py " + shlex.join(sys.argv[1:]),
            "started": stamp,
            "machine": machine_info(),
            "redis_server": server.version(),
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
    has_taskkit = any(s.peer.name == "taskkit" for s in systems)
    checks = report.targets(systems, summary) if has_taskkit else []
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
        "_systems": systems,
    }


def render_markdown(outcome: dict[str, Any]) -> str:
    systems: list[System] = outcome["_systems"]
    meta = outcome["meta"]
    parts = [
        f"Measured {meta['started']} with `{meta['command']}`: n={meta['n']} tasks for A and B, "
        f"{meta['roundtrips']} round trips for C, a {meta['idle_seconds']:g} s window for D, "
        f"taskkit at commit {meta.get('taskkit_revision', 'unknown')}, "
        f"{meta['runs']} run(s) each; redis-server {meta['redis_server']}; "
        f"{meta['machine']['cores']} cores ({meta['machine']['cpu']}), Python "
        f"{meta['machine']['python']}; load average at start "
        f"{', '.join(f'{x:.1f}' for x in meta['machine']['load_average_at_start'])}.",
        "",
        report.tables(systems, outcome["summary"]),
    ]
    if outcome["targets"]:
        parts += ["", "Issue 6 targets (taskkit with its defaults, results stored):", "",
                  report.targets_table(outcome["targets"])]
    versions = "; ".join(
        f"{peer}: " + ", ".join(f"{d} {v}" for d, v in vs.items())
        for peer, vs in meta["versions"].items()
    )
    parts += ["", f"Versions: {versions}."]
    return "\n".join(parts) + "\n"


def update_doc(markdown: str) -> None:
    text = DOC.read_text()
    start, end = text.find(DOC_START), text.find(DOC_END)
    if start < 0 or end < start:
        raise SystemExit(f"{DOC} lacks the {DOC_START} ... {DOC_END} markers")
    DOC.write_text(text[: start + len(DOC_START)] + "\n" + markdown + text[end:])


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
    markdown = render_markdown(outcome)
    sys.stdout.write(markdown)
    if args.replot is None:
        payload = {k: v for k, v in outcome.items() if not k.startswith("_")}
        report.write_json(args.json, payload)
    meta = outcome["meta"]
    chart.write(args.chart, outcome["_systems"], outcome["summary"],
                f"{meta['started']} · {meta['machine']['cores']} cores · n={meta['n']} · "
                f"{meta['runs']} run(s), medians")
    log.info("chart: %s%s", args.chart,
             "" if args.replot is not None else f"; raw results: {args.json}")
    if args.update_doc:
        update_doc(markdown)
        log.info("updated %s", DOC)
    return 0


if __name__ == "__main__":
    sys.exit(main())
