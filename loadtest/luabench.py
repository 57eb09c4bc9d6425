"""Redis-side cost of the hot-path charging scripts, measured inside the server.

Runs real sessions (initiate, k updates, terminate, 2 services each) through
:class:`ocs.charging.api.ChargingService` against a private Valkey and reads
``INFO commandstats`` after each phase: ``usec_per_call`` of FCALL is the
time the server spent in the script, whatever the Python side costs.

Several variants of the Lua sources can be compared in one run (``--variant
rev:HEAD~1 --variant dir:ocs/store/lua``): rounds interleave the variants and
the best round of each is kept, since other processes share the cores.

Wall time inside a command still moves with whatever else runs on the cores.
``--callgrind`` runs the server under valgrind's callgrind instead and counts
the instructions the whole server executes per FCALL during each phase (the
phase's few other commands included: initiate's index SET/ZADD, terminate's
ZREM): the same number on every run, to a fraction of a percent, whatever
the load. Needs ``valgrind`` (a developer tool; the server runs ~50x slower,
so use fewer sessions).

    .venv/bin/python -m loadtest.luabench --variant rev:HEAD --variant dir:ocs/store/lua
    .venv/bin/python -m loadtest.luabench --callgrind --sessions 50 --updates 4 \\
        --variant rev:HEAD --variant dir:ocs/store/lua
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvloop

from ocs.accounts import Accounts, BucketSpec
from ocs.charging.api import ChargingService
from ocs.logging import configure
from ocs.policy.loader import load_policies
from ocs.store.client import connect
from ocs.store.embedded import find_binary, free_port, start_for_tests
from ocs.store.scripts import library, part_names
from ocs.vocabulary.types import (
    Identity,
    IdentityType,
    ServiceKey,
    ServiceRequest,
    SessionRef,
    UnitType,
    Usage,
    UsedUnits,
)

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
    parts = part_names()
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
    """(name, source) of a function library of one variant, named apart from the shipped one."""
    return library(src, prefix="lb", salt=tag)


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


class Callgrind:
    """A server under callgrind: counters zeroed and dumped around a phase."""

    def __init__(self, workdir: Path) -> None:
        self.dir = workdir
        self.port = free_port()
        self.proc = subprocess.Popen(
            [
                "valgrind",
                "--tool=callgrind",
                f"--callgrind-out-file={workdir}/cg.out",
                find_binary(),
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "yes",
                "--dir",
                str(workdir),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.dumps = 0

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def _control(self, *args: str) -> None:
        subprocess.run(
            ["callgrind_control", *args, str(self.proc.pid)], check=True, capture_output=True
        )

    def zero(self) -> None:
        self._control("-z")

    def instructions(self) -> int:
        """Instructions executed since zero(), from a fresh dump."""
        self._control("-d")
        self.dumps += 1
        dump = self.dir / f"cg.out.{self.dumps}"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if dump.exists():
                for line in dump.read_text().splitlines():
                    if line.startswith("summary:"):
                        return int(line.split()[1])
            time.sleep(0.1)
        raise RuntimeError(f"no callgrind dump {dump}")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=60)


async def _round(
    cs: ChargingService,
    sc: Scenario,
    tag: str,
    sessions: int,
    updates: int,
    cg: Callgrind | None = None,
) -> dict[str, float]:
    """One round of `sessions` sessions: per FCALL of each phase, usec and
    server CPU (usec), or instructions under callgrind."""
    acc = await Accounts.connect(cs.redis)
    ids = [Identity(IdentityType.E164, f"{tag}{i:06d}") for i in range(sessions)]
    for ident in ids:
        await acc.create([ident], sc.plan, "EUR", list(sc.buckets))
    refs = [SessionRef(f"{tag}-s{i}") for i in range(sessions)]
    out: dict[str, float] = {}

    async def phase(name: str, run: Callable[[], Awaitable[None]]) -> None:
        await cs.redis.config_resetstat()
        cpu0 = await _server_cpu(cs)
        if cg is not None:
            cg.zero()
        await run()
        ins = cg.instructions() if cg is not None else 0
        cpu1 = await _server_cpu(cs)
        calls, usec = await _fcall_stats(cs)
        out[name] = usec / max(calls, 1)
        out[name + " cpu"] = (cpu1 - cpu0) * 1e6 / max(calls, 1)
        out[name + " ins"] = ins / max(calls, 1)

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


@contextlib.contextmanager
def _server(workdir: Path, callgrind: bool) -> Iterator[tuple[str, Callgrind | None]]:
    if not callgrind:
        srv = start_for_tests(workdir)
        try:
            yield srv.url, None
        finally:
            srv.stop()
        return
    cg = Callgrind(workdir)
    try:
        yield cg.url, cg
    finally:
        cg.stop()


@contextlib.asynccontextmanager
async def _service(url: str, sc: Scenario) -> AsyncIterator[ChargingService]:
    client = connect(url, timeout=600)
    deadline = time.monotonic() + 120
    while True:  # a server under valgrind takes seconds to start
        try:
            await client.ping()
            break
        except Exception:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.5)
    try:
        yield await ChargingService.connect(client, load_policies(sc.policies))
    finally:
        await client.aclose()


async def main(args: argparse.Namespace) -> None:
    configure("warning", "json")
    sc = _scenarios()[args.scenario]
    with tempfile.TemporaryDirectory() as tmp, _server(Path(tmp), args.callgrind) as (url, cg):
        async with _service(url, sc) as cs:
            libs = []
            for spec in args.variant:
                name, source = assemble(variant_sources(spec), spec)
                await cs.redis.function_load(source, replace=True)
                libs.append((spec, name))
            best: dict[str, dict[str, float]] = {spec: {} for spec, _ in libs}
            for r in range(args.rounds):
                for v, (spec, name) in enumerate(libs):
                    cs.store.library = name
                    tag = f"7{r:02d}{v:02d}"
                    got = await _round(cs, sc, tag, args.sessions, args.updates, cg)
                    print(f"round {r} {spec}: " + _line(got, cg is not None))
                    for p, value in got.items():
                        best[spec][p] = min(best[spec].get(p, float("inf")), value)
            what = "instructions per FCALL" if cg else "usec per FCALL [server CPU usec]"
            print(f"best of {args.rounds} ({args.scenario}): {what}")
            for spec, phases in best.items():
                print(f"  {spec}\n    {_line(phases, cg is not None)}")


def _line(got: dict[str, float], instructions: bool = False) -> str:
    if instructions:
        return "  ".join(f"{p} {got[p + ' ins'] / 1000:7.1f}k" for p in PHASES)
    return "  ".join(f"{p} {got[p]:6.1f} [{got[p + ' cpu']:6.1f}]" for p in PHASES)


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--variant", action="append", default=[], help="dir:PATH or rev:REVISION")
    p.add_argument("--scenario", choices=sorted(_scenarios()), default="core")
    p.add_argument("--sessions", type=int, default=200)
    p.add_argument("--updates", type=int, default=20)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument(
        "--callgrind", action="store_true", help="count instructions (valgrind) instead of time"
    )
    args = p.parse_args(argv)
    if not args.variant:
        args.variant = [f"dir:{ROOT / 'ocs' / 'store' / 'lua'}"]
    return args


if __name__ == "__main__":
    uvloop.run(main(parse()))
