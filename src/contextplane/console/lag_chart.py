"""A group's lag over time as inline SVG, drawn on the server (no script, nothing fetched).

One `<g class="lag-series">` per partition, holding a polyline per unbroken run of
samples (a partition without a lag at some sample breaks its line there). Every name is
escaped: topic names come from clients.
"""

from __future__ import annotations

from markupsafe import Markup, escape

from contextplane.console.lag_history import LagSeries

WIDTH = 720
HEIGHT = 260
# Room for the axis labels (left, bottom) and the legend (right).
LEFT, RIGHT, TOP, BOTTOM = 64, 200, 12, 28
LEGEND_ROWS_MAX = 16  # past these the legend says how many more
PALETTE = (
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
    "#17becf",
)


def lag_chart_svg(series: LagSeries) -> Markup:
    times = series.times_ms
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    highest = max(
        (v for values in series.lags.values() for v in values if v is not None), default=0
    )
    top = max(1, highest)
    start, end = (times[0], times[-1]) if times else (0, 0)
    span = max(1, end - start)

    def x(i: int) -> float:
        return LEFT + (times[i] - start) * plot_w / span if len(times) > 1 else LEFT + plot_w

    def y(value: int) -> float:
        return TOP + plot_h - value * plot_h / top

    parts = [
        f'<svg class="lag-chart" xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" '
        f'height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-label="lag over time">',
        f'<rect x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}" fill="#fafafa" '
        'stroke="#ccc"/>',
        f'<text x="{LEFT - 6}" y="{TOP + 10}" text-anchor="end" font-size="11">{top}</text>',
        f'<text x="{LEFT - 6}" y="{TOP + plot_h}" text-anchor="end" font-size="11">0</text>',
        f'<text x="{LEFT}" y="{HEIGHT - 8}" font-size="11">{_seconds_ago(end - start)}</text>',
        f'<text x="{LEFT + plot_w}" y="{HEIGHT - 8}" text-anchor="end" font-size="11">now</text>',
    ]
    for index, ((topic, partition), values) in enumerate(series.lags.items()):
        colour = PALETTE[index % len(PALETTE)]
        parts.append(
            f'<g class="lag-series" data-topic="{escape(topic)}" '
            f'data-partition="{partition}" stroke="{colour}" fill="none" stroke-width="1.5">'
        )
        for run in _runs(values):
            points = " ".join(f"{x(i):.1f},{y(v):.1f}" for i, v in run)
            if len(run) == 1:
                cx, cy = points.split(",")
                parts.append(f'<circle cx="{cx}" cy="{cy}" r="2" fill="{colour}"/>')
            else:
                parts.append(f'<polyline points="{points}"/>')
        parts.append("</g>")
        if index < LEGEND_ROWS_MAX:
            row_y = TOP + 12 + index * 14
            parts.append(
                f'<text x="{WIDTH - RIGHT + 10}" y="{row_y}" font-size="11" fill="{colour}">'
                f"{escape(_shorten(topic))}-{partition}</text>"
            )
    hidden = len(series.lags) - LEGEND_ROWS_MAX
    if hidden > 0:
        row_y = TOP + 12 + LEGEND_ROWS_MAX * 14
        parts.append(
            f'<text x="{WIDTH - RIGHT + 10}" y="{row_y}" font-size="11">and {hidden} more</text>'
        )
    parts.append("</svg>")
    return Markup("".join(parts))


def _runs(values: list[int | None]) -> list[list[tuple[int, int]]]:
    """The unbroken runs of (sample index, lag)."""
    runs: list[list[tuple[int, int]]] = []
    current: list[tuple[int, int]] = []
    for i, value in enumerate(values):
        if value is None:
            if current:
                runs.append(current)
            current = []
        else:
            current.append((i, value))
    if current:
        runs.append(current)
    return runs


def _shorten(name: str, limit: int = 24) -> str:
    return name if len(name) <= limit else name[: limit - 1] + "…"


def _seconds_ago(ms: int) -> str:
    seconds = ms // 1000
    return f"{seconds // 60} min {seconds % 60} s ago" if seconds >= 60 else f"{seconds} s ago"
