"""The end-of-run report: rates, latency percentiles, failures, generator CPU, conservation.

``summarise`` turns merged :class:`~loadtest.stats.Stats` into plain JSON
data (latencies in microseconds); ``print_report`` shows it with rich;
``write_results`` writes ``results.json`` and ``report.html`` (see
:mod:`loadtest.html_report`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from loadtest.histogram import Histogram, merged
from loadtest.stats import Stats

PERCENTILES = (50.0, 90.0, 99.0, 99.9)


def latency_row(h: Histogram) -> dict[str, Any]:
    return {
        "count": h.count,
        "mean_us": round(h.mean(), 1),
        **{f"p{p:g}_us": h.percentile(p) for p in PERCENTILES},
        "max_us": h.max,
    }


def _group(stats: Stats, by_command: bool) -> dict[str, Histogram]:
    groups: dict[str, list[Histogram]] = {}
    for (command, result), h in stats.latency.items():
        groups.setdefault(command if by_command else result, []).append(h)
    return {k: merged(v) for k, v in sorted(groups.items())}


def _failures(stats: Stats, success: Iterable[str]) -> int:
    ok = set(success)
    return sum(h.count for (_, r), h in stats.latency.items() if r not in ok)


def summarise(
    stats: Stats,
    sessions: dict[str, int],
    # Gy 2001, RADIUS Accounting-Response, Nchf 201 / 200 / 204 (create / update / release).
    success: Iterable[str] = ("2001", "Accounting-Response", "201", "200", "204"),
    load_seconds: float | None = None,
) -> dict[str, Any]:
    answered = stats.answered
    wall = stats.wall or 1e-9
    cpu = stats.cpu_user + stats.cpu_system
    window = [s for i, s in stats.seconds.items() if load_seconds is None or i < int(load_seconds)]
    steady = sum(s.answered for s in window) / len(window) if window else 0.0
    return {
        "answered": answered,
        "wall_seconds": round(wall, 3),
        "rate": round(answered / wall, 1),
        "steady_rate": round(steady, 1),
        "failed_answers": _failures(stats, success),
        "timeouts": stats.counters.get("timeout", 0),
        "disconnected": stats.counters.get("disconnected", 0),
        "late_answers": stats.counters.get("late answers", 0),
        "retransmissions": stats.counters.get("retransmissions", 0),
        "mscc_results": dict(stats.mscc_results),
        "counters": dict(stats.counters),
        "latency": latency_row(merged(stats.latency.values())),
        "by_command": {k: latency_row(h) for k, h in _group(stats, True).items()},
        "by_result": {k: latency_row(h) for k, h in _group(stats, False).items()},
        "generator_cpu": {
            "user_s": round(stats.cpu_user, 3),
            "system_s": round(stats.cpu_system, 3),
            "us_per_request": round(cpu * 1e6 / answered, 1) if answered else None,
            "cores": round(cpu / wall, 2),
        },
        "sessions": sessions,
    }


def _ms(us: int | float) -> str:
    return f"{us / 1000:.2f}"


def latency_table(title: str, rows: dict[str, dict[str, Any]]) -> Table:
    table = Table(title=title)
    for col in ("", "count", "p50 ms", "p90 ms", "p99 ms", "p99.9 ms", "max ms"):
        table.add_column(col, justify="right" if col else "left")
    for name, row in rows.items():
        table.add_row(
            name,
            f"{row['count']:,}",
            *(_ms(row[f"p{p:g}_us"]) for p in PERCENTILES),
            _ms(row["max_us"]),
        )
    return table


def print_report(summary: dict[str, Any], console: Console | None = None) -> None:
    console = console or Console()
    s = summary
    cpu = s["generator_cpu"]
    spec = s.get("spec") or {}
    if spec.get("model") == "open":
        console.print(f"offered {spec['rate']:,.0f} requests/s (open model)")
    console.print(
        f"[bold]{s['answered']:,}[/] answers in {s['wall_seconds']} s: "
        f"[bold]{s['rate']:,.0f}/s[/] (steady {s['steady_rate']:,.0f}/s); "
        f"failed answers {s['failed_answers']:,}, timeouts {s['timeouts']:,}, "
        f"disconnected {s['disconnected']:,}, late {s['late_answers']:,}"
    )
    console.print(
        f"generator CPU {cpu['user_s'] + cpu['system_s']:.2f} s "
        f"({cpu['cores']} cores, {cpu['us_per_request']} µs per request)"
    )
    ses = s["sessions"]
    console.print(
        "sessions: " + ", ".join(f"{k} {v:,}" for k, v in ses.items() if k != "in_flight")
    )
    console.print(latency_table("latency by command", s["by_command"]))
    console.print(latency_table("latency by result", s["by_result"]))
    if s["mscc_results"]:
        console.print(f"MSCC results other than 2001: {s['mscc_results']}")
    cons = s.get("conservation")
    if cons:
        verdict = "[green]PASS[/]" if cons["ok"] else "[red]FAIL[/]"
        console.print(
            f"conservation {verdict}: {cons['accounts']:,} accounts, {cons['records']:,} records; "
            f"money decrease {cons['money_decrease']:,} µ = recorded {cons['money_recorded']:,} µ; "
            f"units {cons['unit_decrease']} = {cons['unit_recorded']}; "
            f"reserved left {cons['reserved_left']}; "
            f"sessions closed by the check {cons['sessions_closed_by_check']}"
        )
        for m in cons["mismatches"][:5]:
            console.print(f"  mismatch: {m}")


def write_results(out_dir: Path, result: dict[str, Any], stats: Stats) -> tuple[Path, Path]:
    """results.json (summary + raw histograms) and report.html in ``out_dir``."""
    from loadtest.html_report import render_html

    out_dir.mkdir(parents=True, exist_ok=True)
    json_path = out_dir / "results.json"
    json_path.write_text(json.dumps({**result, "raw": stats.to_dict()}, indent=1, default=str))
    html_path = out_dir / "report.html"
    html_path.write_text(render_html(result, stats))
    return json_path, html_path
