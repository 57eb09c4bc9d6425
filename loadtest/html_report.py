"""The HTML report: summary tables and two inline SVG plots, no external assets.

Plots: answers per second with p50/p99 latency over time (from the
per-second histograms), and the latency histogram (log-linear buckets).
"""

from __future__ import annotations

import html
import json
from typing import Any

from loadtest.stats import Stats

W, H, PAD = 760, 260, 44


def _polyline(points: list[tuple[float, float]], color: str) -> str:
    pts = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
    return f'<polyline fill="none" stroke="{color}" stroke-width="1.5" points="{pts}"/>'


def _axes(title: str, x_label: str, y_label: str, y_max: float) -> str:
    return (
        f'<text x="{W / 2}" y="16" text-anchor="middle" font-size="13">{html.escape(title)}</text>'
        f'<line x1="{PAD}" y1="{H - PAD}" x2="{W - 10}" y2="{H - PAD}" stroke="#444"/>'
        f'<line x1="{PAD}" y1="24" x2="{PAD}" y2="{H - PAD}" stroke="#444"/>'
        f'<text x="{W / 2}" y="{H - 8}" text-anchor="middle" font-size="11">{x_label}</text>'
        f'<text x="4" y="34" font-size="11">{y_max:,.1f}</text>'
        f'<text x="4" y="{H - PAD}" font-size="11">0</text>'
        f'<text x="{PAD + 4}" y="34" font-size="11" fill="#666">{html.escape(y_label)}</text>'
    )


def latency_over_time_svg(stats: Stats) -> str:
    seconds = sorted(stats.seconds)
    if not seconds:
        return "<p>no answers</p>"
    last = max(seconds[-1], 1)
    p50 = [(i, stats.seconds[i].latency.percentile(50) / 1000) for i in seconds]
    p99 = [(i, stats.seconds[i].latency.percentile(99) / 1000) for i in seconds]
    y_max = max([v for _, v in p99] + [0.001])

    def xy(i: float, v: float) -> tuple[float, float]:
        return PAD + (W - PAD - 10) * i / last, (H - PAD) - (H - PAD - 24) * v / y_max

    rate = [(i, float(stats.seconds[i].answered)) for i in seconds]
    r_max = max([v for _, v in rate] + [1.0])
    rate_pts = [
        (PAD + (W - PAD - 10) * i / last, (H - PAD) - (H - PAD - 24) * v / r_max) for i, v in rate
    ]
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}">'
        + _axes(
            "latency over time (ms): p50 blue, p99 red; answers/s grey (scaled)",
            "second",
            "ms",
            y_max,
        )
        + _polyline(rate_pts, "#bbb")
        + _polyline([xy(i, v) for i, v in p50], "#1f77b4")
        + _polyline([xy(i, v) for i, v in p99], "#d62728")
        + f'<text x="{W - 10}" y="34" text-anchor="end" font-size="11" fill="#888">'
        + f"max {r_max:,.0f}/s</text>"
        + "</svg>"
    )


def histogram_svg(stats: Stats) -> str:
    from loadtest.histogram import merged

    h = merged(stats.latency.values())
    buckets = list(h.buckets())
    if not buckets:
        return "<p>no answers</p>"
    c_max = max(c for _, c in buckets)
    width = (W - PAD - 10) / len(buckets)
    bars = []
    for i, (upper, count) in enumerate(buckets):
        bh = (H - PAD - 24) * count / c_max
        x = PAD + i * width
        bars.append(
            f'<rect x="{x:.1f}" y="{H - PAD - bh:.1f}" width="{max(width - 0.5, 0.5):.1f}" '
            f'height="{bh:.1f}" fill="#1f77b4"><title>&lt;= {upper} µs: {count}</title></rect>'
        )
    first, last = buckets[0][0], buckets[-1][0]
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}">'
        + _axes(
            f"latency histogram ({first} µs .. {last} µs, log-linear buckets)",
            "latency",
            "count",
            c_max,
        )
        + "".join(bars)
        + "</svg>"
    )


def render_html(result: dict[str, Any], stats: Stats) -> str:
    summary = json.dumps({k: v for k, v in result.items() if k != "raw"}, indent=1, default=str)
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>ocs load test</title>"
        "<style>body{font-family:sans-serif;margin:20px}pre{background:#f6f6f6;padding:8px}</style>"
        "</head><body><h1>ocs load test</h1>"
        + latency_over_time_svg(stats)
        + "<br>"
        + histogram_svg(stats)
        + f"<h2>results</h2><pre>{html.escape(summary)}</pre></body></html>"
    )
