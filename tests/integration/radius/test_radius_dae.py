"""Dynamic authorisation, the OCS as client (RFC 5176; standards §3.5, §3.6):
Disconnect on exhaustion or block, CoA on top-up, against a pyrad DAE listener."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

import msgpack
import structlog.testing
from pyrad import packet as rp

from ocs.accounts import Accounts, BucketSpec
from ocs.charging.api import ChargingService
from ocs.store.keys import notifications_stream
from ocs.vocabulary.types import TerminationCause, UnitType
from protocols.radius import metrics as m
from protocols.radius import sessions as ss
from tests.core_fixtures import NewAccount
from tests.integration.radius.conftest import SECRET, Server, StartServer, acct_session
from tests.integration.radius.radius_harness import DaeListener, DaeMode, Nas, open_dae_listener
from tests.integration.radius.test_radius_accounting import acct, exchange, money, records_of
from tests.unit.radius.radius_wire import attributes_of


async def exhaust(nas: Nas, server: Server, user: str, sid: str) -> None:
    """Start, then an Interim reporting more than the balance (100 micro = 10000 octets)."""
    assert await exchange(nas, server, acct(user, sid, "Start", 1, Framed_IP_Address="10.0.0.7"))
    interim = acct(
        user, sid, "Interim-Update", 2, Acct_Input_Octets=20_000, Framed_IP_Address="10.0.0.7"
    )
    assert await exchange(nas, server, interim)


async def until_pushed(dae: DaeListener, trigger: Callable[[], Awaitable[object]]) -> rp.Packet:
    """Fire ``trigger`` (which publishes a notification) until the NAS gets a push: the
    front end subscribes asynchronously, and Redis pub/sub keeps nothing for late
    subscribers. Returns the first request the NAS received."""
    async with asyncio.timeout(15):
        while not dae.received:
            await trigger()
            with contextlib.suppress(TimeoutError):
                await dae.wait(1, within=1.0)
    return dae.received[0]


def count(metric: object, *labels: str) -> float:
    return float(metric.labels(*labels)._value.get())  # type: ignore[attr-defined]


async def test_exhaustion_sends_disconnect_naming_the_session(
    server: Server,
    nas: Nas,
    dae: DaeListener,
    new_account: NewAccount,
) -> None:
    """standards §3.5: Disconnect-Request with User-Name, Acct-Session-Id, Framed-IP, NAS-IP."""
    a = await new_account(money=100)
    sid = acct_session()
    acks = count(m.DAE_ACK, "nas1", "disconnect")
    await exhaust(nas, server, a.identity.value, sid)
    (req,) = await dae.wait(1)
    assert req.code == rp.DisconnectRequest
    assert req["User-Name"] == [a.identity.value]
    assert req["Acct-Session-Id"] == [sid]
    assert req["Framed-IP-Address"] == ["10.0.0.7"]
    assert req["NAS-IP-Address"] == ["127.0.0.1"]
    assert "Event-Timestamp" in req
    await server.frontend.dynauth.drain(2)
    assert count(m.DAE_ACK, "nas1", "disconnect") == acks + 1


async def test_nak_503_closes_the_charging_session(
    server: Server,
    nas: Nas,
    dae: DaeListener,
    charging: ChargingService,
    accounts: Accounts,
    new_account: NewAccount,
) -> None:
    """standards §3.5: Error-Cause 503 (session gone) -> charging session terminated."""
    dae.mode = DaeMode.NAK_503
    a = await new_account(money=100)
    await exhaust(nas, server, a.identity.value, acct_session())
    await dae.wait(1)
    await server.frontend.dynauth.drain(2)
    (rec,) = await records_of(charging, a.account_id)
    assert rec.cause == "credit_exhausted"
    assert (await money(accounts, a.account_id))[1] == 0
    assert count(m.DAE_NAK, "nas1", "disconnect", "503") >= 1


async def test_other_nak_is_counted_and_the_session_stays(
    server: Server,
    nas: Nas,
    dae: DaeListener,
    charging: ChargingService,
    new_account: NewAccount,
) -> None:
    """A NAK without 503 (here 504 Session-Context-Not-Removable) closes nothing."""
    dae.mode = DaeMode.NAK
    a = await new_account(money=100)
    before = count(m.DAE_NAK, "nas1", "disconnect", "504")
    await exhaust(nas, server, a.identity.value, acct_session())
    await dae.wait(1)
    await server.frontend.dynauth.drain(2)
    assert count(m.DAE_NAK, "nas1", "disconnect", "504") == before + 1
    assert await records_of(charging, a.account_id) == []


async def test_unanswered_disconnect_is_retransmitted_unchanged_then_times_out(
    server: Server,
    nas: Nas,
    dae: DaeListener,
    new_account: NewAccount,
) -> None:
    """standards §3.5: retransmit with the same ID and Authenticator, then give up."""
    dae.mode = DaeMode.SILENT
    a = await new_account(money=100)
    before = count(m.DAE_TIMEOUTS, "nas1", "disconnect")
    await exhaust(nas, server, a.identity.value, acct_session())
    await dae.wait(3)  # first send + 2 retries (test config)
    await server.frontend.dynauth.drain(3)
    assert len(set(dae.raw)) == 1  # byte-identical: same Identifier and Authenticator
    assert len(dae.raw) == 3
    assert count(m.DAE_TIMEOUTS, "nas1", "disconnect") == before + 1


async def test_blocking_the_account_disconnects_its_live_session(
    server: Server,
    nas: Nas,
    dae: DaeListener,
    accounts: Accounts,
    new_account: NewAccount,
) -> None:
    """A BLOCKED notification (from any process) becomes a Disconnect-Request."""
    a = await new_account(money=1_000_000)
    sid = acct_session()
    assert await exchange(nas, server, acct(a.identity.value, sid, "Start", 1))
    req = await until_pushed(dae, lambda: accounts.set_status(a.account_id, "blocked"))
    assert req.code == rp.DisconnectRequest
    assert req["Acct-Session-Id"] == [sid]


async def test_topup_sends_coa_with_the_new_session_total(
    server: Server,
    nas: Nas,
    dae: DaeListener,
    accounts: Accounts,
    new_account: NewAccount,
) -> None:
    """standards §3.6: top-up -> CoA-Request whose Total-Limit = used so far + new grant."""
    a = await new_account(money=100)
    user, sid = a.identity.value, acct_session()
    assert await exchange(nas, server, acct(user, sid, "Start", 1))
    assert await exchange(
        nas, server, acct(user, sid, "Interim-Update", 2, Acct_Input_Octets=5_000)
    )
    acks = count(m.DAE_ACK, "nas1", "coa")
    req = await until_pushed(
        dae, lambda: accounts.credit(a.account_id, BucketSpec(UnitType.MONEY, 0), 1_000_000)
    )
    assert req.code == rp.CoARequest
    assert req["Acct-Session-Id"] == [sid]
    assert req["Mikrotik-Total-Limit"] == [5_000 + 10_000]
    await server.frontend.dynauth.drain(2)
    assert count(m.DAE_ACK, "nas1", "coa") >= acks + 1  # one per trigger that was heard


async def test_nothing_is_sent_when_dae_is_disabled(
    start_server: StartServer,
    nas: Nas,
    new_account: NewAccount,
) -> None:
    """radius.dae.enabled: false -> credit exhaustion sends no datagram to the NAS's DAE port
    (a plain UDP listener counts every packet, authentic or not)."""
    counter = await open_dae_listener(SECRET)
    try:
        server = await start_server(
            dae={"enabled": False, "initial_timeout": 0.3}, client={"dae_port": counter.port}
        )
        a = await new_account(money=100)
        suppressed = count(m.DAE_SUPPRESSED, "nas1", "disconnect")
        await exhaust(nas, server, a.identity.value, acct_session())
        await server.frontend.dynauth.drain(2)
        await asyncio.sleep(1.0)  # a push would have left within milliseconds
        print(f"DAE datagrams with dae disabled: {len(counter.raw) + counter.bad}")
        assert (len(counter.raw), counter.bad) == (0, 0)
        assert count(m.DAE_SUPPRESSED, "nas1", "disconnect") == suppressed + 1  # it was due
    finally:
        counter.close()


async def test_binary_calling_station_id_is_echoed_as_the_octets_received(
    server: Server,
    nas: Nas,
    dae: DaeListener,
    new_account: NewAccount,
) -> None:
    """RFC 5176 §3: a Calling-Station-Id of 100 non-UTF-8 octets comes back in the
    Disconnect-Request octet for octet (it used to fail to encode, and the subscriber was
    never cut off)."""
    calling = bytes(range(0x80, 0xE4))  # 100 octets, none of them valid UTF-8 here
    dae.mode = DaeMode.ACK
    a = await new_account(money=100)
    user, sid = a.identity.value, acct_session()
    start = acct(user, sid, "Start", 1, Calling_Station_Id=calling)
    assert await exchange(nas, server, start)
    interim = acct(
        user, sid, "Interim-Update", 2, Acct_Input_Octets=20_000, Calling_Station_Id=calling
    )
    sent = count(m.DAE_SENT, "nas1", "disconnect")
    assert await exchange(nas, server, interim)
    await server.frontend.dynauth.drain(2)
    assert count(m.DAE_SENT, "nas1", "disconnect") == sent + 1
    ours = [
        dict(attributes_of(r)) for r in dae.raw if dict(attributes_of(r)).get(44) == sid.encode()
    ]
    assert ours, "no Disconnect-Request reached the NAS"
    assert ours[0][31] == calling


async def test_a_push_that_cannot_be_sent_is_counted_and_logged(
    server: Server, dae: DaeListener
) -> None:
    """A Disconnect that cannot be encoded (a 300-octet User-Name kept by an older version)
    or has nowhere to go is counted in ocs_radius_dae_failed and logged with its session,
    not lost in a task's unread exception."""
    attrs = (
        (ss.A_USER_NAME, "u" * 300),
        (ss.A_ACCT_SESSION_ID, "s-too-long"),
        (ss.A_SOURCE, "127.0.0.1"),
        (ss.A_CLIENT, "nas1"),
    )
    errors = count(m.DAE_FAILED, "nas1", "disconnect", "error")
    lost = count(m.DAE_FAILED, m.UNKNOWN_NAS, "disconnect", "no_target")
    received = len(dae.raw)
    with structlog.testing.capture_logs() as logs:
        dynauth = server.frontend.dynauth
        cause = TerminationCause.CREDIT_EXHAUSTED
        assert await dynauth.disconnect("radius:x:s-too-long", "radius:x", attrs, cause) is None
        assert await dynauth.disconnect("radius:x:nowhere", "radius:x", (), cause) is None
    assert count(m.DAE_FAILED, "nas1", "disconnect", "error") == errors + 1
    assert count(m.DAE_FAILED, m.UNKNOWN_NAS, "disconnect", "no_target") == lost + 1
    failed = [e for e in logs if e["event"] == "radius_dae_failed"]
    assert [(e["session"], e["reason"]) for e in failed] == [
        ("radius:x:s-too-long", "error"),
        ("radius:x:nowhere", "no_target"),
    ]
    assert "253" in failed[0]["error"]
    assert len(dae.raw) == received


