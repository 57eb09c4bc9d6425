"""Redis-side cost of the hot-path charging scripts, per request shape, measured inside the server.

For each shape (a CCR's services and an account's buckets, or a session's
history) it opens sessions through :class:`ocs.charging.api.ChargingService`
against a private Valkey, gives each its prior updates, then measures one
CCR-I, one CCR-U and one CCR-T per session, each phase on its own:

- ``usec_per_call`` of the script (``INFO commandstats``, reset at the
  phase's start): the time the server spent inside it;
- server CPU per call (``INFO cpu`` of the main thread: commands, I/O, AOF);
- AOF bytes per request (``INFO persistence`` ``aof_current_size``): what
  the request makes the server write and propagate (index writes included);
- with ``--callgrind``, instructions per call instead of time: the server
  runs under valgrind's callgrind and the count is the same on every run,
  to a fraction of a percent, whatever else runs on the cores (needs
  ``valgrind``; the server runs ~50x slower, so use fewer sessions).

Shapes, one factor changed at a time from the first:

- ``2 mscc``: two services (RG 10, 20) reporting usage, one money bucket,
  one prior update;
- ``1 mscc``: one service;
- ``unit buckets``: a data bucket pays the usage, money only beyond it;
- ``20 buckets``: money, promotions and data/voice bundles (20 in all);
- ``200 prior``: a session with 200 updates behind it.

Lua variants can be compared in one run (``--variant rev:HEAD~1 --variant
dir:ocs/store/lua``, sharing this checkout's argument layout): rounds
interleave them and the best round of each is kept, since other processes
share the cores.

    .venv/bin/python -m loadtest.luabench
    .venv/bin/python -m loadtest.luabench --callgrind --sessions 20
    .venv/bin/python -m loadtest.luabench --shape "2 mscc" \\
        --variant rev:HEAD --variant dir:ocs/store/lua
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
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


FAR = 4_000_000_000  # an expiry after every run


@dataclass(frozen=True)
class Shape:
    name: str
    mscc: int  # services per request (RG 10, then 20)
    buckets: tuple[BucketSpec, ...]
    prior: int  # updates of each session before the measured one
    usage: int = 3_000_000  # octets each service reports per update


def _money() -> BucketSpec:
    return BucketSpec(UnitType.MONEY, 10**12)


def _twenty() -> tuple[BucketSpec, ...]:
    """Money, promotions and bundles: 20 buckets, some for other services."""
    out = [_money()]
    out += [
        BucketSpec(UnitType.MONEY, 10**9, f"promo{i}", expires=FAR - i, priority=50 + i)
        for i in range(4)
    ]
    for rg, unit, n in ((10, UnitType.TOTAL_OCTETS, 5), (20, UnitType.TOTAL_OCTETS, 5)):
        out += [
            BucketSpec(unit, 10**13, f"rg{rg}-{i}", expires=FAR - i, rating_groups=(rg,))
            for i in range(n)
        ]
    out += [
        BucketSpec(UnitType.SECONDS, 10**9, f"voice{i}", expires=FAR - i, rating_groups=(30,))
        for i in range(5)
    ]
    return tuple(out)


def shapes() -> dict[str, Shape]:
    data = BucketSpec(UnitType.TOTAL_OCTETS, 10**15, "data", rating_groups=(10, 20))
    return {
        s.name: s
        for s in (
            Shape("2 mscc", 2, (_money(),), 1),
            Shape("1 mscc", 1, (_money(),), 1),
            Shape("unit buckets", 2, (_money(), data), 1),
            Shape("20 buckets", 2, _twenty(), 1),
            Shape("200 prior", 2, (_money(),), 200),
        )
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


def _services(mscc: int, usage: int) -> list[ServiceRequest]:
    used = (UsedUnits(Usage(total_octets=usage)),) if usage else ()
    return [ServiceRequest(ServiceKey(rg), Usage(), used) for rg in (10, 20)[:mscc]]


async def _script_stats(cs: ChargingService) -> tuple[int, int]:
    """Calls and microseconds of the scripts (FCALL, or EVALSHA without functions)."""
    info: dict[str, Any] = await cs.redis.info("commandstats")
    calls = usec = 0
    for name in ("cmdstat_fcall", "cmdstat_evalsha"):
        st = info.get(name, {"calls": 0, "usec": 0})
        calls, usec = calls + int(st["calls"]), usec + int(st["usec"])
    return calls, usec


async def _server_cpu(cs: ChargingService) -> float:
    """CPU seconds of the server's main thread (commands, I/O, AOF feed)."""
    info: dict[str, Any] = await cs.redis.info("cpu")
    return float(info["used_cpu_user_main_thread"]) + float(info["used_cpu_sys_main_thread"])


async def _aof_size(cs: ChargingService) -> int:
    info: dict[str, Any] = await cs.redis.info("persistence")
    return int(info.get("aof_current_size", 0))


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


PHASES = ("initiate", "update", "terminate")


