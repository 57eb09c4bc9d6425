"""Redis-side cost of the hot-path charging scripts, measured inside the server.

Runs real sessions (initiate, k updates, terminate, 2 services each) through
:class:`ocs.charging.api.ChargingService` against a private Valkey and reads
``INFO commandstats`` after each phase: ``usec_per_call`` of FCALL is the
time the server spent in the script, whatever the Python side costs.

Several variants of the Lua sources can be compared in one run (``--variant
rev:HEAD~1 --variant dir:ocs/store/lua``): rounds interleave the variants and
the best round of each is kept, since other processes share the cores.

    .venv/bin/python -m loadtest.luabench --variant rev:HEAD --variant dir:ocs/store/lua
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import subprocess
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvloop

from ocs.accounts import Accounts, BucketSpec
from ocs.charging.api import ChargingService
from ocs.charging.types import (
    Identity,
    IdentityType,
    ServiceKey,
    ServiceRequest,
    SessionRef,
    UnitType,
    Usage,
    UsedUnits,
)
from ocs.logging import configure
from ocs.policy.loader import load_policies
from ocs.store.client import connect
from ocs.store.embedded import start_for_tests
from ocs.store.scripts import _PARTS, HOT_FUNCTIONS

ROOT = Path(__file__).resolve().parent.parent
PHASES = ("initiate", "update", "terminate")


@dataclass(frozen=True)
class Scenario:
    policies: Path
    plan: str
    usage: int  # octets reported per service per update
    buckets: tuple[BucketSpec, ...]


def _scenarios() -> dict[str, Scenario]:
    money = BucketSpec(UnitType.MONEY, 10**12)
    return {
        # `make bench`: the shipped policies, one money bucket.
        "bench": Scenario(ROOT / "policies", "prepaid", 3_000_000, (money,)),
        # /tmp/corebench.py: test policies (video has dynamic grants).
        "core": Scenario(ROOT / "tests" / "policies", "basic", 1000, (money,)),
        # Several buckets per chain: the consumption order matters.
        "buckets": Scenario(
            ROOT / "tests" / "policies",
            "basic",
            1000,
            (
                money,
                BucketSpec(UnitType.MONEY, 10**9, "promo", expires=4_000_000_000, priority=50),
                BucketSpec(UnitType.TOTAL_OCTETS, 10**12, "data", rating_groups=(10,)),
                BucketSpec(
                    UnitType.TOTAL_OCTETS, 10**12, "night", expires=4_000_000_000, priority=10
                ),
                BucketSpec(UnitType.TOTAL_OCTETS, 10**12, "video", rating_groups=(20,)),
            ),
        ),
    }


def variant_sources(spec: str) -> dict[str, str]:
    """Lua part name -> source, from ``dir:PATH`` or ``rev:GIT-REVISION``."""
    kind, _, where = spec.partition(":")
    parts = {p for ps in _PARTS.values() for p in ps}
    if kind == "dir":
        return {p: (Path(where) / f"{p}.lua").read_text() for p in parts}
    if kind == "rev":
        return {
            p: subprocess.run(
                ["git", "show", f"{where}:ocs/store/lua/{p}.lua"],
                cwd=ROOT,
                check=True,
                capture_output=True,
                text=True,
            ).stdout
            for p in parts
        }
    raise SystemExit(f"variant {spec!r}: expected dir:PATH or rev:REVISION")


def assemble(src: Mapping[str, str], tag: str) -> tuple[str, str]:
    """(name, source) of a function library, as ocs.store.scripts.library() builds it."""
    bodies = [(n, "\n".join(src[p] for p in _PARTS[n][1:])) for n in HOT_FUNCTIONS]
    digest = hashlib.sha1((tag + src["lib"] + "".join(b for _, b in bodies)).encode()).hexdigest()[
        :12
    ]
    name = f"lb_{digest}"
    out = [f"#!lua name={name}", src["lib"]]
    for fn, body in bodies:
        out.append(f"redis.register_function('{name}_{fn}', function(KEYS, ARGV)\n{body}\nend)")
    return name, "\n".join(out) + "\n"


def _services(usage: int) -> list[ServiceRequest]:
    used = (UsedUnits(Usage(total_octets=usage)),) if usage else ()
    return [ServiceRequest(ServiceKey(rg), Usage(), used) for rg in (10, 20)]


async def _fcall_stats(cs: ChargingService) -> tuple[int, int]:
    info: dict[str, Any] = await cs.redis.info("commandstats")
    st = info.get("cmdstat_fcall", {"calls": 0, "usec": 0})
    return int(st["calls"]), int(st["usec"])


async def _server_cpu(cs: ChargingService) -> float:
    """CPU seconds of the server's main thread (commands, I/O, AOF feed)."""
    info: dict[str, Any] = await cs.redis.info("cpu")
    return float(info["used_cpu_user_main_thread"]) + float(info["used_cpu_sys_main_thread"])


