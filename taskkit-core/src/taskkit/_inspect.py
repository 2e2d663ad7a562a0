"""``taskkit inspect``: the fleet and queue figures of a backend, as a table or as JSON.

Groups come with the figures of :meth:`taskkit.backend.Backend.group_stats` and their
finished counts over a window; workers with their heartbeat's age on the backend's clock. A
backend that keeps no figures (``supports_fleet_stats`` False) still answers the queued and
running counts of the groups named on the command line.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from ._stats import FINISHED_OUTCOMES
from .backend import Backend

__all__ = ["inspect_report", "render_json", "render_text"]


def inspect_report(backend: Backend, groups: Sequence[str], window: float) -> dict[str, Any]:
    """Everything ``taskkit inspect`` shows, as plain data (the ``--json`` document).

    :param groups: the groups to show; empty for every group the backend lists.
    :param window: the seconds of finished counts.
    """
    if not backend.supports_fleet_stats:
        if not groups:
            raise ValueError(
                f"the {backend.name or type(backend).__name__} backend keeps no fleet figures "
                "(supports_fleet_stats): name the groups to inspect"
            )
        return {
            "fleet_stats": False,
            "now": backend.now(),
            "window": window,
            "groups": [
                {"group": g, "waiting": s.queued, "running": s.running}
                for g, s in ((g, backend.stats(g)) for g in groups)
            ],
            "workers": None,
        }
    shown = list(groups) or backend.list_groups()
    rows = []
    for group in shown:
        stats = backend.group_stats(group)
        finished = backend.finished_counts(group, window)
        rows.append(
            {
                "group": group,
                "queued": stats.queued,
                "scheduled": stats.scheduled,
                "running": stats.running,
                "dead_letters": stats.dead_letters,
                "oldest_due_age": stats.oldest_due_age,
                "finished": finished.as_dict(),
                "finished_since": finished.since,
            }
        )
    now = backend.now()
    workers = [
        {
            "id": w.id,
            "host": w.host,
            "pid": w.pid,
            "threads": dict(w.threads),
            "started": w.started,
            "heartbeat": w.heartbeat,
            "heartbeat_age": w.heartbeat_age(now),
            "tasks_held": w.tasks_held,
        }
        for w in backend.list_workers()
    ]
    return {"fleet_stats": True, "now": now, "window": window, "groups": rows, "workers": workers}


def render_json(report: dict[str, Any]) -> str:
    """The report as one JSON document (times in epoch seconds, ages in seconds)."""
    return json.dumps(report, indent=2, sort_keys=False)


def _seconds(value: float | None) -> str:
    if value is None:
        return "-"
    if value < 120:
        return f"{value:.1f}s"
    if value < 7200:
        return f"{value / 60:.1f}m"
    return f"{value / 3600:.1f}h"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [max(len(str(c)) for c in column) for column in zip(header, *rows)]
    # The first column (a name) is left-aligned, the figures right-aligned.
    return [
        "  ".join(
            cell.ljust(width) if i == 0 else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(row, widths))
        ).rstrip()
        for row in [header, *rows]
    ]


def render_text(report: dict[str, Any]) -> str:
    """The report as two aligned tables: groups, then workers."""
    lines: list[str] = []
    if not report["fleet_stats"]:
        lines += _table(
            ["GROUP", "QUEUED", "RUNNING"],
            [[g["group"], str(g["waiting"]), str(g["running"])] for g in report["groups"]],
        )
        lines += [
            "",
            "workers: not kept by this backend (it does not declare supports_fleet_stats)",
        ]
        return "\n".join(lines)
    outcomes = [s.value for s in FINISHED_OUTCOMES]
    header = ["GROUP", "QUEUED", "SCHEDULED", "RUNNING", "DEAD LETTERS", "OLDEST DUE"]
    header += [o.upper() for o in outcomes]
    rows = [
        [
            g["group"],
            str(g["queued"]),
            str(g["scheduled"]),
            str(g["running"]),
            str(g["dead_letters"]),
            _seconds(g["oldest_due_age"]),
            *(str(g["finished"][o]) for o in outcomes),
        ]
        for g in report["groups"]
    ]
    window = _seconds(report["window"])
    lines.append(f"groups (finished in the last {window}):" if rows else "groups: none")
    if rows:
        lines += _table(header, rows)
    workers = [
        [
            w["id"],
            w["host"],
            str(w["pid"]),
            ",".join(f"{g}={n}" for g, n in w["threads"].items()),
            _seconds(report["now"] - w["started"]),
            _seconds(w["heartbeat_age"]),
            str(w["tasks_held"]),
        ]
        for w in report["workers"]
    ]
    lines.append("")
    lines.append(f"workers ({len(workers)} live):" if workers else "workers: none live")
    if workers:
        header = ["ID", "HOST", "PID", "GROUPS", "UP", "HEARTBEAT AGE", "TASKS HELD"]
        lines += _table(header, workers)
    return "\n".join(lines)
