"""Many NAS sessions at once: each is charged exactly its own usage (no cross-talk in the
duplicate cache, the live-session hints or the charging calls)."""

from __future__ import annotations

import asyncio

from ocs.accounts import Accounts
from tests.core_fixtures import NewAccount
from tests.integration.radius.conftest import Server, acct_session
from tests.integration.radius.radius_harness import Nas
from tests.integration.radius.test_radius_accounting import acct, money

SESSIONS = 40


async def one_session(server: Server, user: str, octets: int) -> None:
    nas = await Nas.open()
    try:
        sid = acct_session()
        steps = [
            acct(user, sid, "Start", 1),
            acct(user, sid, "Interim-Update", 2, Acct_Input_Octets=octets // 3),
            acct(user, sid, "Interim-Update", 2, Acct_Input_Octets=octets // 2),  # same ID
            acct(user, sid, "Stop", 3, Acct_Input_Octets=octets),
        ]
        for pkt in steps:
            raw = bytes(pkt.RequestPacket())
            assert await nas.send(raw, server.acct, within=5) is not None
            assert await nas.send(raw, server.acct, within=5) is not None  # retransmission
    finally:
        nas.close()


async def test_concurrent_sessions_are_each_charged_exactly(
    server: Server, accounts: Accounts, new_account: NewAccount
) -> None:
    """40 sessions in parallel, every request retransmitted once: exact charge each."""
    accts = [await new_account(money=1_000_000) for _ in range(SESSIONS)]
    usage = [1_000 * (i + 1) + 1 for i in range(SESSIONS)]
    async with asyncio.timeout(60):
        await asyncio.gather(
            *(one_session(server, a.identity.value, u) for a, u in zip(accts, usage, strict=True))
        )
    for a, u in zip(accts, usage, strict=True):
        assert await money(accounts, a.account_id) == (1_000_000 - (-(-u // 1000)) * 10, 0)
