"""One load run end to end: subscribers, generator processes, report, conservation check.

Phases: (1) create (or resolve) the test subscribers and snapshot their
balances, noting the Redis clock (stream ids are Redis milliseconds);
(2) spawn the generator processes, wait until all are connected, start them
together and show their progress; (3) close any session left open, read
the records since the start and compare (:mod:`loadtest.conservation`);
(4) summarise, print, write JSON + HTML.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing as mp
import queue as queue_mod
import secrets
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from rich.console import Console

from loadtest import provision
from loadtest.conservation import Conservation, close_leftover_sessions, compare, read_records
from loadtest.generator import process_main
from loadtest.progress import ProgressView
from loadtest.report import print_report, summarise, write_results
from loadtest.spec import LoadSpec
from loadtest.stats import Stats
from ocs.accounts import Accounts
from ocs.charging.api import ChargingService
from ocs.policy.loader import PolicySet
from ocs.store.client import connect
from ocs.vocabulary.types import IdentityType


class RunError(RuntimeError):
    """The run could not be carried out (a generator failed, nothing connected...)."""


@dataclass(frozen=True)
class Provisioning:
    accounts: int = 100
    plan: str = "prepaid"
    currency: str = "EUR"
    money: int = 100_000_000  # micro-units per account
    octets: int = 0  # an extra octet bucket per account (0: none)
    octets_rating_groups: tuple[int, ...] = ()
    existing: tuple[str, ...] = ()  # use these subscribers instead of creating accounts
    extra_identity: IdentityType | None = None  # RADIUS User-Name identity type
    run_digits: str | None = None  # the accounts' id and MSISDN digits (default: random)
    delete_after: bool = False  # delete the created accounts at the end (ocs loadtest's default)


@dataclass(frozen=True)
class RunOptions:
    spec: LoadSpec
    redis_url: str
    policies: PolicySet
    provisioning: Provisioning = Provisioning()
    conservation: bool = True
    out_dir: Path | None = None
    label: str = "load run"
    quiet: bool = False


async def _prepare(opts: RunOptions) -> tuple[list[provision.Subscriber], provision.Balances, int]:
    client = connect(opts.redis_url, timeout=10.0)
    try:
        accounts = await Accounts.connect(client)
        p = opts.provisioning
        if p.existing:
            subs = await provision.existing_subscribers(accounts, p.existing)
        else:
            subs = await provision.create_subscribers(
                accounts,
                p.accounts,
                p.plan,
                p.currency,
                p.money,
                p.octets,
                p.octets_rating_groups,
                p.extra_identity,
                p.run_digits,
            )
        before = await provision.balances(accounts, [s.account_id for s in subs])
        sec, usec = await client.time()
        return subs, before, int(sec) * 1000 + int(usec) // 1000
    finally:
        await client.aclose()


async def _check(
    opts: RunOptions, subs: list[provision.Subscriber], before: provision.Balances, since_ms: int
) -> Conservation:
    client = connect(opts.redis_url, timeout=10.0)
    try:
        charging = await ChargingService.connect(client, opts.policies)
        ids = [s.account_id for s in subs]
        closed = await close_leftover_sessions(charging, ids)
        accounts = await Accounts.connect(client)
        after = await provision.balances(accounts, ids)
        records, bad = await read_records(client, charging.partitions, since_ms, set(ids))
        result = compare(before, after, records)
        result.sessions_closed_by_check = closed
        result.undecodable = bad
        return result
    finally:
        await client.aclose()


def _generate(spec: LoadSpec, label: str, quiet: bool) -> tuple[Stats, dict[str, int]]:
    ctx = mp.get_context("spawn")
    q: Any = ctx.Queue()
    go = ctx.Event()
    start_at: Any = ctx.Value("d", 0.0)
    procs = [
        ctx.Process(
            target=process_main, args=(spec.for_process(i), i, q, go, start_at), daemon=True
        )
        for i in range(spec.processes)
    ]
    for proc in procs:
        proc.start()
    stats = Stats()
    sessions: dict[str, int] = {}
    try:
        _wait_ready(q, spec.processes, spec.timeout + 60)
        start_at.value = time.time()
        go.set()
        bound = time.monotonic() + spec.duration + spec.drain + spec.timeout + 30
        done = 0
        console = Console(stderr=True, quiet=quiet)
        with ProgressView(spec.processes, label, console, spec) as view:
            while done < spec.processes:
                if time.monotonic() > bound:
                    raise RunError("generator processes did not finish in time")
                try:
                    kind, index, payload = q.get(timeout=0.25)
                except queue_mod.Empty:
                    if not any(p.is_alive() for p in procs):
                        raise RunError("generator processes exited without a result") from None
                    continue
                if kind == "progress":
                    view.update(index, payload)
                elif kind == "result":
                    stats.merge(Stats.from_dict(payload["stats"]))
                    for k, v in payload["sessions"].items():
                        sessions[k] = sessions.get(k, 0) + int(v)
                    done += 1
                elif kind == "error":
                    raise RunError(f"generator {index} failed: {payload}")
    finally:
        for proc in procs:
            proc.join(timeout=5)
            if proc.is_alive():
                proc.terminate()
    sessions["unfinished"] = sessions.pop("active", 0)
    return stats, sessions


def _wait_ready(q: Any, count: int, limit: float) -> None:
    ready = 0
    bound = time.monotonic() + limit
    while ready < count:
        try:
            kind, index, payload = q.get(timeout=max(0.1, bound - time.monotonic()))
        except queue_mod.Empty:
            raise RunError("generator processes did not connect in time") from None
        if kind == "error":
            raise RunError(f"generator {index} failed to start: {payload}")
        if kind == "ready":
            ready += 1


def run(opts: RunOptions) -> dict[str, Any]:
    """Carry out one run; returns the summary (and writes files when out_dir is set)."""
    subs, before, since_ms = asyncio.run(_prepare(opts))
    try:
        return _run(opts, subs, before, since_ms)
    finally:
        if opts.provisioning.delete_after and not opts.provisioning.existing:
            asyncio.run(_delete(opts, [s.account_id for s in subs]))


async def _delete(opts: RunOptions, ids: list[str]) -> None:
    client = connect(opts.redis_url, timeout=10.0)
    try:
        await provision.delete_subscribers(await Accounts.connect(client), ids)
    finally:
        await client.aclose()


def _run(
    opts: RunOptions, subs: list[provision.Subscriber], before: provision.Balances, since_ms: int
) -> dict[str, Any]:
    spec = replace(
        opts.spec,
        subscribers=tuple(s.value for s in subs),
        run_id=opts.spec.run_id if opts.spec.run_id != "00000000" else secrets.token_hex(4),
    )
    stats, sessions = _generate(spec, opts.label, opts.quiet)
    summary = summarise(stats, sessions, load_seconds=spec.duration)
    summary["spec"] = {
        "protocol": spec.protocol.value,
        "model": spec.model.value,
        "rate": spec.rate,
        "concurrency": spec.concurrency,
        "duration": spec.duration,
        "sessions": spec.sessions,
        "processes": spec.processes,
        "connections": spec.connections,
        "updates": spec.shape.updates,
        "mscc": [spec.shape.min_mscc, spec.shape.max_mscc],
        "event_share": spec.shape.event_share,
        "subscribers": len(subs),
        "target": f"{spec.target.host}:{spec.target.port}",
    }
    if opts.conservation:
        if stats.counters.get("timeout", 0):
            time.sleep(1.0)  # let requests that timed out here finish in the server
        summary["conservation"] = asyncio.run(_check(opts, subs, before, since_ms)).to_dict()
    if not opts.quiet:
        print_report(summary)
    if opts.out_dir is not None:
        paths = write_results(opts.out_dir, summary, stats)
        summary["files"] = [str(p) for p in paths]
        print(f"report: {paths[1]}", flush=True)  # the last line, --quiet or not
    return summary


__all__ = ["Provisioning", "RunError", "RunOptions", "run"]
_ = contextlib
