"""Summaries of raw runs, the markdown tables, the target checks of issues 6 and 13, and the
JSON file."""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

from peers import WORKLOADS, System

#: (workload, measure) pairs that have a median/min/max, in table order.
MEASURES = (
    ("A-one", "value"),
    ("A-bulk", "value"),
    ("B1", "value"),
    ("B2", "value"),
    ("C", "p50"),
    ("C", "p95"),
    ("C", "p99"),
    ("D", "value"),
    ("B-async", "value"),
    ("B-async-redis", "value"),
    ("C-async", "p50"),
    ("C-async", "p95"),
    ("C-async", "p99"),
    ("B1", "cpu_us"),
    ("B2", "cpu_us"),
    ("B-async", "cpu_us"),
    ("B-async-redis", "cpu_us"),
)

#: (summary name, column heading, unit) of each table, in order.
THROUGHPUT = (
    ("A-one", "A enqueue one by one", "rate"),
    ("A-bulk", "A enqueue bulk", "rate"),
    ("B1", "B1 drain 1×4", "rate"),
    ("B2", "B2 drain 2×4", "rate"),
)
LATENCY = (
    ("C.p50", "C p50", "ms"),
    ("C.p95", "C p95", "ms"),
    ("C.p99", "C p99", "ms"),
    ("D", "D idle CPU %", "pct"),
)
ASYNC = (
    ("B-async", "B-async no-op, tasks/s", "rate"),
    ("B-async-redis", "B-async one Redis round trip, tasks/s", "rate"),
    ("C-async.p50", "C-async p50 ms", "ms"),
    ("C-async.p95", "C-async p95 ms", "ms"),
    ("C-async.p99", "C-async p99 ms", "ms"),
)
CPU = (
    ("B1.cpu_us", "B1", "us"),
    ("B2.cpu_us", "B2", "us"),
    ("B-async.cpu_us", "B-async no-op", "us"),
    ("B-async-redis.cpu_us", "B-async one Redis round trip", "us"),
)


def summarize(runs: list[dict[str, Any]], measure: str) -> dict[str, Any] | None:
    """Median, min and max of one measure over the runs that produced it."""
    values = [float(r[measure]) for r in runs if measure in r]
    if not values:
        notes = sorted({str(r.get("unsupported") or r.get("error")) for r in runs
                        if r.get("unsupported") or r.get("error")})
        return {"note": "; ".join(notes)} if notes else None
    summary: dict[str, Any] = {
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
        "runs": len(values),
    }
    partial = [r["partial"] for r in runs if "partial" in r]
    if partial:
        summary["partial"] = partial
    return summary


def summaries(results: dict[str, dict[str, list[dict[str, Any]]]]) -> dict[str, dict[str, Any]]:
    """``{system key: {"A-one": summary, ..., "C.p50": summary, ...}}``."""
    out: dict[str, dict[str, Any]] = {}
    for key, per_workload in results.items():
        row: dict[str, Any] = {}
        for workload, measure in MEASURES:
            runs = per_workload.get(workload)
            if runs is None:
                continue
            name = workload if measure == "value" else f"{workload}.{measure}"
            summary = summarize(runs, measure)
            if summary is not None:
                row[name] = summary
        out[key] = row
    return out


def _fmt(value: float, unit: str) -> str:
    if unit == "rate":
        return f"{value:,.0f}"
    if unit == "ms":
        return f"{value:.2f}" if value < 10 else f"{value:,.0f}"
    if unit == "us":
        return f"{value:,.0f}"
    return f"{value:.2f}"


def cell(summary: dict[str, Any] | None, unit: str) -> str:
    if summary is None:
        return "—"
    if "median" not in summary:
        return "n/a"
    text = _fmt(summary["median"], unit)
    if summary["runs"] > 1:
        text += f" ({_fmt(summary['min'], unit)}–{_fmt(summary['max'], unit)})"
    if summary.get("partial"):
        text += " †"
    return text


