"""The benchmark: ``python -m loadtest.bench`` (``make bench``), ``--quick`` for a smoke run.

In one run, on this machine, with one generator: its own Redis (the
embedded launcher on a free port), ``ocs serve`` on a generated config, the
no-op responders (:mod:`loadtest.noop`, the Python ceiling) and FreeRADIUS
+ rlm_redis when it can be installed. Steps:

(a) no-op Diameter and no-op RADIUS at their maximum (closed model);
(b) the OCS on Gy at fixed rates (open model) and at its maximum (closed),
    the maximum also with Redis at ``appendfsync everysec`` (the bench's Redis
    runs the product default, ``always``: the cost of durability);
(c) RADIUS accounting against the OCS and against FreeRADIUS;
(d) Nchf (5G converged charging over HTTP/2) against the OCS, at a fixed rate and its maximum;
(e) the OCS's CPU per answered request (``/proc/<pid>/stat`` before/after),
    and what the step made Redis do per answered request
    (:mod:`loadtest.redis_probe`: Redis process CPU from ``/proc``, the
    scripts' ``usec_per_call`` from ``INFO commandstats`` reset at the step's
    start, AOF bytes); per request type: ``python -m loadtest.luabench``.

``--only NAME`` (repeatable) runs the steps whose name contains NAME, e.g.
``--only "Gy max" --only Nchf`` for the Gy and Nchf steps of one run.

``--shards N[,N...]`` measures cluster routing instead: for each N a local
Valkey Cluster of N primaries (``appendfsync always`` as the one server,
:mod:`ocs.store.local_cluster`) with its own ``ocs serve``, and the Gy
maximum on it beside the same step on the one server, alternated
``--rounds`` times (default 2) so both see the same machine; the table's
ratio column is each cluster step's rate over the mean of the one-server
steps. At N=1 that ratio is the cost of routing (slot per command, one pipe
per primary, redirections) per request; the scaling with N needs cores for
N Redis processes plus the workers and the generator. ``--replicas 1``
gives each primary a replica and adds, per N, the same step with
``redis.durability: replica`` (every pass waits for ``WAIT 1``): the cost
of losing no acknowledged debit on failover.

Every OCS step ends with the conservation check. One table (rich) with the
ratios to the ceiling; results JSON under ``bench-results/``. The exit
status is 1 when a conservation check fails or a step produced no report.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from loadtest import freeradius
from loadtest.redis_probe import RedisProbe
from loadtest.runner import Provisioning, RunOptions, run
from loadtest.serverproc import SECRET, cpu_of_tree, free_udp_port, start_ocs
from loadtest.spec import LoadSpec, Model, Protocol, Shape, Target
from ocs.policy.loader import load_policies
from ocs.store.embedded import EmbeddedRedis, free_port
from ocs.store.local_cluster import LocalCluster

ROOT = Path(__file__).resolve().parent.parent
POLICIES = ROOT / "policies"
REALM = "bench.example"


@dataclass(frozen=True)
class Plan:
    duration: float
    rates: tuple[float, ...]
    concurrency: int
    accounts: int
    drain: float


FULL = Plan(
    duration=8.0,
    rates=(500.0, 1000.0, 2000.0, 4000.0),
    concurrency=64,
    accounts=1000,
    drain=10.0,
)
APPENDFSYNC = "always"  # the product default (config/ocs.yaml redis.appendfsync)
WORKERS = 2  # the "2 workers" steps: one per core, sharing them with Redis and the generator
QUICK = Plan(duration=2.0, rates=(200.0,), concurrency=16, accounts=20, drain=5.0)


@dataclass
class Step:
    name: str
    protocol: Protocol
    target: str  # ocs | ocs2 (ocs serve --workers 2) | noop | freeradius
    model: Model
    rate: float = 0.0
    summary: dict[str, Any] | None = None
    server_cpu_s: float | None = None
    redis: dict[str, Any] | None = None  # RedisFigures.per_request of the step
    skipped: str = ""
    appendfsync: str | None = None  # set on Redis for this step only (None: the default)
    shards: int = 0  # on a local cluster of this many primaries (0: the one server)
    durability: str = "local"  # the cluster's ocs serve: redis.durability


def _spec(plan: Plan, step: Step, port: int) -> LoadSpec:
    return LoadSpec(
        protocol=step.protocol,
        target=Target(port=port, secret=SECRET.encode(), destination_realm=REALM),
        model=step.model,
        rate=step.rate,
        concurrency=plan.concurrency,
        duration=plan.duration,
        drain=plan.drain,
        timeout=5.0,
        # More connections for the workers: the kernel spreads them over the
        # SO_REUSEPORT sockets by address hash, so a few could land unevenly.
        connections=16 if step.target == "ocs2" else 4,
        processes=1,
        # Nchf has no one-shot events here: every session is create/updates/release.
        shape=Shape(
            updates=3,
            min_mscc=2,
            max_mscc=2,
            event_share=0.0 if step.protocol is Protocol.NCHF else 0.05,
        ),
    )


class Bench:
    def __init__(
        self, plan: Plan, workdir: Path, console: Console, freeradius_wanted: bool = True
    ) -> None:
        self.freeradius_wanted = freeradius_wanted
        self.plan = plan
        self.dir = workdir
        self.console = console
        self.policies = load_policies(POLICIES)
        self.redis = EmbeddedRedis(
            workdir / "redis", appendfsync=APPENDFSYNC, port=free_port(), die_with_parent=True
        )
        self.ocs: Any = None
        self.ocs2: Any = None  # started for the --workers steps only
        self.noop: subprocess.Popen[bytes] | None = None
        self.probe: RedisProbe | None = None  # made when Redis has started
        self.noop_ports = (free_port(), free_udp_port())
        self.fr: freeradius.FreeRadius | None = None
        self.fr_skip = ""
        self.clusters: dict[int, LocalCluster] = {}  # shards -> its local cluster
        self.on_cluster: dict[tuple[int, str], Any] = {}  # (shards, durability) -> ocs serve
        self.replicas = 0  # per primary of those clusters (--replicas)

    def start(self) -> None:
        self.redis.start()
        pid = self.redis.process.pid if self.redis.process else None
        self.probe = RedisProbe(self.redis.url, pid)
        self.ocs = start_ocs(self.dir, self.redis.url, POLICIES)
        self.noop = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "loadtest.noop",
                "--diameter-port",
                str(self.noop_ports[0]),
                "--radius-port",
                str(self.noop_ports[1]),
                "--secret",
                SECRET,
            ],
            stdin=subprocess.DEVNULL,
        )
        self.fr_skip = (
            freeradius.ensure_installed() or "" if self.freeradius_wanted else "--no-freeradius"
        )
        if not self.fr_skip:
            try:
                self.fr = freeradius.FreeRadius(
                    self.dir / "freeradius", free_udp_port(), SECRET, self.redis.port
                )
                self.fr.start()
            except (RuntimeError, OSError) as exc:
                self.fr, self.fr_skip = None, f"FreeRADIUS did not start: {exc}"
        time.sleep(0.5)

    def stop(self) -> None:
        if self.probe is not None:
            self.probe.close()
        if self.fr is not None:
            self.fr.stop()
        if self.noop is not None:
            self.noop.terminate()
            self.noop.wait(10)
        if self.ocs is not None:
            self.ocs.stop()
        if self.ocs2 is not None:
            self.ocs2.stop()
        for server in self.on_cluster.values():
            server.stop()
        for cluster in self.clusters.values():
            cluster.stop()
        self.redis.stop()
        self.redis.kill()

    def port(self, step: Step) -> int:
        if step.target == "noop":
            return self.noop_ports[0 if step.protocol is Protocol.GY else 1]
        if step.target == "freeradius":
            assert self.fr is not None
            return self.fr.port
        server = self.ocs2 if step.target == "ocs2" else self.ocs
        if step.shards:
            server = self.on_cluster[step.shards, step.durability]
        if step.protocol is Protocol.NCHF:
            return int(server.nchf_port)
        return int(server.diameter_port if step.protocol is Protocol.GY else server.radius_port)

    def run_step(self, step: Step) -> None:
        if step.target == "freeradius" and self.fr is None:
            step.skipped = self.fr_skip
            self.console.print(f"[yellow]skipped {step.name}: {self.fr_skip}[/]")
            return
        self.console.print(f"[bold]{step.name}[/] ...")
        ocs = step.target in ("ocs", "ocs2")
        if step.target == "ocs2" and self.ocs2 is None:
            # Only while its steps run, so it takes no CPU from the others.
            self.ocs.stop()
            self.ocs2 = start_ocs(self.dir / "workers", self.redis.url, POLICIES, workers=WORKERS)
        store_url = self.redis.url
        server = self.ocs
        if step.shards:
            store_url = self.cluster_url(step.shards)
            server = self.cluster_server(step.shards, step.durability)
        pid = {
            "ocs": server.process.pid,
            "ocs2": self.ocs2.process.pid if self.ocs2 else 0,
            "noop": self.noop.pid if self.noop else 0,
        }.get(step.target, self.fr.pid if self.fr else 0)
        opts = RunOptions(
            _spec(self.plan, step, self.port(step)),
            store_url,
            self.policies,
            Provisioning(accounts=self.plan.accounts, extra_identity=None),
            conservation=ocs,
            out_dir=self.dir / "steps" / step.name.replace(" ", "_").replace("/", "-"),
            label=step.name,
            quiet=True,
        )
        if step.appendfsync:
            self.redis.set_appendfsync(step.appendfsync)
        try:
            before = cpu_of_tree(pid)
            # The probe watches the one server: a step on a cluster has no row of it.
            probe = None if step.shards else self.probe
            if probe is not None:
                probe.start()
            step.summary = run(opts)
            step.server_cpu_s = cpu_of_tree(pid) - before
            if probe is not None:
                step.redis = probe.stop().per_request(int(step.summary["answered"]))
        finally:
            if step.appendfsync:
                self.redis.set_appendfsync(APPENDFSYNC)

    def cluster_url(self, shards: int) -> str:
        """The URL of the local cluster of ``shards`` primaries (started once)."""
        if shards not in self.clusters:
            cluster = LocalCluster(
                self.dir / f"cluster-{shards}",
                primaries=shards,
                replicas=self.replicas,
                appendfsync=APPENDFSYNC,
            )
            cluster.start()
            self.clusters[shards] = cluster
        return self.clusters[shards].url

    def cluster_server(self, shards: int, durability: str) -> Any:
        """``ocs serve`` on that cluster with that durability (started once)."""
        if (shards, durability) not in self.on_cluster:
            where = self.dir / f"ocs-cluster-{shards}-{durability}"
            self.on_cluster[shards, durability] = start_ocs(
                where, self.cluster_url(shards), POLICIES, durability=durability
            )
        return self.on_cluster[shards, durability]


def shard_steps(shards: list[int], rounds: int, replicas: int = 0) -> list[Step]:
    """The one server's Gy max and each cluster's, alternated ``rounds`` times (with
    replicas: each cluster's also with durability replica)."""
    out = []
    for r in range(1, rounds + 1):
        out.append(Step(f"OCS Gy max, one server #{r}", Protocol.GY, "ocs", Model.CLOSED))
        for n in shards:
            out.append(
                Step(f"OCS Gy max, cluster of {n} #{r}", Protocol.GY, "ocs", Model.CLOSED, shards=n)
            )
            if replicas:
                out.append(
                    Step(
                        f"OCS Gy max, cluster of {n}, durability replica #{r}",
                        Protocol.GY,
                        "ocs",
                        Model.CLOSED,
                        shards=n,
                        durability="replica",
                    )
                )
    return out


def steps(plan: Plan) -> list[Step]:
    out = [
        Step("noop Gy max", Protocol.GY, "noop", Model.CLOSED),
        Step("noop RADIUS max", Protocol.RADIUS, "noop", Model.CLOSED),
    ]
    out += [Step(f"OCS Gy {r:g}/s", Protocol.GY, "ocs", Model.OPEN, r) for r in plan.rates]
    out += [
        Step("OCS Gy max", Protocol.GY, "ocs", Model.CLOSED),
        Step(
            "OCS Gy max, appendfsync everysec",
            Protocol.GY,
            "ocs",
            Model.CLOSED,
            appendfsync="everysec",
        ),
        Step("OCS RADIUS max", Protocol.RADIUS, "ocs", Model.CLOSED),
        Step("FreeRADIUS+redis max", Protocol.RADIUS, "freeradius", Model.CLOSED),
    ]
    nchf_rate = plan.rates[0]  # about half what one worker serves on 2 shared cores
    out += [
        Step(f"OCS Nchf {nchf_rate:g}/s", Protocol.NCHF, "ocs", Model.OPEN, nchf_rate),
        Step("OCS Nchf max", Protocol.NCHF, "ocs", Model.CLOSED),
    ]
    if plan is not QUICK:  # last: the one-worker server is stopped for them
        out += [
            Step(f"OCS Gy max, {WORKERS} workers", Protocol.GY, "ocs2", Model.CLOSED),
            Step(f"OCS RADIUS max, {WORKERS} workers", Protocol.RADIUS, "ocs2", Model.CLOSED),
        ]
    return out


def _row(
    step: Step, ceilings: dict[Protocol, float], fr_rate: float | None, one_server: float = 0.0
) -> list[str]:
    s = step.summary
    if s is None:
        return [step.name, "skipped", *[""] * 10, step.skipped[:40]]
    lat = s["latency"]
    answered = s["answered"] or 1
    server = f"{step.server_cpu_s * 1e6 / answered:,.0f}" if step.server_cpu_s else "-"
    ceiling = ceilings.get(step.protocol) or 0.0
    ratio = f"{s['rate'] / ceiling:.2f} of no-op" if ceiling and step.target != "noop" else ""
    if step.shards and one_server:
        ratio = f"{s['rate'] / one_server:.3f} of one server"
    if step.protocol is Protocol.RADIUS and step.target in ("ocs", "ocs2") and fr_rate:
        ratio += f", {s['rate'] / fr_rate:.2f} of FreeRADIUS"
    cons = s.get("conservation")
    r = step.redis or {}
    fcall = r.get("script_usec_per_call")
    return [
        step.name,
        f"{step.rate:,.0f}" if step.model is Model.OPEN else "closed",
        f"{s['rate']:,.0f}",
        f"{lat['p50_us'] / 1000:.2f}",
        f"{lat['p99_us'] / 1000:.2f}",
        f"{s['failed_answers'] + s['timeouts'] + s['disconnected']:,}",
        f"{s['generator_cpu']['us_per_request']}",
        server,
        f"{r['redis_cpu_us_per_request']:,.0f}" if r else "-",
        f"{fcall:.1f}" if fcall is not None else "-",
        f"{r['aof_bytes_per_request']:,.0f}" if r else "-",
        ("PASS" if cons["ok"] else "FAIL") if cons else "-",
        ratio,
    ]


def table(done: list[Step]) -> Table:
    ceilings = {
        st.protocol: st.summary["rate"]
        for st in done
        if st.target == "noop" and st.summary is not None
    }
    fr = next((st for st in done if st.target == "freeradius" and st.summary), None)
    fr_rate = fr.summary["rate"] if fr and fr.summary else None
    t = Table(title="ocs bench (requests/s; latency ms; CPU µs per answered request)")
    for col in (
        "step",
        "offered/s",
        "achieved/s",
        "p50",
        "p99",
        "failed",
        "gen CPU µs",
        "server CPU µs",
        "Redis CPU µs",
        "script µs/call",
        "AOF B",
        "conservation",
        "ratio",
    ):
        t.add_column(col, justify="left" if col in ("step", "ratio") else "right")
    one = [
        st.summary["rate"]
        for st in done
        if st.summary is not None and "one server" in st.name and not st.shards
    ]
    for st in done:
        t.add_row(*_row(st, ceilings, fr_rate, sum(one) / len(one) if one else 0.0))
    return t


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m loadtest.bench", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--quick", action="store_true", help="short smoke run")
    parser.add_argument("--out", type=Path, default=ROOT / "bench-results")
    parser.add_argument(
        "--no-freeradius", action="store_true", help="skip the FreeRADIUS column (no install)"
    )
    parser.add_argument(
        "--only",
        action="append",
        metavar="TEXT",
        help="run only the steps whose name contains TEXT (repeatable), e.g. 'OCS Gy max'",
    )
    parser.add_argument(
        "--shards",
        type=lambda v: [int(n) for n in v.split(",")],
        default=None,
        metavar="N[,N...]",
        help="Gy max on local clusters of N primaries beside the one server (routing cost)",
    )
    parser.add_argument("--rounds", type=int, default=2, help="alternations for --shards")
    parser.add_argument(
        "--replicas",
        type=int,
        default=0,
        choices=(0, 1),
        help="--shards: a replica per primary, and steps with durability replica",
    )
    parser.add_argument(
        "--scale",
        metavar="N,N,...",
        help="the scaling table instead: Gy max per worker count, Redis, workers and "
        "generator on cores of their own (loadtest/scale.py), e.g. 1,2,4,8",
    )
    args = parser.parse_args(argv)
    plan = QUICK if args.quick else FULL
    console = Console(width=None if sys.stdout.isatty() else 160)
    if args.scale:
        return _scale(args, console)
    done: list[Step] = []
    with tempfile.TemporaryDirectory(prefix="ocs-bench-") as tmp:
        bench = Bench(plan, Path(tmp), console, freeradius_wanted=not args.no_freeradius)
        try:
            bench.replicas = args.replicas
            bench.start()
            planned = (
                shard_steps(args.shards, args.rounds, args.replicas) if args.shards else steps(plan)
            )
            for step in planned:
                if args.only and not any(text in step.name for text in args.only):
                    continue
                bench.run_step(step)
                done.append(step)
        finally:
            bench.stop()
    console.print(table(done))
    machine = (
        f"{platform.node()} {platform.machine()} {os.cpu_count()} CPUs, {platform.python_version()}"
    )
    console.print(f"machine: {machine}")
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"bench-{time.strftime('%Y%m%dT%H%M%S')}{'-quick' if args.quick else ''}.json"
    path.write_text(
        json.dumps(
            {
                "machine": machine,
                "quick": args.quick,
                "steps": [
                    {
                        "name": st.name,
                        "protocol": st.protocol.value,
                        "target": st.target,
                        "model": st.model.value,
                        "appendfsync": st.appendfsync or APPENDFSYNC,
                        "shards": st.shards,
                        "durability": st.durability,
                        "rate": st.rate,
                        "server_cpu_s": st.server_cpu_s,
                        "redis": st.redis,
                        "skipped": st.skipped,
                        "summary": st.summary,
                    }
                    for st in done
                ],
            },
            indent=1,
            default=str,
        )
    )
    console.print(f"results: {path}")
    failed = [
        st.name
        for st in done
        if not st.skipped
        and (st.summary is None or (st.summary.get("conservation") or {"ok": True})["ok"] is False)
    ]
    if failed:
        console.print(f"[red]conservation failed or no report: {failed}[/]")
        return 1
    return 0


def _scale(args: argparse.Namespace, console: Console) -> int:
    from loadtest import scale

    try:
        counts = [int(n) for n in args.scale.split(",") if n.strip()]
    except ValueError:
        console.print(f"--scale {args.scale!r}: expected worker counts, e.g. 1,2,4,8")
        return 2
    rows, conserved = scale.main(counts, console)
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"scale-{time.strftime('%Y%m%dT%H%M%S')}.json"
    machine = f"{platform.node()} {os.cpu_count()} CPUs"
    path.write_text(json.dumps({"machine": machine, "rows": rows}, indent=1, default=str))
    console.print(f"results: {path}")
    return 0 if conserved else 1


if __name__ == "__main__":
    sys.exit(main())