async def _round(
    cs: ChargingService,
    shape: Shape,
    tag: str,
    sessions: int,
    cg: Callgrind | None = None,
) -> dict[str, float]:
    """One round of `sessions` sessions of one shape: per script call of each
    phase, usec, server CPU usec, AOF bytes and (under callgrind) instructions."""
    acc = await Accounts.connect(cs.redis)
    ids = [Identity(IdentityType.E164, f"{tag}{i:06d}") for i in range(sessions)]
    for ident in ids:
        await acc.create([ident], "prepaid", "EUR", list(shape.buckets))
    refs = [SessionRef(f"{tag}-s{i}", owner="luabench") for i in range(sessions)]
    out: dict[str, float] = {}
    svcs = _services(shape.mscc, shape.usage)

    async def phase(name: str, run: Callable[[], Awaitable[None]]) -> None:
        await cs.redis.config_resetstat()
        cpu0, aof0 = await _server_cpu(cs), await _aof_size(cs)
        if cg is not None:
            cg.zero()
        await run()
        ins = cg.instructions() if cg is not None else 0
        cpu1, aof1 = await _server_cpu(cs), await _aof_size(cs)
        calls, usec = await _script_stats(cs)
        n = max(calls, 1)
        out[name] = usec / n
        out[name + " cpu"] = (cpu1 - cpu0) * 1e6 / n
        out[name + " aof"] = (aof1 - aof0) / n
        out[name + " ins"] = ins / n

    async def each(call: Callable[[int], Awaitable[object]]) -> None:
        await asyncio.gather(*(call(i) for i in range(sessions)))

    async def prior(i: int) -> None:
        for k in range(1, shape.prior + 1):
            await cs.update(refs[i], str(k), svcs)

    last = shape.prior + 1
    await phase(
        "initiate",
        lambda: each(lambda i: cs.initiate(refs[i], ids[i], svcs[:0] or _services(shape.mscc, 0))),
    )
    await each(prior)
    await phase("update", lambda: each(lambda i: cs.update(refs[i], str(last), svcs)))
    await phase("terminate", lambda: each(lambda i: cs.terminate(refs[i], str(last + 1), svcs)))
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
async def _service(url: str, policies: Path) -> AsyncIterator[ChargingService]:
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
        yield await ChargingService.connect(client, load_policies(policies))
    finally:
        await client.aclose()


async def measure(args: argparse.Namespace) -> dict[str, dict[str, dict[str, float]]]:
    """shape -> variant -> figures (the best of the rounds, each figure on its own)."""
    configure("warning", "json")
    policies = ROOT / "policies"
    chosen = [shapes()[n] for n in args.shape] if args.shape else list(shapes().values())
    results: dict[str, dict[str, dict[str, float]]] = {}
    with tempfile.TemporaryDirectory() as tmp, _server(Path(tmp), args.callgrind) as (url, cg):
        async with _service(url, policies) as cs:
            # The AOF is measured by its growth: no automatic rewrite may shrink it.
            await cs.redis.config_set("auto-aof-rewrite-percentage", 0)
            libs = []
            for spec in args.variant:
                name, source = assemble(variant_sources(spec), spec)
                await cs.redis.function_load(source, replace=True)
                libs.append((spec, name))
            for si, shape in enumerate(chosen):
                best: dict[str, dict[str, float]] = {spec: {} for spec, _ in libs}
                for r in range(args.rounds):
                    for v, (spec, name) in enumerate(libs):
                        cs.store.library = name
                        tag = f"7{si:02d}{r:02d}{v:02d}"
                        got = await _round(cs, shape, tag, args.sessions, cg)
                        for k, value in got.items():
                            best[spec][k] = min(best[spec].get(k, float("inf")), value)
                results[shape.name] = best
                for spec, figures in best.items():
                    print(f"{shape.name:13s} {_line(figures, cg is not None)}  {spec}", flush=True)
    return results


def _line(got: dict[str, float], instructions: bool = False) -> str:
    if instructions:
        cols = [f"{p[0].upper()} {got[p + ' ins'] / 1000:6.1f}k" for p in PHASES]
    else:
        cols = [f"{p[0].upper()} {got[p]:5.1f} [{got[p + ' cpu']:5.1f}]" for p in PHASES]
    aof = "/".join(f"{got[p + ' aof']:.0f}" for p in PHASES)
    cols.append(f"AOF {aof} B")
    return "  ".join(cols)


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--variant", action="append", default=[], help="dir:PATH or rev:REVISION")
    p.add_argument("--shape", action="append", choices=sorted(shapes()), help="default: all")
    p.add_argument("--sessions", type=int, default=100)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--json", type=Path, default=None, help="write the figures here")
    p.add_argument(
        "--callgrind", action="store_true", help="count instructions (valgrind) instead of time"
    )
    args = p.parse_args(argv)
    if not args.variant:
        args.variant = [f"dir:{ROOT / 'ocs' / 'store' / 'lua'}"]
    if args.callgrind and args.rounds == 3:
        args.rounds = 1  # the count does not move between rounds
    return args


async def main(args: argparse.Namespace) -> None:
    what = "instructions per call" if args.callgrind else "usec per call [server CPU usec]"
    print(f"per script call: {what}; AOF bytes per request (I/U/T)")
    results = await measure(args)
    if args.json is not None:
        args.json.write_text(json.dumps({"callgrind": args.callgrind, "shapes": results}, indent=1))


if __name__ == "__main__":
    uvloop.run(main(parse()))
