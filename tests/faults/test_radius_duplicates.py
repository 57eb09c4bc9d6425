"""RADIUS duplicate storms against `ocs serve` (standards §3.4): every request of a session
re-sent identically (while the first is in flight and after its answer) and re-sent with
a new Identifier and Acct-Delay-Time (a new packet with the same record). Nothing is
charged twice, each session has one record, and every answer is the authentic answer to
the request with its Identifier."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest

from ocs.accounts import Accounts
from ocs.charging.api import ChargingService
from tests.core_fixtures import NewAccount
from tests.faults.radius_peer import Node, Peer, accounting, by_label, metrics, radius_node
from tests.integration.radius.test_radius_accounting import money, records_of

PRICE = 10  # tests/policies/test.yaml: data, 10 micro per started 1000 octets
MONEY = 10_000_000


def steps(user: str, sid: str, octets: int) -> list[tuple[int, int, dict[str, object]]]:
    """(Identifier, Identifier of the re-send with a new one, attributes) per record."""
    base = {"NAS_IP_Address": "127.0.0.1", "Acct_Session_Id": sid, "User_Name": user}
    return [
        (1, 101, {**base, "Acct_Status_Type": "Start"}),
        (2, 102, {**base, "Acct_Status_Type": "Interim-Update", "Acct_Input_Octets": octets // 3}),
        (3, 103, {**base, "Acct_Status_Type": "Interim-Update", "Acct_Input_Octets": octets // 2}),
        (4, 104, {**base, "Acct_Status_Type": "Stop", "Acct_Input_Octets": octets}),
    ]


async def storm(node: Node, user: str, octets: int, counts: dict[str, int]) -> None:
    """One session, each record: 3 identical copies back to back (two in flight), one more
    after the answer, and a copy with a new Identifier and Acct-Delay-Time."""
    peer = await Peer.open()
    try:
        for ident, new_ident, attrs in steps(user, f"dup-{uuid.uuid4().hex[:12]}", octets):
            raw = accounting(ident, **attrs)
            for _ in range(3):
                peer.send(raw, node.acct)
            assert await peer.exchange(raw, node.acct), f"record {ident} never answered"
            peer.send(raw, node.acct)
            resent = accounting(new_ident, Acct_Delay_Time=3, **attrs)
            assert await peer.exchange(resent, node.acct), f"re-send {new_ident} never answered"
        await asyncio.sleep(0.3)  # late answers to the copies still count as answers
        counts["sent"] += peer.sent
        counts["answers"] += peer.received
        counts["unmatched"] += peer.unmatched
    finally:
        peer.close()


async def run_storm(
    tmp_path: Path,
    redis_url: str,
    charging: ChargingService,
    accounts: Accounts,
    new_account: NewAccount,
    sessions: int,
) -> None:
    accts = [await new_account(money=MONEY) for _ in range(sessions)]
    usage = [1_000 * (i % 97 + 1) + 1 for i in range(sessions)]
    counts = {"sent": 0, "answers": 0, "unmatched": 0}
    with radius_node(tmp_path, redis_url) as node:
        async with asyncio.timeout(300):
            await asyncio.gather(
                *(
                    storm(node, a.identity.value, u, counts)
                    for a, u in zip(accts, usage, strict=True)
                )
            )
        samples = metrics(node.metrics_port)
    duplicates = by_label(samples, "ocs_radius_duplicates_total", "nas").get("nas1", 0)
    drops = by_label(samples, "ocs_radius_drops_total", "reason")
    outcomes = by_label(samples, "ocs_radius_accounting_total", "outcome")
    extra = 0
    records = 0
    for a, u in zip(accts, usage, strict=True):
        left, reserved = await money(accounts, a.account_id)
        extra += (MONEY - left) - (-(-u // 1000)) * PRICE
        assert reserved == 0, a.account_id
        records += len(await records_of(charging, a.account_id))
    print(
        f"RADIUS duplicate storm: {sessions} sessions, {counts['sent']} datagrams sent, "
        f"{counts['answers']} answers ({counts['unmatched']} matching no request), "
        f"{duplicates:.0f} answered from the duplicate cache, outcomes {outcomes}, "
        f"drops {drops}, {records} records, extra charge {extra} micro-units"
    )
    assert counts["unmatched"] == 0
    assert extra == 0
    assert records == sessions
    assert drops.keys() <= {"duplicate_in_progress"}  # copies of a request in flight


async def test_radius_duplicate_storm(
    tmp_path: Path,
    redis_url: str,
    charging: ChargingService,
    accounts: Accounts,
    new_account: NewAccount,
) -> None:
    """40 sessions, every record sent 6 times in two forms: 0 extra charges."""
    await run_storm(tmp_path, redis_url, charging, accounts, new_account, sessions=40)


@pytest.mark.faults
async def test_radius_duplicate_storm_long(
    tmp_path: Path,
    redis_url: str,
    charging: ChargingService,
    accounts: Accounts,
    new_account: NewAccount,
) -> None:
    """400 sessions at once, every record sent 6 times in two forms: 0 extra charges."""
    await run_storm(tmp_path, redis_url, charging, accounts, new_account, sessions=400)
