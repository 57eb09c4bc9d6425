"""Accounting-On/Off against `ocs serve` (RFC 2866 §5.1, standards §3.4):
an Accounting-On closes 1,000 open sessions of its NAS, each recorded once; an On/Off
burst at ~150/s mixed with another NAS's accounting is answered in full, nothing dropped
while Redis answers, and the other NAS's sessions are charged exactly."""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections import Counter
from pathlib import Path

from ocs.accounts import Accounts
from ocs.charging.api import ChargingService
from tests.core_fixtures import NewAccount
from tests.faults.radius_peer import Fleet, Peer, accounting, by_label, radius_node, settled_metrics
from tests.integration.radius.test_radius_accounting import money, records_of

MONEY = 100_000_000
PRICE = 10  # tests/policies/test.yaml: data, 10 micro per started 1000 octets


def nas_address() -> str:
    return f"10.{random.randrange(256)}.{random.randrange(256)}.{random.randrange(1, 255)}"


async def open_sessions(
    fleet: Fleet, dest: tuple[str, int], nas_ip: str, users: list[str], count: int, first: int = 0
) -> None:
    """``count`` Starts from ``nas_ip``, ~1,000/s, all answered."""
    for n in range(count):
        i = first + n
        raw = accounting(
            Fleet.identifier(i),
            Acct_Status_Type="Start",
            NAS_IP_Address=nas_ip,
            Acct_Session_Id=f"on-{uuid.uuid4().hex[:16]}",
            User_Name=users[n % len(users)],
        )
        fleet.send(i, raw, dest)
        if n % 50 == 49:
            await asyncio.sleep(0.05)
    await fleet.settle(dest, within=60)
    assert not fleet.unanswered()


async def test_accounting_on_closes_1000_open_sessions_once(
    tmp_path: Path,
    redis_url: str,
    charging: ChargingService,
    accounts: Accounts,
    new_account: NewAccount,
) -> None:
    """1,000 sessions open on one NAS, then its Accounting-On: answered once every session is
    closed; 1,000 records with cause nas_reboot, one per session; nothing left reserved."""
    accts = [await new_account(money=MONEY) for _ in range(50)]
    users = [a.identity.value for a in accts]
    nas_ip = nas_address()
    with radius_node(tmp_path, redis_url) as node:
        fleet = await Fleet.open(1_000)
        try:
            await open_sessions(fleet, node.acct, nas_ip, users, 1_000)
        finally:
            fleet.close()
        reserved = sum([(await money(accounts, a.account_id))[1] for a in accts])
        peer = await Peer.open()
        try:
            on = accounting(
                7,
                Acct_Status_Type="Accounting-On",
                NAS_IP_Address=nas_ip,
                Acct_Session_Id="reboot-1",
                Event_Timestamp=int(time.time()) + 1,
            )
            started = time.monotonic()
            assert await peer.exchange(on, node.acct, within=120)
            took, sends = time.monotonic() - started, peer.sent
        finally:
            peer.close()
        samples = await asyncio.to_thread(settled_metrics, node.metrics_port)
    records = [r for a in accts for r in await records_of(charging, a.account_id)]
    left = [await money(accounts, a.account_id) for a in accts]
    print(
        f"Accounting-On with 1,000 open sessions ({reserved} micro-units reserved): answered "
        f"after {took:.1f} s and {sends} send(s); {len(records)} records, "
        f"{len({r.session for r in records})} sessions, causes {dict(Counter(r.cause for r in records))}; "
        f"reserved afterwards {sum(r for _, r in left)}; sessions closed (metric) "
        f"{by_label(samples, 'ocs_radius_nas_restart_sessions_total', 'nas')}"
    )
    assert len(records) == 1_000
    assert len({r.session for r in records}) == 1_000
    assert {r.cause for r in records} == {"nas_reboot"}
    assert all(amount == MONEY and held == 0 for amount, held in left)


