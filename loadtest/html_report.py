"""The HTML report of a load run: the numbers first, then the pictures.

One self-contained page (no external assets), readable at any width:

1. a summary table: what was offered and what was achieved, answers and
   failures, the conservation verdict, generator CPU;
2. latency percentiles (p50, p90, p99, p99.9, max) per command and per result;
3. plots, drawn by matplotlib into inline SVG with their text kept as text:
   answers and failures per second against the offered rate; p50/p90/p99
   latency per second; the latency distribution on a true log-scale axis
   (bar widths are the bins' real widths, height is the share of answers
   per decade, so the area of a peak is its share) beside the latency at
   each percentile per command (the cumulative distribution, HdrHistogram's
   way: every nine as wide as the next);
4. the raw summary (JSON), folded.

matplotlib (with numpy) is about 120 MB: an optional extra, ``pip install
'ocs[report]'`` (in ``dev`` too), since a server image has no use for it.
Without it the page still has every table and says how to get the plots.
"""

from __future__ import annotations

import html
import io
import itertools
import json
import math
import re
from collections.abc import Iterable
from typing import Any

from loadtest.histogram import Histogram, merged, upper_bound
from loadtest.stats import Stats

PERCENTILES = (50.0, 90.0, 99.0, 99.9)
BINS_PER_DECADE = 20
COLORS = {"p50": "#1f77b4", "p90": "#2ca02c", "p99": "#d62728", "offered": "#7f7f7f"}

CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:0 auto;padding:16px;
max-width:1200px;color:#222;line-height:1.4}
h1{font-size:1.5em;margin:.2em 0}h2{font-size:1.15em;margin:1.4em 0 .4em}
table{border-collapse:collapse;margin:.4em 0 1em;font-variant-numeric:tabular-nums}
th,td{border-bottom:1px solid #ddd;padding:4px 10px;text-align:right}
th:first-child,td:first-child{text-align:left}td:first-child{white-space:nowrap}
thead th{background:#f4f4f4}
.pass{color:#1a7f37;font-weight:bold}.fail{color:#cf222e;font-weight:bold}
figure{margin:1em 0}figure svg{width:100%;height:auto;display:block}
figcaption{color:#555;font-size:.9em}.grid{display:grid;gap:16px;
grid-template-columns:repeat(auto-fit,minmax(min(100%,480px),1fr))}
pre{background:#f6f6f6;padding:8px;overflow:auto}.note{color:#555}
#summary td{text-align:left}#summary th{text-align:left;padding-right:24px}
.scroll{overflow-x:auto;max-width:100%}
@media (max-width:640px){body{padding:8px}th,td{padding:3px 5px}
table{font-size:.85em}#summary th{padding-right:8px}}
"""


# --- numbers -------------------------------------------------------------------


def _ms(us: float) -> str:
    return f"{us / 1000:,.2f}"


def _n(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.1f}"
    if isinstance(value, int):
        return f"{value:,}"
    return html.escape(str(value))


def _table(head: Iterable[str], rows: Iterable[Iterable[Any]], caption: str = "") -> str:
    th = "".join(f"<th>{html.escape(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    cap = f"<caption>{html.escape(caption)}</caption>" if caption else ""
    return f"<table>{cap}<thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>"


def offered(result: dict[str, Any]) -> str:
    spec = result.get("spec") or {}
    if spec.get("model") == "open":
        return f"{spec.get('rate', 0):,.0f} requests/s (open model)"
    if spec.get("model") == "closed":
        return f"as fast as answered, {spec.get('concurrency', 0):,} sessions (closed model)"
    return "n/a"


def _verdict(result: dict[str, Any]) -> str:
    cons = result.get("conservation")
    if not cons:
        return "not checked"
    word = '<span class="pass">PASS</span>' if cons["ok"] else '<span class="fail">FAIL</span>'
    return (
        f"{word}: {cons['accounts']:,} accounts, {cons['records']:,} records; money "
        f"{cons['money_decrease']:,} µ = recorded {cons['money_recorded']:,} µ; "
        f"{len(cons.get('mismatches', [])):,} mismatches"
    )


def summary_table(result: dict[str, Any]) -> str:
    spec = result.get("spec") or {}
    cpu = result.get("generator_cpu") or {}
    errors = (
        result.get("failed_answers", 0) + result.get("timeouts", 0) + result.get("disconnected", 0)
    )
    rows = [
        ("run", html.escape(f"{spec.get('protocol', '?')} {spec.get('model', '?')} against "
                            f"{spec.get('target', '?')}")),
        ("offered rate", offered(result)),
        ("achieved rate", f"{result['steady_rate']:,.0f} answers/s while loading "
                          f"({result['rate']:,.0f}/s over {result['wall_seconds']} s)"),
        ("answers", _n(result["answered"])),
        ("errors", f"{errors:,} (failed answers {result.get('failed_answers', 0):,}, "
                   f"timeouts {result.get('timeouts', 0):,}, "
                   f"disconnected {result.get('disconnected', 0):,})"),
        ("latency p50 / p99 / p99.9", " / ".join(
            _ms(result["latency"][f"p{p:g}_us"]) for p in (50.0, 99.0, 99.9)) + " ms"),
        ("conservation", _verdict(result)),
        ("generator CPU", f"{cpu.get('cores', 0)} cores, "
                          f"{cpu.get('us_per_request', '?')} µs per request"),
        ("shape", html.escape(f"{spec.get('processes', '?')} processes × "
                              f"{spec.get('connections', '?')} connections, "
                              f"{spec.get('subscribers', '?')} subscribers, "
                              f"{spec.get('updates', '?')} updates per session")),
    ]  # fmt: skip
    body = "".join(f"<tr><th>{html.escape(k)}</th><td>{v}</td></tr>" for k, v in rows)
    return f'<div class="scroll"><table id="summary"><tbody>{body}</tbody></table></div>'


def latency_table(title: str, rows: dict[str, dict[str, Any]], table_id: str) -> str:
    head = ["", "answers", *(f"p{p:g} ms" for p in PERCENTILES), "max ms"]
    cells = [
        [html.escape(name), f"{row['count']:,}"]
        + [_ms(row[f"p{p:g}_us"]) for p in PERCENTILES]
        + [_ms(row["max_us"])]
        for name, row in rows.items()
    ]
    table = _table(head, cells).replace("<table>", f'<table id="{table_id}">', 1)
    return f'<h2>{html.escape(title)}</h2><div class="scroll">{table}</div>'  # wide: scrolls itself


# --- plots ---------------------------------------------------------------------


def _plotting() -> Any:
    try:
        import matplotlib
    except ImportError:
        return None
    matplotlib.use("Agg")
    from matplotlib import pyplot

    matplotlib.rcParams.update(
        {
            "svg.fonttype": "none",  # text stays text: searchable, sharp, small
            "font.size": 10,
            "axes.grid": True,
            "grid.alpha": 0.3,
            "axes.spines.top": False,
            "axes.spines.right": False,
        }
    )
    return pyplot


def _plain_log_axis(axis: Any) -> None:
    """Log-scale ticks at 1, 2, 5 x 10^k labelled as plain numbers (0.5, 2, 10), not 10^k."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    axis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    axis.set_minor_formatter(NullFormatter())


def _svg(plt: Any, fig: Any, name: str) -> str:
    """The figure as inline SVG that scales with the page (viewBox kept, size dropped)."""
    import matplotlib

    matplotlib.rcParams["svg.hashsalt"] = name  # ids unique per figure, output reproducible
    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight", metadata={"Date": None})
    plt.close(fig)
    text = buf.getvalue()
    text = text[text.index("<svg") :]
    return re.sub(
        r'<svg([^>]*?) width="[^"]*" height="[^"]*"',
        rf'<svg\1 id="{name}" role="img" preserveAspectRatio="xMidYMid meet"',
        text,
        count=1,
    )


def rate_svg(plt: Any, stats: Stats, result: dict[str, Any]) -> str:
    seconds = sorted(stats.seconds)
    fig, ax = plt.subplots(figsize=(6.4, 3.4))
    xs = [i + 0.5 for i in seconds]  # second i covers [i, i + 1)
    ax.plot(xs, [stats.seconds[i].answered for i in seconds], label="answers/s (achieved)")
    ax.plot(xs, [stats.seconds[i].failed for i in seconds], color="#d62728", label="failures/s")
    spec = result.get("spec") or {}
    if spec.get("model") == "open":
        ax.hlines(
            spec["rate"], 0, spec["duration"], colors=COLORS["offered"], linestyles="--",
            label="offered requests/s",
        )  # fmt: skip
    ax.set_xlabel("time since start (s)")
    ax.set_ylabel("per second")
    ax.set_title("Rate over time")
    ax.set_xlim(left=0)
    ax.set_ylim(bottom=0)
    ax.legend(loc="lower right", fontsize=8)
    return _svg(plt, fig, "plot-rate")


def latency_svg(plt: Any, stats: Stats) -> str:
    seconds = [i for i in sorted(stats.seconds) if stats.seconds[i].latency.count]
    fig, ax = plt.subplots(figsize=(6.4, 3.4))
    xs = [i + 0.5 for i in seconds]
    for p in (50.0, 90.0, 99.0):
        key = f"p{p:g}"
        ys = [stats.seconds[i].latency.percentile(p) / 1000 for i in seconds]
        ax.plot(xs, ys, color=COLORS[key], label=key)
    ax.set_yscale("log")
    _plain_log_axis(ax.yaxis)
    ax.set_xlabel("time since start (s)")
    ax.set_ylabel("latency (ms, log scale)")
    ax.set_title("Latency over time (per second)")
    ax.set_xlim(left=0)
    ax.legend(loc="upper right", fontsize=8)
    return _svg(plt, fig, "plot-latency")


def log_bins(h: Histogram) -> tuple[list[float], list[float]]:
    """(bin edges in ms, share of answers per decade) on BINS_PER_DECADE log-spaced bins.

    Each log-linear bucket (at most 1/128 of its value wide, far narrower than
    a bin) goes to the bin holding its midpoint.
    """
    if not h.count:
        return [], []
    counts: dict[int, int] = {}
    for idx, n in h.counts.items():
        low = upper_bound(idx - 1) + 1 if idx else 0
        mid = max((low + upper_bound(idx)) / 2, 0.5)
        b = math.floor(math.log10(mid) * BINS_PER_DECADE)
        counts[b] = counts.get(b, 0) + n
    first, last = min(counts), max(counts)
    edges = [10 ** (b / BINS_PER_DECADE) / 1000 for b in range(first, last + 2)]
    density = [counts.get(b, 0) / h.count * BINS_PER_DECADE for b in range(first, last + 1)]
    return edges, density


QUANTILE_TICKS = (0.5, 0.9, 0.99, 0.999, 0.9999)


def by_percentile(h: Histogram) -> tuple[list[float], list[float]]:
    """(1 / (1 - q), latency ms at quantile q) at each bucket's cumulative share.

    The HdrHistogram view: the x axis, log-scaled in 1/(1-q), gives every
    "nine" (90%, 99%, 99.9%) the same width, so the tail is as readable as
    the median. The last bucket (q = 1) is drawn at one more nine.
    """
    xs: list[float] = []
    ys: list[float] = []
    seen = 0
    if not h.count:
        return xs, ys
    cap = 10 * h.count
    for upper, n in h.buckets():
        ms = max(min(upper, h.max), 1) / 1000  # a bucket's bound, never past the slowest
        if not xs:  # start the line at q = 0 with the fastest answer
            xs.append(1.0)
            ys.append(ms)
        seen += n
        q = seen / h.count
        xs.append(min(1 / (1 - q), cap) if q < 1 else cap)
        ys.append(ms)
    return xs, ys


def distribution_svg(plt: Any, stats: Stats) -> str:
    from matplotlib.ticker import FixedLocator, NullFormatter, NullLocator

    everything = merged(stats.latency.values())
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 3.8))
    edges, density = log_bins(everything)
    if density:
        widths = [b - a for a, b in itertools.pairwise(edges)]
        left.bar(edges[:-1], density, width=widths, align="edge", color="#1f77b4")
    left.set_xscale("log")
    _plain_log_axis(left.xaxis)
    left.set_xlabel("latency (ms, log scale)")
    left.set_ylabel("share of answers per decade")
    left.set_title("Latency distribution")
    by_command: dict[str, list[Histogram]] = {}
    for (command, _), h in stats.latency.items():
        by_command.setdefault(command, []).append(h)
    for command, hs in sorted(by_command.items()):
        xs, ys = by_percentile(merged(hs))
        right.step(xs, ys, where="post", label=command)
    if len(by_command) > 1:
        xs, ys = by_percentile(everything)
        right.step(xs, ys, where="post", color="black", linewidth=1.5, label="all")
    right.set_xscale("log")
    right.set_yscale("log")
    _plain_log_axis(right.yaxis)
    ticks = [1 / (1 - q) for q in QUANTILE_TICKS]
    right.xaxis.set_major_locator(FixedLocator(ticks))
    right.xaxis.set_major_formatter(plt.FuncFormatter(lambda v, _: f"{100 * (1 - 1 / v):g}%"))
    right.xaxis.set_minor_locator(NullLocator())
    right.xaxis.set_minor_formatter(NullFormatter())
    right.set_xlim(1, max(ticks[-1], right.get_xlim()[1]))
    right.set_xlabel("percentile (log scale of 1 / (1 - q))")
    right.set_ylabel("latency (ms, log scale)")
    right.set_title("Latency by percentile, per command")
    right.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    return _svg(plt, fig, "plot-distribution")


def figures(result: dict[str, Any], stats: Stats) -> str:
    plt = _plotting()
    if plt is None:
        return (
            "<p class=\"note\">Plots need matplotlib: <code>pip install 'ocs[report]'</code>"
            " (or <code>matplotlib</code>) and run the report again.</p>"
        )
    if not stats.seconds or not stats.answered:
        return '<p class="note">No answers: nothing to plot.</p>'
    cap = "<figcaption>{}</figcaption>"
    return (
        '<div class="grid">'
        f"<figure>{rate_svg(plt, stats, result)}"
        + cap.format("Answers and failures per second; dashed: the offered rate (open model).")
        + f"</figure><figure>{latency_svg(plt, stats)}"
        + cap.format("p50, p90 and p99 of the answers of each second.")
        + f"</figure></div><figure>{distribution_svg(plt, stats)}"
        + cap.format(
            "Left: share of answers per decade of latency (bars as wide as their bins on the "
            "log axis, so a peak's area is its share). Right: the latency at each percentile, "
            "every nine (90%, 99%, 99.9%) as wide as the next."
        )
        + "</figure>"
    )


# --- the page ------------------------------------------------------------------


def render_html(result: dict[str, Any], stats: Stats) -> str:
    summary = json.dumps({k: v for k, v in result.items() if k != "raw"}, indent=1, default=str)
    spec = result.get("spec") or {}
    title = f"ocs load test: {spec.get('protocol', '')} {spec.get('model', '')}".strip()
    by_command = result.get("by_command") or {}
    by_result = result.get("by_result") or {}
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>{html.escape(title)}</title><style>{CSS}</style></head><body>"
        f"<h1>{html.escape(title)}</h1>"
        + summary_table(result)
        + latency_table("Latency by command", by_command, "by-command")
        + latency_table("Latency by result", by_result, "by-result")
        + "<h2>Over time and distribution</h2>"
        + figures(result, stats)
        + "<details><summary>Raw summary (JSON)</summary>"
        + f"<pre>{html.escape(summary)}</pre></details></body></html>"
    )