def _table(
    systems: list[System], summary: dict[str, dict[str, Any]],
    columns: tuple[tuple[str, str, str], ...],
) -> list[str]:
    """One markdown table; a column no system measured and a system with nothing in any
    column are left out (a partial run shows only what it ran). [] when nothing is left."""
    def has(system: System, name: str) -> bool:
        return summary.get(system.key, {}).get(name) is not None

    kept = [c for c in columns if any(has(s, c[0]) for s in systems)]
    rows = [s for s in systems if any(has(s, c[0]) for c in kept)]
    if not kept or not rows:
        return []
    lines = [
        "| system | " + " | ".join(heading for _, heading, _ in kept) + " |",
        "|---|" + "---:|" * len(kept),
    ]
    for system in rows:
        row = summary.get(system.key, {})
        cells = [
            "n/a" if name == "A-bulk" and system.peer.bulk_api is None
            else cell(row.get(name), unit)
            for name, _, unit in kept
        ]
        lines.append(f"| {system.label} | " + " | ".join(cells) + " |")
    return lines


def tables(systems: list[System], summary: dict[str, dict[str, Any]]) -> str:
    """The markdown tables: throughput, then latency and idle cost, then the asyncio
    workloads (each only when something in it was measured)."""
    lines: list[str] = []
    idle = any(summary.get(s.key, {}).get("D") is not None for s in systems)
    for title, columns in (
        ("Throughput, tasks/s (median of runs, min–max in brackets; higher is better)",
         THROUGHPUT),
        ("Round trip (ms, lower is better)"
         + (" and idle cost (% of one core, 8 threads)" if idle else ""), LATENCY),
        ("Asyncio workers, 1 process × 100 coroutines (B-async: higher is better; C-async, "
         "an async producer's round trips: lower is better)", ASYNC),
        ("Worker CPU per task in the drains (µs of CPU time of the worker's whole process "
         "tree per finished task, first to last; lower is better)", CPU),
    ):
        table = _table(systems, summary, columns)
        if table:
            lines += [title, "", *table, ""]
    lines.append(
        "— not run; n/a: the system has no such API; † at least one run hit its time budget "
        "and reports the rate of what it finished."
    )
    return "\n".join(lines)


def _median(summary: dict[str, dict[str, Any]], key: str, name: str) -> float | None:
    entry = summary.get(key, {}).get(name)
    if entry is None or "median" not in entry:
        return None
    return float(entry["median"])


def _best_peer(
    systems: list[System], summary: dict[str, dict[str, Any]], name: str
) -> tuple[str, float] | None:
    best: tuple[str, float] | None = None
    for system in systems:
        if system.peer.name == "raw" or system.peer.ours:
            continue
        value = _median(summary, system.key, name)
        if value is not None and (best is None or value > best[1]):
            best = (system.label, value)
    return best