async def traffic(
    fleet: Fleet, dest: tuple[str, int], nas_ip: str, users: list[str], sessions: int, first: int
) -> dict[str, int]:
    """``sessions`` sessions, each Start, Interim, Stop in turn (each sent once the previous
    one is answered, as a NAS does), a new one every 10 ms (~300 requests/s); what each
    user must be charged."""
    used: dict[str, int] = {}

    async def one(n: int) -> None:
        user, octets = users[n % len(users)], 1_000 * (n % 7 + 1)
        base = {"NAS_IP_Address": nas_ip, "Acct_Session_Id": f"y-{uuid.uuid4().hex[:16]}"}
        for k, (status, counted) in enumerate(
            (("Start", 0), ("Interim-Update", octets // 2), ("Stop", octets))
        ):
            i = first + 3 * n + k
            raw = accounting(
                Fleet.identifier(i),
                Acct_Status_Type=status,
                Acct_Input_Octets=counted,
                User_Name=user,
                **base,
            )
            fleet.send(i, raw, dest)
            await fleet.peers[i // 256].wait_for(raw, 30)
        used[user] = used.get(user, 0) + (-(-octets // 1000)) * PRICE

    tasks = []
    for n in range(sessions):
        tasks.append(asyncio.create_task(one(n)))
        await asyncio.sleep(0.01)
    await asyncio.gather(*tasks)
    return used


async def on_off(fleet: Fleet, dest: tuple[str, int], nas_ip: str, count: int, first: int) -> None:
    """``count`` Accounting-On/Off, alternating, at ~150/s."""
    for n in range(count):
        status = ("Accounting-On", "Accounting-Off")[n % 2]
        raw = accounting(
            Fleet.identifier(first + n),
            Acct_Status_Type=status,
            NAS_IP_Address=nas_ip,
            Acct_Session_Id=f"onoff-{n}",
        )
        fleet.send(first + n, raw, dest)
        await asyncio.sleep(1 / 150)


async def test_accounting_on_off_burst_mixed_with_accounting(
    tmp_path: Path,
    redis_url: str,
    charging: ChargingService,
    accounts: Accounts,
    new_account: NewAccount,
) -> None:
    """NAS X (200 open sessions) sends 450 Accounting-On/Off at ~150/s while NAS Y runs 300
    sessions (900 requests): every request answered, none dropped as storage_unavailable or
    nas_restart_queue_full, X's sessions recorded once as nas_reboot, Y's charged exactly."""
    x_accts = [await new_account(money=MONEY) for _ in range(10)]
    y_accts = [await new_account(money=MONEY) for _ in range(20)]
    x_ip, y_ip = nas_address(), nas_address()
    with radius_node(tmp_path, redis_url) as node:
        opened = await Fleet.open(200)
        try:
            await open_sessions(opened, node.acct, x_ip, [a.identity.value for a in x_accts], 200)
        finally:
            opened.close()
        await asyncio.sleep(1.1)  # the burst's event times come after every opening
        before = await asyncio.to_thread(settled_metrics, node.metrics_port)
        fleet = await Fleet.open(450 + 900)
        try:
            _, used = await asyncio.gather(
                on_off(fleet, node.acct, x_ip, 450, 0),
                traffic(fleet, node.acct, y_ip, [a.identity.value for a in y_accts], 300, 450),
            )
            resent = await fleet.settle(node.acct, within=120)
            unanswered, unmatched = len(fleet.unanswered()), fleet.unmatched
        finally:
            fleet.close()
        after = await asyncio.to_thread(settled_metrics, node.metrics_port)
    drops = {
        r: int(v - by_label(before, "ocs_radius_drops_total", "reason").get(r, 0))
        for r, v in by_label(after, "ocs_radius_drops_total", "reason").items()
    }
    outcomes = {
        o: int(v - by_label(before, "ocs_radius_accounting_total", "outcome").get(o, 0))
        for o, v in by_label(after, "ocs_radius_accounting_total", "outcome").items()
    }
    x_records = [r for a in x_accts for r in await records_of(charging, a.account_id)]
    extra = 0
    for a in y_accts:
        left, held = await money(accounts, a.account_id)
        extra += (MONEY - left) - used.get(a.identity.value, 0)
        assert held == 0
    print(
        f"Accounting-On/Off burst: 450 On/Off at ~150/s + 900 accounting requests: "
        f"{1_350 - unanswered} answered ({resent} NAS re-sends, {unmatched} answers matching "
        f"no request), outcomes {outcomes}, drops {drops}; NAS X: {len(x_records)} records "
        f"{dict(Counter(r.cause for r in x_records))}; NAS Y: charged {sum(used.values())} "
        f"micro-units, extra {extra}"
    )
    assert unanswered == 0 and unmatched == 0
    assert drops.keys() <= {"duplicate_in_progress"}  # NAS re-sends of a request in flight
    assert len(x_records) == 200 and len({r.session for r in x_records}) == 200
    assert {r.cause for r in x_records} == {"nas_reboot"}
    assert extra == 0
