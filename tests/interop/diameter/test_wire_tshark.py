"""Our answers and requests as Wireshark's dissector sees them (standards §4 CI gate).

A session from the python-diameter client covering most of what we encode: CEA,
CCA with MSCC, GSU, Validity-Time, 3GPP thresholds, FUI REDIRECT with
Redirect-Server, Cost-Information, Check-Balance-Result, error answers (5031 with
Failed-AVP, 5030, 5002), our RAR and ASR with their answers, DWA, DPA. tshark must
find nothing malformed, no expert warning and no unanswered request.
"""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest

from ocs.accounts import Accounts, BucketSpec
from ocs.vocabulary.types import UnitType
from protocols.diameter.server import DiameterServer
from tests.core_fixtures import NewAccount
from tests.integration.diameter.conftest import NewClient
from tests.integration.diameter.gy_client import mscc, rsu, usu
from tests.interop.diameter.wire import capture, check_wire

pytestmark = pytest.mark.interop


def sid() -> str:
    return f"gw.test.example;{uuid.uuid4().hex}"


async def test_session_bytes_pass_tshark(
    gy_server: DiameterServer,
    new_client: NewClient,
    accounts: Accounts,
    new_account: NewAccount,
    tmp_path: Path,
) -> None:
    """Every message of a varied Gy session decodes cleanly in tshark; every request answered."""
    _, port = gy_server.addresses[0]
    rich = await new_account(money=55)
    blocked = await new_account()
    async with capture(port, tmp_path / "wire.pcap") as pcap:
        c = await new_client()
        s = sid()
        want = rsu(cc_total_octets=10_000)
        await c.call(c.ccr(s, 1, 0, rich.identity.value, [mscc(10, want), mscc(12345, want)]))
        await c.call(c.ccr(s, 2, 1, None, [mscc(10, None, [usu(cc_total_octets=5_000)])]))
        c.server_request_event.clear()
        await accounts.credit(rich.account_id, BucketSpec(UnitType.MONEY, 0), 10_000)
        await asyncio.wait_for(c.server_request_event.wait(), 2)  # RAR
        await c.call(c.ccr(s, 3, 2, None, [mscc(10, None, [usu(cc_total_octets=100)])]))
        await c.call(c.ccr(sid(), 4, 0, rich.identity.value, requested_action=2))
        await c.call(
            c.ccr(
                sid(),
                4,
                0,
                rich.identity.value,
                requested_action=3,
                requested_service_unit=rsu(cc_total_octets=1_000),
            )
        )
        await c.call(c.ccr(sid(), 1, 0, "19999999999999", [mscc(10, want)]))  # 5030
        await c.call(c.ccr(sid(), 2, 1, None, [mscc(10, want)]))  # 5002
        bad = c.ccr(sid(), 1, 0, rich.identity.value, [mscc(10, want)])
        bad.service_context_id = "32270@3gpp.org"  # 5031 with Failed-AVP
        await c.call(bad)
        b = sid()
        await c.call(c.ccr(b, 1, 0, blocked.identity.value, [mscc(10, want)]))
        c.server_request_event.clear()
        await accounts.set_status(blocked.account_id, "blocked")
        await asyncio.wait_for(c.server_request_event.wait(), 2)  # ASR
        await c.dwr()
        await c.dpr()
        await asyncio.sleep(0.2)
    msgs = await check_wire(pcap, port, min_messages=26)
    commands = {m.split("\t")[0] for m in msgs}
    assert {"257", "272", "258", "274", "280", "282"} <= commands
