"""The scaling benchmark: ``python -m loadtest.bench --scale 1,2,4,8``.

For each worker count N: Redis on a core of its own, the N workers of
``ocs serve --workers N`` on N more (one each), and the load generator on
the cores after them (``os.sched_setaffinity``; a process's children
inherit its set), so each side is measured without the others in its way.
Each step is the bench's Gy closed-model maximum (2 MSCC per CCR, the
bench's shape and accounts), with the conservation check, and prints a row:
rate, p99, server / Redis / generator CPU per answered request, the Redis
core's utilisation, and the scripts' ``usec_per_call``.

A worker count whose cores do not fit on this machine is skipped with the
count it needs. When none fits (a 2-core machine), one step runs unpinned,
every process sharing every core, and is labelled so: its figures are not
a scaling measurement. A measurement, never a test.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from loadtest.redis_probe import RedisProbe
from loadtest.runner import Provisioning, RunOptions, run
from loadtest.serverproc import SECRET, children_of, cpu_of_tree, start_ocs
from loadtest.spec import LoadSpec, Model, Protocol, Shape, Target
from ocs.policy.loader import load_policies
from ocs.store.embedded import EmbeddedRedis, free_port

ROOT = Path(__file__).resolve().parent.parent
POLICIES = ROOT / "policies"
DURATION = 8.0
ACCOUNTS = 1000


def generator_cores(workers: int) -> int:
    """Cores the generator gets beside N workers: about one per two workers."""
    return max(1, (workers + 1) // 2)


@dataclass
class Layout:
    workers: int
    redis: set[int]
    server: list[int]  # one core per worker
    generator: set[int]
    pinned: bool = True


def layouts(counts: list[int], cores: list[int]) -> tuple[list[Layout], list[str]]:
    """The core sets of each worker count that fits, and a line for each that does not."""
    out, skipped = [], []
    for n in counts:
        need = 1 + n + generator_cores(n)
        if need > len(cores):
            skipped.append(f"{n} workers: needs {need} cores, this machine has {len(cores)}")
            continue
        gen = cores[1 + n : 1 + n + generator_cores(n)]
        out.append(Layout(n, {cores[0]}, cores[1 : 1 + n], set(gen)))
    if not out and counts:
        every = set(cores)
        out.append(Layout(1, every, list(cores), every, pinned=False))
    return out, skipped


def _pin(pid: int, cores: set[int]) -> None:
    with contextlib.suppress(OSError):  # a process that has just exited
        os.sched_setaffinity(pid, cores)


def _pin_server(root: int, cores: list[int]) -> None:
    """The supervisor shares the workers' cores; each worker gets one."""
    _pin(root, set(cores))
    for core, child in zip(cores, sorted(children_of(root)), strict=False):
        _pin(child, {core})


def _spec(port: int, processes: int) -> LoadSpec:
    return LoadSpec(
        protocol=Protocol.GY,
        target=Target(port=port, secret=SECRET.encode(), destination_realm="bench.example"),
        model=Model.CLOSED,
        concurrency=64 * processes,
        duration=DURATION,
        drain=10.0,
        timeout=5.0,
        connections=16,
        processes=processes,
        shape=Shape(updates=3, min_mscc=2, max_mscc=2, event_share=0.05),
    )


def step(layout: Layout, workdir: Path) -> dict[str, Any]:
    """One worker count: its row's figures."""
    redis = EmbeddedRedis(workdir / "redis", appendfsync="always", port=free_port(),
                          die_with_parent=True)  # fmt: skip
    redis.start()
    ocs = None
    mine = os.sched_getaffinity(0)
    try:
        redis_pid = redis.process.pid if redis.process else None
        if redis_pid:
            _pin(redis_pid, layout.redis)
        ocs = start_ocs(workdir / "ocs", redis.url, POLICIES, workers=layout.workers)
        _pin_server(ocs.process.pid, layout.server)
        os.sched_setaffinity(0, layout.generator)  # the generator's processes inherit it
        probe = RedisProbe(redis.url, redis_pid)
        opts = RunOptions(
            _spec(ocs.diameter_port, len(layout.generator) if layout.pinned else 1),
            redis.url,
            load_policies(POLICIES),
            Provisioning(accounts=ACCOUNTS, extra_identity=None),
            conservation=True,
            out_dir=workdir / "run",
            label=f"scale {layout.workers}",
            quiet=True,
        )
        server0 = cpu_of_tree(ocs.process.pid)
        start = time.monotonic()
        probe.start()
        summary = run(opts)
        wall = time.monotonic() - start
        figures = probe.stop()
        server = cpu_of_tree(ocs.process.pid) - server0
        probe.close()
    finally:
        os.sched_setaffinity(0, mine)
        if ocs is not None:
            ocs.stop()
        redis.stop()
        redis.kill()
    answered = max(int(summary["answered"]), 1)
    per = figures.per_request(answered)
    return {
        "workers": layout.workers,
        "pinned": layout.pinned,
        "cores": {
            "redis": sorted(layout.redis),
            "server": layout.server,
            "generator": sorted(layout.generator),
        },
        "rate": summary["rate"],
        "p99_ms": summary["latency"]["p99_us"] / 1000,
        "server_cpu_us": server * 1e6 / answered,
        "generator_cpu_us": summary["generator_cpu"]["us_per_request"],
        "redis_core_utilisation": figures.cpu_s / max(wall, 1e-9),
        "conservation": (summary.get("conservation") or {}).get("ok"),
        **per,
    }


def table(rows: list[dict[str, Any]], skipped: list[str]) -> Table:
    t = Table(title="ocs scaling (Gy closed model, 2 MSCC; CPU µs per answered request)")
    for col in (
        "workers",
        "CCR/s",
        "p99 ms",
        "server CPU µs",
        "Redis CPU µs",
        "gen CPU µs",
        "Redis core",
        "script µs/call",
        "conservation",
    ):
        t.add_column(col, justify="right")
    for r in rows:
        label = str(r["workers"]) + ("" if r["pinned"] else " (shared cores, not pinned)")
        t.add_row(
            label,
            f"{r['rate']:,.0f}",
            f"{r['p99_ms']:.1f}",
            f"{r['server_cpu_us']:,.0f}",
            f"{r['redis_cpu_us_per_request']:,.0f}",
            f"{r['generator_cpu_us']}",
            f"{r['redis_core_utilisation'] * 100:.0f} %",
            f"{r['script_usec_per_call']}",
            "PASS" if r["conservation"] else "FAIL",
        )
    for line in skipped:
        t.add_row(line, *[""] * 8)
    return t


def main(counts: list[int], console: Console) -> tuple[list[dict[str, Any]], bool]:
    """Run every count that fits; (rows, all conserved)."""
    cores = sorted(os.sched_getaffinity(0))
    plan, skipped = layouts(counts, cores)
    for line in skipped:
        console.print(f"[yellow]{line}: skipped[/]")
    if not any(p.pinned for p in plan):
        console.print(
            f"[yellow]no worker count fits on {len(cores)} cores with Redis, the workers and the "
            "generator apart: one unpinned step for reference, not a scaling measurement[/]"
        )
    rows = []
    for layout in plan:
        console.print(f"[bold]scale: {layout.workers} workers[/] ...")
        with tempfile.TemporaryDirectory(prefix="ocs-scale-") as tmp:
            rows.append(step(layout, Path(tmp)))
    console.print(table(rows, skipped))
    return rows, all(r["conservation"] for r in rows)