async def _round(
    cs: ChargingService, sc: Scenario, tag: str, sessions: int, updates: int
) -> dict[str, float]:
    """One round of `sessions` sessions: usec per FCALL of each phase."""
    acc = await Accounts.connect(cs.redis)
    ids = [Identity(IdentityType.E164, f"{tag}{i:06d}") for i in range(sessions)]
    for ident in ids:
        await acc.create([ident], sc.plan, "EUR", list(sc.buckets))
    refs = [SessionRef(f"{tag}-s{i}") for i in range(sessions)]
    out: dict[str, float] = {}

    async def phase(name: str, run: Any) -> None:
        await cs.redis.config_resetstat()
        cpu0 = await _server_cpu(cs)
        await run()
        cpu1 = await _server_cpu(cs)
        calls, usec = await _fcall_stats(cs)
        out[name] = usec / max(calls, 1)
        out[name + " cpu"] = (cpu1 - cpu0) * 1e6 / max(calls, 1)

    async def initiate() -> None:
        await asyncio.gather(*(cs.initiate(s, ids[i], _services(0)) for i, s in enumerate(refs)))

    async def update() -> None:
        async def one(i: int) -> None:
            for k in range(1, updates + 1):
                await cs.update(refs[i], str(k), _services(sc.usage))

        await asyncio.gather(*(one(i) for i in range(sessions)))

    async def terminate() -> None:
        await asyncio.gather(
            *(cs.terminate(s, str(updates + 1), _services(sc.usage)) for s in refs)
        )

    await phase("initiate", initiate)
    await phase("update", update)
    await phase("terminate", terminate)
    return out


async def main(args: argparse.Namespace) -> None:
    configure("warning", "json")
    sc = _scenarios()[args.scenario]
    with tempfile.TemporaryDirectory() as tmp:
        srv = start_for_tests(Path(tmp))
        client = connect(srv.url)
        try:
            cs = await ChargingService.connect(client, load_policies(sc.policies))
            libs = []
            for spec in args.variant:
                name, source = assemble(variant_sources(spec), spec)
                await client.function_load(source, replace=True)
                libs.append((spec, name))
            best: dict[str, dict[str, float]] = {spec: {} for spec, _ in libs}
            for r in range(args.rounds):
                for v, (spec, name) in enumerate(libs):
                    cs.library = name
                    got = await _round(cs, sc, f"7{r:02d}{v:02d}", args.sessions, args.updates)
                    print(f"round {r} {spec}: " + _line(got))
                    for p, value in got.items():
                        best[spec][p] = min(best[spec].get(p, float("inf")), value)
            print(f"best of {args.rounds} ({args.scenario}): usec per FCALL [server CPU]")
            for spec, phases in best.items():
                print(f"  {spec}\n    {_line(phases)}")
        finally:
            await client.aclose()
            srv.stop()


def _line(got: dict[str, float]) -> str:
    return "  ".join(f"{p} {got[p]:6.1f} [{got[p + ' cpu']:6.1f}]" for p in PHASES)


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--variant", action="append", default=[], help="dir:PATH or rev:REVISION")
    p.add_argument("--scenario", choices=sorted(_scenarios()), default="core")
    p.add_argument("--sessions", type=int, default=200)
    p.add_argument("--updates", type=int, default=20)
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args(argv)
    if not args.variant:
        args.variant = [f"dir:{ROOT / 'ocs' / 'store' / 'lua'}"]
    return args


if __name__ == "__main__":
    uvloop.run(main(parse()))
