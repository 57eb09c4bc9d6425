"""Peer layer over real TCP: CER/CEA, DWR/DWA, DPR/DPA, duplicates, peer restart (standards §1.3-§1.7)."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from prometheus_client import REGISTRY

from ocs.accounts import Accounts
from tests.core_fixtures import NewAccount
from tests.integration.diameter.conftest import NewClient, StartServer
from tests.integration.diameter.gy_client import GyClient, mscc, plain, result_of, rsu, usu
from tests.unit.diameter import diam_wire as w

DATA = 10


def sid() -> str:
    return f"gw.test.example;{uuid.uuid4().hex}"


async def reserved_and_money(accounts: Accounts, account_id: str) -> tuple[int, int]:
    view = await accounts.show(account_id)
    main = [b for b in view["buckets"] if b["unit"] == "money"]
    return sum(b["amount"] for b in main), sum(b["reserved"] for b in main)


async def test_first_message_not_cer_is_closed_unanswered(new_client: NewClient) -> None:
    """standards §1.3: a first message that is not a CER closes the connection, no answer."""
    c = await new_client(cer=False)
    c.write(w.dwr(5))
    await asyncio.wait_for(c.closed.wait(), 5)
    assert c.unsolicited == []


async def test_no_common_application_5010_then_close(new_client: NewClient) -> None:
    """standards §1.3: CER without app 4 (or relay) -> CEA 5010 without E bit, then close."""
    c = await new_client(cer=False)
    cea = await c.cer(apps=(16777238,))
    assert cea.result_code == 5010 and not cea.header.is_error
    await asyncio.wait_for(c.closed.wait(), 5)


async def test_unknown_peer_3010_then_close(
    start_server: StartServer, new_client: NewClient
) -> None:
    """standards §1.3: a peer outside the allow-list gets 3010 with E = 1, then close."""
    server = await start_server(allowed_peers=[{"origin_host": "pgw.allowed.example"}])
    c = await new_client(server, cer=False)
    cea = await c.cer()
    assert cea.result_code == 3010 and cea.header.is_error
    await asyncio.wait_for(c.closed.wait(), 5)
    ok = await new_client(server, cer=False, origin_host="pgw.allowed.example")
    assert (await ok.cer()).result_code == 2001


async def test_cea_content(new_client: NewClient) -> None:
    """standards §1.3: CEA advertises app 4, vendor 10415, Product-Name with M = 0, our state id."""
    c = await new_client(cer=False)
    cea = await c.cer()
    raw = plain(cea.raw)
    by_code = {a.code: a for a in raw.avps}
    assert by_code[258].value == 4 and by_code[265].value == 10415
    assert not by_code[269].is_mandatory and by_code[278].value > 0
    assert by_code[257].value == (1, "127.0.0.1")  # Host-IP-Address of this connection


async def test_dwr_dwa(gy: GyClient) -> None:
    """standards §1.4: every DWR gets a DWA with 2001 and our Origin-State-Id."""
    dwa = await gy.dwr()
    assert dwa.result_code == 2001 and dwa.origin_state_id


async def test_server_sends_dwr_after_tw(start_server: StartServer, new_client: NewClient) -> None:
    """standards §1.4: on Tw expiry (6 s ± 2 s) the server sends a DWR; our DWA keeps it open."""
    server = await start_server(watchdog_interval=6.0)
    c = await new_client(server)
    await asyncio.wait_for(c.server_request_event.wait(), 9.0)
    assert c.server_requests[0].header.command_code == 280
    assert not c.closed.is_set()


async def test_peer_dpr_gets_dpa(gy: GyClient) -> None:
    """standards §1.5: a DPR from the peer is answered with DPA 2001; the peer then closes."""
    dpa = await gy.dpr(cause=0)
    assert dpa.result_code == 2001 and dpa.header.command_code == 282


async def test_shutdown_sends_dpr_and_drains(
    start_server: StartServer, new_client: NewClient, new_account: NewAccount
) -> None:
    """standards §1.5: on stop we send DPR REBOOTING; the CCR in flight is still answered."""
    server = await start_server()
    c = await new_client(server)
    acct = await new_account()
    pending = asyncio.ensure_future(
        c.call(c.ccr(sid(), 1, 0, acct.identity.value, [mscc(DATA, rsu())]))
    )
    await asyncio.sleep(0)
    await server.stop(3.0)
    cca = await pending
    assert cca.result_code == 2001
    dpr = [m for m in c.server_requests if m.header.command_code == 282]
    assert dpr and dpr[0].disconnect_cause == 0
    await asyncio.wait_for(c.closed.wait(), 5)


async def test_duplicate_with_t_flag_gets_identical_answer_charged_once(
    gy: GyClient, accounts: Accounts, new_account: NewAccount
) -> None:
    """standards §1.7: same (Origin-Host, End-to-End), T flag: identical answer, no second debit."""
    acct = await new_account()
    s = sid()
    await gy.call(gy.ccr(s, 1, 0, acct.identity.value, [mscc(DATA, rsu())]))
    u = gy.ccr(s, 2, 1, None, [mscc(DATA, rsu(), [usu(cc_total_octets=5_000)])])
    first = await gy.call(u)
    u.header.is_retransmit = True
    u.header.hop_by_hop_identifier = 0xABC1  # a new Hop-by-Hop id, the same End-to-End id
    again = await gy.call(u)
    assert again.raw[16:] == first.raw[16:] and again.raw[:12] == first.raw[:12]
    assert (await reserved_and_money(accounts, acct.account_id))[0] == 1_000_000 - 50


async def test_t_flagged_copy_before_original_completes(
    gy: GyClient, accounts: Accounts, new_account: NewAccount
) -> None:
    """standards §1.7: the T-flagged copy arrives first, the original after: one charge, same answer."""
    acct = await new_account()
    s = sid()
    await gy.call(gy.ccr(s, 1, 0, acct.identity.value, [mscc(DATA, rsu())]))
    u = gy.ccr(s, 2, 1, None, [mscc(DATA, rsu(), [usu(cc_total_octets=3_000)])])
    u.header.end_to_end_identifier = 0x5151
    u.header.hop_by_hop_identifier = 0x6161
    u.header.is_retransmit = True
    copy = u.as_bytes()
    u.header.is_retransmit = False
    u.header.hop_by_hop_identifier = 0x6162
    original = u.as_bytes()
    loop = asyncio.get_running_loop()
    futs = {h: loop.create_future() for h in (0x6161, 0x6162)}
    gy._waiting.update(futs)
    gy.write(copy + original)
    a, b = await asyncio.wait_for(asyncio.gather(futs[0x6161], futs[0x6162]), 5)
    assert a[16:] == b[16:] and result_of(a) == 2001
    assert (await reserved_and_money(accounts, acct.account_id))[0] == 1_000_000 - 30


async def test_same_session_and_number_new_end_to_end_replays(
    gy: GyClient, accounts: Accounts, new_account: NewAccount
) -> None:
    """standards §2.5: same (Session-Id, CC-Request-Number) with a new End-to-End id: no second debit."""
    acct = await new_account()
    s = sid()
    await gy.call(gy.ccr(s, 1, 0, acct.identity.value, [mscc(DATA, rsu())]))
    t = gy.ccr(s, 3, 1, None, [mscc(DATA, None, [usu(cc_total_octets=2_000)])])
    first = await gy.call(t)
    t.header.hop_by_hop_identifier = t.header.end_to_end_identifier = 0
    second = await gy.call(t)  # repeated CCR-T -> the first CCA replayed
    assert first.result_code == second.result_code == 2001
    assert await reserved_and_money(accounts, acct.account_id) == (1_000_000 - 20, 0)


async def test_peer_restart_releases_its_sessions(
    gy_server: object, new_client: NewClient, accounts: Accounts, new_account: NewAccount
) -> None:
    """standards §1.7: a higher peer Origin-State-Id releases its older sessions at once."""
    acct = await new_account()
    host = f"pgw-{uuid.uuid4().hex[:8]}.example"
    c1 = await new_client(cer=False, origin_host=host)
    assert (await c1.cer(state_id=5)).result_code == 2001
    s = sid()
    await c1.call(c1.ccr(s, 1, 0, acct.identity.value, [mscc(DATA, rsu())]))
    assert (await reserved_and_money(accounts, acct.account_id))[1] > 0
    await c1.close()
    c2 = await new_client(cer=False, origin_host=host)
    assert (await c2.cer(state_id=6)).result_code == 2001
    for _ in range(50):
        if (await reserved_and_money(accounts, acct.account_id))[1] == 0:
            break
        await asyncio.sleep(0.05)
    assert (await reserved_and_money(accounts, acct.account_id)) == (1_000_000, 0)
    u = await c2.call(c2.ccr(s, 2, 1, None, [mscc(DATA, rsu())]))
    assert u.result_code == 5002


async def test_vendor_avps_only_to_3gpp_peers(
    new_client: NewClient, new_account: NewAccount
) -> None:
    """3GPP thresholds go only to peers that advertised Supported-Vendor-Id 10415."""
    acct = await new_account()
    c = await new_client(cer=False, origin_host=f"plain-{uuid.uuid4().hex[:6]}.example")
    assert (await c.cer(vendors=())).result_code == 2001
    a = await c.call(c.ccr(sid(), 1, 0, acct.identity.value, [mscc(DATA, rsu())]))
    raw = plain(a.raw)
    mscc_avp = next(x for x in raw.avps if x.code == 456)
    assert all(not child.vendor_id for child in mscc_avp.value)
    assert a.multiple_services_credit_control[0].result_code == 2001


@pytest.mark.slow
async def test_half_open_peer_closed_after_two_tw(
    start_server: StartServer, new_client: NewClient
) -> None:
    """standards §1.4 / §1.8: a peer that never answers DWR is closed after two Tw expiries."""
    server = await start_server(watchdog_interval=6.0)
    c = await new_client(server)
    c.answer_watchdog = False
    await asyncio.wait_for(c.closed.wait(), 20.0)  # 2 x (6 s + 2 s jitter) at most
    assert [m.header.command_code for m in c.server_requests] == [280]


async def test_second_connection_from_open_peer_is_refused(new_client: NewClient) -> None:
    """standards §1.3: a second connection from an open peer is refused; a restarted one replaces it."""
    host = f"pgw-{uuid.uuid4().hex[:8]}.example"
    first = await new_client(cer=False, origin_host=host)
    assert (await first.cer(state_id=3)).result_code == 2001
    second = await new_client(cer=False, origin_host=host)
    assert (await second.cer(state_id=3)).result_code == 5012
    await asyncio.wait_for(second.closed.wait(), 5)
    assert (await first.dwr()).result_code == 2001
    restarted = await new_client(cer=False, origin_host=host)
    assert (await restarted.cer(state_id=4)).result_code == 2001
    await asyncio.wait_for(first.closed.wait(), 5)  # the stale connection is closed
    assert (await restarted.dwr()).result_code == 2001


async def test_ipv4_and_ipv6_listeners(start_server: StartServer, new_client: NewClient) -> None:
    """The listener serves IPv4 and IPv6 at once (127.0.0.1 and ::1)."""
    server = await start_server(listen=["127.0.0.1", "::1"])
    families = {":" in host for host, _ in server.addresses}
    assert families == {False, True}
    for host, port in server.addresses:
        c = GyClient(host, port, origin_host=f"v{':' in host}-{uuid.uuid4().hex[:6]}.example")
        await c.connect()
        try:
            cea = await c.cer()
            assert cea.result_code == 2001
            expected = (2, "::1") if ":" in host else (1, "127.0.0.1")
            assert next(a.value for a in plain(cea.raw).avps if a.code == 257) == expected
        finally:
            await c.close()


async def test_no_cer_before_timeout_closes(
    start_server: StartServer, new_client: NewClient
) -> None:
    """standards §1.3: no CER before the timeout -> closed without a word."""
    server = await start_server(cer_timeout=0.5)
    c = await new_client(server, cer=False)
    await asyncio.wait_for(c.closed.wait(), 5)
    assert c.unsolicited == []


async def test_proxy_info_copied_in_order_over_tcp(gy: GyClient) -> None:
    """standards §1.2: every Proxy-Info comes back in order; Session-Id first; P bit copied."""
    proxies = [w.grouped(284, w.utf8(280, f"proxy{i}"), w.utf8(33, f"state{i}")) for i in (1, 2)]
    data = w.ccr(
        *proxies, context="32299@3gpp.org", hbh=0x4242, e2e=0x4242
    )  # 5031: app-level answer
    answer = plain(await gy.send_raw(data))
    assert answer.avps[0].code == 263 and answer.header.is_proxyable
    got = [a.value[0].value for a in answer.avps if a.code == 284]
    assert got == [b"proxy1", b"proxy2"]


async def test_parallel_connections_when_allowed(
    start_server: StartServer, new_client: NewClient
) -> None:
    """one_connection_per_peer: false lets one Origin-Host open several connections."""
    server = await start_server(one_connection_per_peer=False)
    a = await new_client(server)
    b = await new_client(server)
    assert (await a.dwr()).result_code == (await b.dwr()).result_code == 2001
    await b.close()  # the newest goes: the other still takes the peer's pushes
    for _ in range(50):
        if server.node is not None and server.node.peers.get(a.origin_host) is not None:
            conn = server.node.peers[a.origin_host]
            if conn.open_peer == a.origin_host and len(server.node.connections) == 1:
                break
        await asyncio.sleep(0.05)
    assert server.health()["peers"] == [a.origin_host]


@pytest.mark.parametrize("fast_path", [True, False])
async def test_colliding_end_to_end_ids_across_sessions_are_new_requests(
    start_server: StartServer,
    new_client: NewClient,
    accounts: Accounts,
    new_account: NewAccount,
    fast_path: bool,
) -> None:
    """Two CCR-I of different sessions with one End-to-End id from one
    Origin-Host (RFC 6733 §3 lets clients pick its low bits at random): the second is a new
    request, answered with its own Session-Id, and its session exists afterwards."""
    gy = await new_client(await start_server(fast_path=fast_path))
    acct = await new_account()
    collisions = REGISTRY.get_sample_value("ocs_diameter_end_to_end_collisions_total") or 0.0
    first, second = sid(), sid()
    a = gy.ccr(first, 1, 0, acct.identity.value, [mscc(DATA, rsu())])
    b = gy.ccr(second, 1, 0, acct.identity.value, [mscc(DATA, rsu())])
    a.header.end_to_end_identifier = b.header.end_to_end_identifier = 0x7E7E
    a.header.hop_by_hop_identifier, b.header.hop_by_hop_identifier = 0x7E01, 0x7E02
    cca_a = await gy.call(a)
    cca_b = await gy.call(b)
    assert (cca_a.session_id, cca_b.session_id) == (first, second)
    assert cca_a.result_code == cca_b.result_code == 2001
    counted = REGISTRY.get_sample_value("ocs_diameter_end_to_end_collisions_total")
    assert counted == collisions + 1
    # The second session was opened: its CCR-T is known (not 5002) and releases its quota.
    t = await gy.call(gy.ccr(second, 3, 1, None, [mscc(DATA, None, [usu(cc_total_octets=0)])]))
    assert (t.session_id, t.result_code) == (second, 2001)
    t = await gy.call(gy.ccr(first, 3, 1, None, [mscc(DATA, None, [usu(cc_total_octets=0)])]))
    assert (t.session_id, t.result_code) == (first, 2001)
    assert await reserved_and_money(accounts, acct.account_id) == (1_000_000, 0)


async def test_colliding_end_to_end_ids_while_the_first_is_in_flight(
    gy: GyClient, accounts: Accounts, new_account: NewAccount
) -> None:
    """The colliding request (RFC 6733 §3 random End-to-End bits) arrives while the first is still being served
    (both written at once): each gets its own answer, none waits for the other's."""
    acct = await new_account()
    first, second = sid(), sid()
    a = gy.ccr(first, 1, 0, acct.identity.value, [mscc(DATA, rsu())])
    b = gy.ccr(second, 1, 0, acct.identity.value, [mscc(DATA, rsu())])
    a.header.end_to_end_identifier = b.header.end_to_end_identifier = 0x7F7F
    a.header.hop_by_hop_identifier, b.header.hop_by_hop_identifier = 0x7F01, 0x7F02
    loop = asyncio.get_running_loop()
    futs = {h: loop.create_future() for h in (0x7F01, 0x7F02)}
    gy._waiting.update(futs)
    gy.write(a.as_bytes() + b.as_bytes())
    raw_a, raw_b = await asyncio.wait_for(asyncio.gather(futs[0x7F01], futs[0x7F02]), 5)
    sessions = [next(x.value for x in plain(r).avps if x.code == 263) for r in (raw_a, raw_b)]
    assert sessions == [first, second]
    assert result_of(raw_a) == result_of(raw_b) == 2001
    for s in (first, second):
        t = await gy.call(gy.ccr(s, 3, 1, None, [mscc(DATA, None, [usu(cc_total_octets=0)])]))
        assert (t.session_id, t.result_code) == (s, 2001)
    assert await reserved_and_money(accounts, acct.account_id) == (1_000_000, 0)