def targets(systems: list[System], summary: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Issue 6's targets, each with the measured ratio and whether it is met."""
    checks: list[dict[str, Any]] = []
    tk = "taskkit"

    def ratio_check(name: str, label: str, against: tuple[str, float] | None, need: float) -> None:
        mine = _median(summary, tk, name)
        if mine is None or against is None:
            checks.append({"target": label, "met": None, "detail": "not measured"})
            return
        ratio = mine / against[1]
        checks.append({
            "target": label,
            "met": ratio >= need,
            "detail": f"taskkit {mine:,.0f}/s vs {against[0]} {against[1]:,.0f}/s = {ratio:.2f}×",
        })

    def floor(name: str) -> tuple[str, float] | None:
        value = _median(summary, "raw", name)
        return None if value is None else ("raw floor", value)

    ratio_check("B2", "B2 drain ≥ 1.5× the fastest peer", _best_peer(systems, summary, "B2"), 1.5)
    ratio_check("B2", "B2 drain ≥ 50 % of the raw floor", floor("B2"), 0.5)
    ratio_check("A-one", "A one by one ≥ 1.2× the fastest peer",
                _best_peer(systems, summary, "A-one"), 1.2)
    ratio_check("A-bulk", "A bulk ≥ 50 % of the raw pipelined floor", floor("A-bulk"), 0.5)

    p50 = _median(summary, tk, "C.p50")
    p99 = _median(summary, tk, "C.p99")
    raw50 = _median(summary, "raw", "C.p50")
    if p50 is None or p99 is None:
        checks.append({"target": "C p50 ≤ 1 ms and p99 ≤ 5 ms", "met": None,
                       "detail": "not measured"})
    else:
        detail = f"p50 {p50:.2f} ms, p99 {p99:.2f} ms"
        met = p50 <= 1.0 and p99 <= 5.0
        if raw50 is not None:
            detail += f"; raw p50 {raw50:.2f} ms ({p50 / raw50:.1f}×)"
        checks.append({"target": "C p50 ≤ 1 ms and p99 ≤ 5 ms (defaults)", "met": met,
                       "detail": detail})
    idle = _median(summary, tk, "D")
    checks.append({
        "target": "D idle CPU < 1 %",
        "met": None if idle is None else idle < 1.0,
        "detail": "not measured" if idle is None else f"{idle:.2f} % of one core",
    })
    return checks


def issue13_targets(
    systems: list[System], summary: dict[str, dict[str, Any]]
) -> list[dict[str, Any]]:
    """Issue 13's targets: a function task costs at most 10 % more than the same
    ``TaskHandler`` task (B2, C p50); taskkit's asyncio worker drains ≥ 1.5× the faster of
    arq and taskiq (B-async, both tasks); its async round trip p50 ≤ 1 ms."""
    checks: list[dict[str, Any]] = []
    for name, what in (
        ("B2", "B2 drain"), ("B2.cpu_us", "B2 worker CPU per task"), ("C.p50", "C p50"),
    ):
        label = f"a function task costs ≤ 10 % more than a TaskHandler task ({what})"
        fn, handler = _median(summary, "taskkit-fn", name), _median(summary, "taskkit", name)
        if fn is None or handler is None:
            checks.append({"target": label, "met": None, "detail": "not measured"})
            continue
        if name == "B2":  # a rate: the cost of a task is its inverse
            extra, detail = handler / fn - 1, f"function {fn:,.0f}/s vs handler {handler:,.0f}/s"
        elif name == "B2.cpu_us":
            extra, detail = fn / handler - 1, f"function {fn:,.0f} µs vs handler {handler:,.0f} µs"
        else:
            extra, detail = fn / handler - 1, f"function {fn:.2f} ms vs handler {handler:.2f} ms"
        checks.append({"target": label, "met": round(extra, 9) <= 0.10,
                       "detail": f"{detail}: {extra:+.1%} per task"})
    peers = [s for s in systems if s.peer.name in ("arq", "taskiq") and s.variant == "tuned"]
    for name, what in (("B-async", "no-op"), ("B-async-redis", "one Redis round trip")):
        label = f"B-async ({what}) ≥ 1.5× the faster of arq and taskiq"
        mine, best = _median(summary, "taskkit-async", name), _best_peer(peers, summary, name)
        if mine is None or best is None:
            checks.append({"target": label, "met": None, "detail": "not measured"})
            continue
        ratio = mine / best[1]
        checks.append({
            "target": label, "met": ratio >= 1.5,
            "detail": f"taskkit {mine:,.0f}/s vs {best[0]} {best[1]:,.0f}/s = {ratio:.2f}×",
        })
    p50, p99 = (_median(summary, "taskkit-async", f"C-async.{p}") for p in ("p50", "p99"))
    checks.append({
        "target": "C-async p50 ≤ 1 ms (adelay + aget, defaults)",
        "met": None if p50 is None else p50 <= 1.0,
        "detail": "not measured" if p50 is None or p99 is None
        else f"p50 {p50:.2f} ms, p99 {p99:.2f} ms",
    })
    return checks


def measured(checks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The checks a run measured (a partial run leaves the others out of its tables)."""
    return [c for c in checks if c["detail"] != "not measured"]


def e_table(systems: list[System], summary: dict[str, dict[str, Any]]) -> str:
    """Workload E in one table: enqueue, drain and round trip for each Django-side system."""
    lines = [
        "Throughput in tasks/s (higher is better), round trip in ms (lower is better); median "
        "of runs, min–max in brackets",
        "",
        "| system | A one by one | A bulk | B1 drain 1×4 | B2 drain 2×4 | C p50 | C p95 | C p99 |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for system in systems:
        row = summary.get(system.key, {})
        bulk = "n/a" if system.peer.bulk_api is None else cell(row.get("A-bulk"), "rate")
        lines.append(
            f"| {system.label} | {cell(row.get('A-one'), 'rate')} | {bulk} | "
            f"{cell(row.get('B1'), 'rate')} | {cell(row.get('B2'), 'rate')} | "
            f"{cell(row.get('C.p50'), 'ms')} | {cell(row.get('C.p95'), 'ms')} | "
            f"{cell(row.get('C.p99'), 'ms')} |"
        )
    lines += [
        "",
        "— not run; n/a: the system has no such API; † at least one run hit its time budget "
        "and reports the rate of what it finished.",
    ]
    return "\n".join(lines)


def e_targets(summary: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Issue 6's E target: taskkit on PostgreSQL ≥ 2× django-tasks' database backend and
    ≥ Procrastinate in B and C (for C: a round trip at most half as long, at most as long)."""
    checks: list[dict[str, Any]] = []
    mine_key = "taskkit-django-pg"
    for peer, label, need in (
        ("django-tasks-pg", "django-tasks (PostgreSQL, tuned)", 2.0),
        ("procrastinate", "Procrastinate", 1.0),
    ):
        times = "2× " if need != 1.0 else ""
        for name in ("B1", "B2"):
            mine, theirs = _median(summary, mine_key, name), _median(summary, peer, name)
            if mine is None or theirs is None:
                checks.append({"target": f"{name} ≥ {times}{label}", "met": None,
                               "detail": "not measured"})
                continue
            checks.append({
                "target": f"{name} ≥ {times}{label}",
                "met": mine >= need * theirs,
                "detail": f"taskkit {mine:,.0f}/s vs {theirs:,.0f}/s = {mine / theirs:.2f}×",
            })
        mine, theirs = _median(summary, mine_key, "C.p50"), _median(summary, peer, "C.p50")
        target = f"C p50 ≤ {'½ of ' if need != 1.0 else ''}{label}'s"
        if mine is None or theirs is None:
            checks.append({"target": target, "met": None, "detail": "not measured"})
            continue
        p99s = (_median(summary, mine_key, "C.p99"), _median(summary, peer, "C.p99"))
        detail = f"p50 {mine:.2f} vs {theirs:.2f} ms (theirs / taskkit's = {theirs / mine:.2f})"
        if None not in p99s:
            detail += f"; p99 {p99s[0]:.2f} vs {p99s[1]:.2f} ms"
        checks.append({"target": target, "met": mine * need <= theirs, "detail": detail})
    return checks


def targets_table(checks: list[dict[str, Any]]) -> str:
    lines = ["| target | met | measured |", "|---|---|---|"]
    for check in checks:
        met = {True: "yes", False: "**no**", None: "—"}[check["met"]]
        lines.append(f"| {check['target']} | {met} | {check['detail']} |")
    return "\n".join(lines)


def write_json(path: Path, payload: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=1, sort_keys=False) + "\n")


__all__ = [
    "WORKLOADS", "cell", "e_table", "e_targets", "issue13_targets", "measured", "summaries",
    "tables", "targets", "targets_table", "write_json",
]