async def test_disconnects_go_on_after_a_notification_that_does_not_decode(
    server: Server,
    nas: Nas,
    dae: DaeListener,
    charging: ChargingService,
    accounts: Accounts,
    new_account: NewAccount,
) -> None:
    """A notifications-stream entry that is not a notification (msgpack of a list) is
    logged and skipped, the subscription goes on, and blocking another account still
    sends its Disconnect-Request to the NAS. (It used to raise AttributeError in the
    decoder and end dynauth's consumer for the rest of the worker's life; a
    subscription that does end is taken again: tests/unit/test_frontend_follow.py.)"""
    first, second = await new_account(money=1_000_000), await new_account(money=1_000_000)
    sid_first, sid_second = acct_session(), acct_session()
    assert await exchange(nas, server, acct(first.identity.value, sid_first, "Start", 1))
    assert await exchange(nas, server, acct(second.identity.value, sid_second, "Start", 1))
    # The consumer is following: the first block is heard.
    heard = await until_pushed(dae, lambda: accounts.set_status(first.account_id, "blocked"))
    assert heard["Acct-Session-Id"] == [sid_first]
    await server.frontend.dynauth.drain(2)
    dae.received.clear()
    with structlog.testing.capture_logs() as logs:
        await charging.redis.xadd(notifications_stream(0), {"n": msgpack.packb([1, 2])})
        req = await until_pushed(dae, lambda: accounts.set_status(second.account_id, "blocked"))
    assert req.code == rp.DisconnectRequest
    assert req["Acct-Session-Id"] == [sid_second]
    events = [e["event"] for e in logs]
    assert "notification_undecodable" in events
    assert "radius_dae_subscription_lost" not in events
