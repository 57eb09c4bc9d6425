"""Accounting-On/Off against the real core and Redis (standards §3.4):
a burst of them from one NAS is answered in full while Redis answers, and closes each
session of that NAS once."""

from __future__ import annotations

import asyncio
import random
import time
from typing import Any

from pyrad import packet as rp

from ocs.charging.api import ChargingService
from protocols.radius import metrics as m
from protocols.radius.dictionary import load_dictionary
from tests.core_fixtures import NewAccount
from tests.integration.radius.conftest import SECRET, Server, acct_session
from tests.integration.radius.radius_harness import Volley
from tests.integration.radius.test_radius_accounting import records_of

SESSIONS = 200
BURST = 300  # Accounting-On/Off, alternating, at 150/s


def request(ident: int, nas_ip: str, status: str, **attrs: Any) -> bytes:
    pkt = rp.AcctPacket(id=ident, secret=SECRET, dict=load_dictionary())
    pkt.AddAttribute("Acct-Status-Type", status)
    pkt.AddAttribute("NAS-IP-Address", nas_ip)
    for name, value in attrs.items():
        pkt.AddAttribute(name.replace("_", "-"), value)
    return bytes(pkt.RequestPacket())


async def volleys(server: Server, raws: list[bytes], within: float, rate: int = 150) -> int:
    """Send ``raws`` at ``rate`` per second, 250 per socket (one Identifier each); how many
    were answered within ``within`` s. Paced: all at once would overflow the socket's
    receive buffer in the kernel, which is not what this measures."""
    groups = [raws[i : i + 250] for i in range(0, len(raws), 250)]
    socks = [await Volley.open() for _ in groups]
    try:
        for n, (sock, raw) in enumerate(
            (s, r) for s, g in zip(socks, groups, strict=True) for r in g
        ):
            sock.send(raw, server.acct)
            if n % 15 == 14:
                await asyncio.sleep(15 / rate)
        counts = await asyncio.gather(
            *(s.wait(len(g), within) for s, g in zip(socks, groups, strict=True))
        )
        return sum(counts)
    finally:
        for sock in socks:
            sock.close()


def drops(reason: str) -> float:
    return float(m.DROPS.labels("nas1", reason)._value.get())


async def test_accounting_on_off_burst_is_answered_in_full_while_redis_answers(
    server: Server, charging: ChargingService, new_account: NewAccount
) -> None:
    """300 Accounting-On/Off at 150/s from a NAS with 200 open sessions: every one answered,
    none dropped (before: the closes ran side by side on the Redis pool, which ran dry, and
    most were dropped as storage_unavailable), each session closed and recorded once."""
    nas_ip = f"10.{random.randrange(256)}.{random.randrange(256)}.{random.randrange(1, 255)}"
    accts = [await new_account(money=10_000_000) for _ in range(10)]
    starts = [
        request(
            i % 250,
            nas_ip,
            "Start",
            Acct_Session_Id=acct_session(),
            User_Name=accts[i % 10].identity.value,
        )
        for i in range(SESSIONS)
    ]
    assert await volleys(server, starts, within=30) == SESSIONS
    before = {r: drops(r) for r in ("storage_unavailable", "nas_restart_queue_full")}
    reboot = int(time.time()) + 1  # every open session was opened before it
    burst = [
        request(
            i % 250,
            nas_ip,
            ("Accounting-On", "Accounting-Off")[i % 2],
            Acct_Session_Id=f"onoff-{i}",
            Event_Timestamp=reboot,
        )
        for i in range(BURST)
    ]
    answered = await volleys(server, burst, within=60)
    dropped = {r: drops(r) - n for r, n in before.items()}
    print(f"Accounting-On/Off burst: {BURST} sent, {answered} answered, dropped {dropped}")
    assert answered == BURST
    assert dropped == {"storage_unavailable": 0, "nas_restart_queue_full": 0}
    records = [r for a in accts for r in await records_of(charging, a.account_id)]
    assert len(records) == SESSIONS
    assert len({r.session for r in records}) == SESSIONS
    assert {r.cause for r in records} == {"nas_reboot"}
