"""Fuzzing `ocs serve`'s RADIUS listeners over the wire (standards §3.7: bad input is
dropped silently and counted; the server keeps serving). Seeded (OCS_FUZZ_SEED replays a
run), bounded in count; afterwards a clean session is charged exactly, every datagram
the server received is accounted for (an answer or a counted drop), no request failed
inside the server, and its resident memory is reported and bounded."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

import pytest

from ocs.accounts import Accounts
from ocs.charging.api import ChargingService
from tests.core_fixtures import NewAccount
from tests.faults.radius_fuzz import ACCT, Fuzzer
from tests.faults.radius_peer import (
    Node,
    Peer,
    accounting,
    by_label,
    log_events,
    radius_node,
    rcvbuf_errors,
    rss_kib,
    settled_metrics,
    total,
)
from tests.integration.radius.test_radius_accounting import money, records_of

SEED = int(os.environ.get("OCS_FUZZ_SEED", "13"))
RSS_BOUND_MIB = 50  # growth allowed over the fuzz (caches are bounded by configuration)
PACE = 50  # datagrams between two pauses of 20 ms (~2,500/s at most)


async def blast(node: Node, fuzzer: Fuzzer, count: int) -> dict[str, int]:
    """Send ``count`` fuzz cases from 4 sockets, paced; per kind, how many were sent."""
    peers = [await Peer.open() for _ in range(4)]
    kinds: dict[str, int] = {}
    try:
        for n, (port, kind, raw) in enumerate(fuzzer.cases(count)):
            peers[n % 4].send(raw, node.acct if port == ACCT else node.auth)
            kinds[kind] = kinds.get(kind, 0) + 1
            if n % PACE == PACE - 1:
                await asyncio.sleep(0.02)
        await asyncio.sleep(2.0)  # answers still on their way
        kinds["answers"] = sum(p.received for p in peers)
    finally:
        for peer in peers:
            peer.close()
    return kinds


async def clean_session(
    node: Node, accounts: Accounts, charging: ChargingService, new_account: NewAccount
) -> None:
    """After the fuzz: Start and Stop of 5,000 octets are answered and charged 50 exactly."""
    a = await new_account(money=1_000_000)
    peer = await Peer.open()
    try:
        base = {
            "NAS_IP_Address": "127.0.0.1",
            "Acct_Session_Id": f"clean-{SEED}",
            "User_Name": a.identity.value,
        }
        assert await peer.exchange(accounting(1, Acct_Status_Type="Start", **base), node.acct)
        stop = accounting(2, Acct_Status_Type="Stop", Acct_Input_Octets=5_000, **base)
        assert await peer.exchange(stop, node.acct)
    finally:
        peer.close()
    assert await money(accounts, a.account_id) == (1_000_000 - 50, 0)
    assert len(await records_of(charging, a.account_id)) == 1


async def fuzz(
    tmp_path: Path,
    redis_url: str,
    accounts: Accounts,
    charging: ChargingService,
    new_account: NewAccount,
    count: int,
) -> None:
    users = [(await new_account(money=100_000_000)).identity.value for _ in range(20)]
    fuzzer = Fuzzer(SEED, users)
    with radius_node(tmp_path, redis_url) as node:
        await blast(node, Fuzzer(SEED + 1, users), 500)  # warm-up: imports, caches, pools
        await asyncio.sleep(1.0)
        before = await asyncio.to_thread(settled_metrics, node.metrics_port)
        rss_before, kernel_before = rss_kib(node.proc.pid), rcvbuf_errors()
        sent = await blast(node, fuzzer, count)
        after = await asyncio.to_thread(settled_metrics, node.metrics_port)
        rss_after, kernel_after = rss_kib(node.proc.pid), rcvbuf_errors()
        await clean_session(node, accounts, charging, new_account)

    def delta(name: str) -> int:
        return int(total(after, name) - total(before, name))

    drops = {
        r: int(v - by_label(before, "ocs_radius_drops_total", "reason").get(r, 0))
        for r, v in by_label(after, "ocs_radius_drops_total", "reason").items()
    }
    outcomes = {
        o: int(v - by_label(before, "ocs_radius_accounting_total", "outcome").get(o, 0))
        for o, v in by_label(after, "ocs_radius_accounting_total", "outcome").items()
    }
    handled = delta("ocs_radius_responses_total") + delta("ocs_radius_duplicates_total")
    received = handled + sum(drops.values())
    lost_in_kernel = kernel_after - kernel_before  # host-wide: an upper bound for ours
    growth_mib = (rss_after - rss_before) / 1024
    print(
        f"RADIUS wire fuzz, seed {SEED}: {count} datagrams sent {sent}; server: "
        f"{handled} answered, {sum(drops.values())} dropped {drops}; accounting outcomes "
        f"{outcomes}; kernel buffer drops (host) {lost_in_kernel}; RSS {rss_before / 1024:.1f} "
        f"-> {rss_after / 1024:.1f} MiB ({growth_mib:+.1f})"
    )
    for crash in log_events(node, "radius_internal_error"):
        print("internal error:", json.dumps(crash)[:3000])
    assert received <= count
    assert received + lost_in_kernel >= count  # every datagram: an answer or a counted drop
    assert drops.get("internal_error", 0) == 0  # no input makes a request fail inside
    assert drops.get("storage_unavailable", 0) == 0  # Redis answered throughout
    assert sum(drops.values()) > 0 and handled > 0
    assert growth_mib < RSS_BOUND_MIB


async def test_radius_wire_fuzz(
    tmp_path: Path,
    redis_url: str,
    accounts: Accounts,
    charging: ChargingService,
    new_account: NewAccount,
) -> None:
    """3,000 fuzzed datagrams: dropped and counted or answered, the server keeps serving."""
    await fuzz(tmp_path, redis_url, accounts, charging, new_account, 3_000)


@pytest.mark.faults
async def test_radius_wire_fuzz_long(
    tmp_path: Path,
    redis_url: str,
    accounts: Accounts,
    charging: ChargingService,
    new_account: NewAccount,
) -> None:
    """25,000 fuzzed datagrams: dropped and counted or answered, the server keeps serving."""
    await fuzz(tmp_path, redis_url, accounts, charging, new_account, 25_000)
