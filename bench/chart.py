"""A dependency-free SVG chart of the results: throughput bars, then latency bars (log scale)."""

from __future__ import annotations

import math
from html import escape
from pathlib import Path
from typing import Any

from peers import System

WIDTH = 980
LABEL_W = 250
RIGHT_PAD = 90
BAR_H = 7
FONT = "font-family='DejaVu Sans, Arial, sans-serif'"

DRAIN = (
    ("B1", "B1 drain 1×4", "#f28e2b"),
    ("B2", "B2 drain 2×4", "#e15759"),
)
ENQUEUE = (
    ("A-one", "A enqueue one by one", "#4e79a7"),
    ("A-bulk", "A enqueue bulk", "#a0cbe8"),
)
LATENCY = (
    ("C.p50", "C round trip p50", "#59a14f"),
    ("C.p99", "C round trip p99", "#b6992d"),
)


def _median(summary: dict[str, dict[str, Any]], key: str, name: str) -> float | None:
    entry = summary.get(key, {}).get(name)
    if entry is None or "median" not in entry:
        return None
    return float(entry["median"])


def _nice_max(value: float) -> float:
    if value <= 0:
        return 1.0
    exp = 10.0 ** math.floor(math.log10(value))
    for step in (1.0, 2.0, 2.5, 5.0, 10.0):
        if step * exp >= value:
            return step * exp
    return 10.0 * exp


def _text(x: float, y: float, text: str, size: int = 11, anchor: str = "start",
          weight: str = "normal", fill: str = "#222") -> str:
    return (f"<text x='{x:.1f}' y='{y:.1f}' font-size='{size}' text-anchor='{anchor}' "
            f"font-weight='{weight}' fill='{fill}' {FONT}>{escape(text)}</text>")


def _legend(x: float, y: float, series: tuple[tuple[str, str, str], ...]) -> list[str]:
    out = []
    for _, label, color in series:
        out.append(f"<rect x='{x:.1f}' y='{y - 9:.1f}' width='10' height='10' fill='{color}'/>")
        out.append(_text(x + 14, y, label, 11))
        x += 24 + 6.5 * len(label)
    return out


def _panel(
    parts: list[str], top: float, title: str, systems: list[System],
    summary: dict[str, dict[str, Any]], series: tuple[tuple[str, str, str], ...], log_scale: bool,
    unit: str, label_w: float = LABEL_W,
) -> float:
    """Draw one panel starting at ``top``; return the y just below it."""
    plot_w = WIDTH - label_w - RIGHT_PAD
    # Rows with nothing to show in this panel (e.g. a defaults variant that ran no A) go.
    systems = [s for s in systems
               if any(_median(summary, s.key, k) is not None for k, _, _ in series)]
    parts.append(_text(10, top + 16, title, 14, weight="bold"))
    parts.extend(_legend(label_w, top + 36, series))
    y0 = top + 50
    row_h = len(series) * (BAR_H + 1) + 8
    values = [v for s in systems for k, _, _ in series
              if (v := _median(summary, s.key, k)) is not None and v > 0]
    if not values:
        parts.append(_text(label_w, y0 + 14, "no data", 12))
        return y0 + 30
    if log_scale:
        lo = 10 ** math.floor(math.log10(min(values)))
        if min(values) < 2 * lo:  # keep the shortest bar visible
            lo /= 10
        hi = 10 ** math.ceil(math.log10(max(values)))
        hi = max(hi, lo * 10)

        def scale(v: float) -> float:
            return plot_w * (math.log10(v) - math.log10(lo)) / (math.log10(hi) - math.log10(lo))

        ticks = [lo * 10 ** i for i in range(round(math.log10(hi / lo)) + 1)]
    else:
        hi = _nice_max(max(values))

        def scale(v: float) -> float:
            return plot_w * v / hi

        ticks = [hi * i / 5 for i in range(6)]
    height = row_h * len(systems)
    for tick in ticks:
        x = label_w + scale(tick)
        parts.append(f"<line x1='{x:.1f}' y1='{y0:.1f}' x2='{x:.1f}' y2='{y0 + height:.1f}' "
                     "stroke='#ddd' stroke-width='1'/>")
        label = f"{tick:,.0f}" if tick >= 1 else f"{tick:g}"
        parts.append(_text(x, y0 + height + 14, label, 10, anchor="middle", fill="#555"))
    parts.append(_text(label_w + plot_w / 2, y0 + height + 30, unit, 11, anchor="middle",
                       fill="#555"))
    for i, system in enumerate(systems):
        y = y0 + i * row_h + 4
        parts.append(_text(label_w - 8, y + row_h / 2, system.label, 11, anchor="end",
                           weight="bold" if system.peer.name.startswith("taskkit-django")
                           or system.peer.name == "taskkit" else "normal"))
        for j, (key, _, color) in enumerate(series):
            value = _median(summary, system.key, key)
            by = y + j * (BAR_H + 1)
            if value is None or value <= 0:
                continue
            w = max(scale(value), 1.0)
            parts.append(f"<rect x='{label_w}' y='{by:.1f}' width='{w:.1f}' height='{BAR_H}' "
                         f"fill='{color}'/>")
            shown = f"{value:,.0f}" if not log_scale else (f"{value:.2f}" if value < 10
                                                           else f"{value:,.0f}")
            parts.append(_text(label_w + w + 3, by + BAR_H - 0.5, shown, 8, fill="#333"))
    return y0 + height + 40


def render(systems: list[System], summary: dict[str, dict[str, Any]], subtitle: str) -> str:
    parts: list[str] = []
    # Room for the longest label (about 6 px a character at 11 px), never less than the default.
    label_w = max(LABEL_W, 16 + 6 * max((len(s.label) for s in systems), default=0))
    y = _panel(parts, 30, "Drain throughput (tasks/s, higher is better)", systems, summary,
               DRAIN, False, "tasks per second (median of runs)", label_w)
    y = _panel(parts, y, "Enqueue throughput (tasks/s, log scale, higher is better)", systems,
               summary, ENQUEUE, True, "tasks per second (median of runs)", label_w)
    y = _panel(parts, y, "Round-trip latency (ms, log scale, lower is better)", systems,
               summary, LATENCY, True, "milliseconds (median of runs)", label_w)
    height = y + 10
    head = [
        f"<svg xmlns='http://www.w3.org/2000/svg' width='{WIDTH}' height='{height:.0f}' "
        f"viewBox='0 0 {WIDTH} {height:.0f}'>",
        f"<rect width='{WIDTH}' height='{height:.0f}' fill='white'/>",
        _text(10, 18, subtitle, 11, fill="#555"),
    ]
    return "\n".join([*head, *parts, "</svg>"]) + "\n"


def write(path: Path, systems: list[System], summary: dict[str, dict[str, Any]],
          subtitle: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render(systems, summary, subtitle))
