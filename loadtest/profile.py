"""Where the server's CPU goes: ``python -m loadtest.profile [--protocol gy|radius|nchf]``.

Speed work starts from a profile, not a guess: this starts what the
benchmark starts (its own Redis, ``ocs serve`` on a generated config),
drives one closed-model run at the bench's shape (2 MSCC per CCR, 64
sessions, 4 connections), samples the server with py-spy while it runs, and
prints:

- the run's rate, the server's and Redis's CPU µs per answered request;
- the samples by area: the charging core (``ocs/charging``, ``ocs/store``
  and the Redis client under them), the protocol front end, and the rest
  (the event loop, sockets, libraries called from neither);
- the functions where the samples were taken (own time) and the widest
  frames (inclusive time).

py-spy samples a live process from outside (``pip install py-spy``; on some
machines it needs ptrace permission). It samples wall-clock time of a thread
that is not idle, so time the server spends runnable but preempted counts
where it was preempted: on a 2-core machine a write that wakes Redis often
hands it the core, and that write then looks expensive. The CPU µs per
request (from /proc) are the figures to compare. A measurement, never a test.
"""

from __future__ import annotations

import argparse
import collections
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterable
from pathlib import Path

from rich.console import Console

from loadtest.bench import POLICIES, Bench, Plan, Step, _spec
from loadtest.redis_probe import RedisProbe
from loadtest.runner import Provisioning, RunOptions, run
from loadtest.serverproc import cpu_of_tree, cpu_split, start_ocs
from loadtest.spec import Model, Protocol

AREAS = (
    ("charging core", ("ocs/charging/", "ocs/store/")),
    ("diameter front end", ("protocols/diameter/",)),
    ("radius front end", ("protocols/radius/",)),
    ("nchf front end", ("protocols/nchf/",)),
)
_LINE = re.compile(r":\d+\)")


def _samples(path: Path) -> Iterable[tuple[list[str], int]]:
    """(frames root -> leaf without line numbers, count) from py-spy's raw output."""
    for line in path.read_text().splitlines():
        stack, _, count = line.rstrip().rpartition(" ")
        if stack and count.isdigit():
            yield [_LINE.sub(")", f) for f in stack.split(";")], int(count)


def summarise(path: Path, top: int = 20) -> str:
    areas: collections.Counter[str] = collections.Counter()
    own: collections.Counter[str] = collections.Counter()
    wide: collections.Counter[str] = collections.Counter()
    total = 0
    for frames, n in _samples(path):
        total += n
        joined = ";".join(frames)
        area = next((a for a, marks in AREAS if any(m in joined for m in marks)), "other")
        areas[area] += n
        own[frames[-1]] += n
        for frame in set(frames):
            wide[frame] += n
    if not total:
        return "no samples (py-spy could not attach?)"
    out = [f"{total} samples"]
    out += [f"  {n * 100 / total:5.1f}%  {a}" for a, n in areas.most_common()]
    out.append("own time (where the sample was taken):")
    out += [f"  {n * 100 / total:5.1f}%  {f}" for f, n in own.most_common(top)]
    out.append("inclusive (frames below the event loop's own):")
    skip = ("<module>", "runpy", "click/", "asyncio/runners.py", "uvloop/__init__", "ocs/cli/")
    widest = [(f, n) for f, n in wide.most_common() if not any(s in f for s in skip)]
    out += [f"  {n * 100 / total:5.1f}%  {f}" for f, n in widest[:top]]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtest.profile", description=__doc__)
    parser.add_argument("--protocol", choices=["gy", "radius", "nchf"], default="gy")
    parser.add_argument("--duration", type=float, default=8.0, help="seconds of load")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--unix", action="store_true", help="server -> Redis over its unix socket")
    parser.add_argument("--rate", type=int, default=200, help="py-spy samples per second")
    parser.add_argument("--out", type=Path, default=None, help="keep py-spy's raw output here")
    args = parser.parse_args(argv)
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(spy).exists():
        print("py-spy not found: pip install py-spy", file=sys.stderr)
        return 2
    protocol = Protocol(args.protocol)
    plan = Plan(duration=args.duration, rates=(), concurrency=64, accounts=1000, drain=5.0)
    console = Console()
    with tempfile.TemporaryDirectory(prefix="ocs-profile-") as tmp:
        work = Path(tmp)
        raw = args.out or work / "py-spy.txt"
        bench = Bench(plan, work, console, freeradius_wanted=False)
        bench.redis.start()
        try:
            url = f"unix://{bench.redis.socket_path}?db=0" if args.unix else bench.redis.url
            bench.ocs = start_ocs(work / "ocs", url, POLICIES, workers=args.workers)
            bench.ocs2 = bench.ocs
            step = Step("profile", protocol, "ocs2", Model.CLOSED)
            opts = RunOptions(
                _spec(plan, step, bench.port(step)),
                bench.redis.url,
                bench.policies,
                Provisioning(accounts=plan.accounts, extra_identity=None),
                conservation=True,
                out_dir=work / "run",
                label="profile",
                quiet=True,
            )
            server = bench.ocs.process.pid
            redis_pid = bench.redis.process.pid if bench.redis.process else None
            sampler = subprocess.Popen(
                [spy, "record", "-p", str(server), "-d", str(int(args.duration) + 3),
                 "-r", str(args.rate), "-f", "raw", "-o", str(raw), "--nonblocking",
                 *(["--subprocesses"] if args.workers > 1 else [])],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )  # fmt: skip
            probe = RedisProbe(bench.redis.url, redis_pid)
            cpu0 = cpu_of_tree(server)
            split0 = cpu_split(server)
            probe.start()
            summary = run(opts)
            figures = probe.stop()
            probe.close()
            cpu, rcpu = cpu_of_tree(server) - cpu0, figures.cpu_s
            user, system = (b - a for a, b in zip(split0, cpu_split(server), strict=True))
            sampler.wait(timeout=60)
        finally:
            if bench.ocs is not None:
                bench.ocs.stop()
            bench.redis.stop()
            bench.redis.kill()
        answered = max(int(summary["answered"]), 1)
        cons = summary.get("conservation") or {}
        print(
            f"{protocol.value}: {summary['rate']:,.0f} requests/s, server CPU "
            f"{cpu * 1e6 / answered:,.0f} µs and Redis CPU {rcpu * 1e6 / answered:,.0f} µs "
            f"per answered request, conservation {'PASS' if cons.get('ok') else 'FAIL'}"
        )
        redis = figures.per_request(answered)
        print(
            f"Redis: scripts {redis['script_calls_per_request']} calls of "
            f"{redis['script_usec_per_call']} µs per answered request (INFO commandstats), "
            f"AOF {redis['aof_bytes_per_request']:,.0f} bytes per answered request"
        )
        if args.workers == 1:
            print(
                f"server user {user * 1e6 / answered:,.0f} µs + system (syscalls, loopback "
                f"network) {system * 1e6 / answered:,.0f} µs per answered request"
            )
        print(summarise(raw) if raw.exists() else "py-spy wrote nothing")
    return 0


if __name__ == "__main__":
    sys.exit(main())
