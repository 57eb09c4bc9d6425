"""RADIUS accounting against the real charging core and Redis (standards §3.4)."""

from __future__ import annotations

import hashlib
import struct
import time
from typing import Any

import pytest
import structlog
import structlog.testing
from pyrad import packet as rp

from ocs.accounts import Accounts
from ocs.charging.api import ChargingService
from ocs.charging.records import ChargedRecord, decode_record
from protocols.radius import metrics as m
from protocols.radius.dictionary import load_dictionary
from tests.core_fixtures import NewAccount
from tests.integration.radius.conftest import SECRET, Server, acct_session
from tests.integration.radius.radius_harness import Nas


def acct(
    user: str, sid: str, status: str, ident: int, secret: bytes = SECRET, **attrs: Any
) -> rp.AcctPacket:
    pkt = rp.AcctPacket(id=ident, secret=secret, dict=load_dictionary())
    pkt.AddAttribute("Acct-Status-Type", status)
    pkt.AddAttribute("Acct-Session-Id", sid)
    pkt.AddAttribute("NAS-IP-Address", "127.0.0.1")
    pkt.AddAttribute("User-Name", user)
    for name, value in attrs.items():
        pkt.AddAttribute(name.replace("_", "-"), value)
    return pkt


async def exchange(nas: Nas, server: Server, pkt: rp.AcctPacket) -> bytes | None:
    raw = bytes(pkt.RequestPacket())
    answer = await nas.send(raw, server.acct)
    if answer is not None:
        assert pkt.VerifyReply(rp.Packet(packet=answer, dict=load_dictionary()), answer)
        assert answer[0] == rp.AccountingResponse
    return answer


async def money(accounts: Accounts, account_id: str) -> tuple[int, int]:
    view = await accounts.show(account_id)
    main = [b for b in view["buckets"] if b["unit"] == "money"]
    return sum(b["amount"] for b in main), sum(b["reserved"] for b in main)


async def records_of(charging: ChargingService, account_id: str) -> list[ChargedRecord]:
    entries = await charging.redis.xrange(charging.store.keys(account_id).records)
    recs = [decode_record(f[b"r"]) for _, f in entries]
    return [r for r in recs if r.account == account_id]


async def test_start_interim_stop_charges_exactly_the_deltas(
    server: Server,
    nas: Nas,
    charging: ChargingService,
    accounts: Accounts,
    new_account: NewAccount,
) -> None:
    """standards §3.4: cumulative Interims charge the difference; Stop releases and records."""
    a = await new_account(money=1_000_000)
    user, sid = a.identity.value, acct_session()
    assert await exchange(nas, server, acct(user, sid, "Start", 1))
    assert (await money(accounts, a.account_id))[1] > 0  # reserved per policy
    assert await exchange(
        nas,
        server,
        acct(
            user,
            sid,
            "Interim-Update",
            2,
            Acct_Input_Octets=2000,
            Acct_Output_Octets=500,
            Acct_Session_Time=60,
        ),
    )
    assert (await money(accounts, a.account_id))[0] == 1_000_000 - 30  # 3 blocks of 1000
    assert await exchange(
        nas,
        server,
        acct(
            user,
            sid,
            "Interim-Update",
            3,
            Acct_Input_Octets=4000,
            Acct_Output_Octets=1000,
            Acct_Session_Time=120,
        ),
    )
    assert (await money(accounts, a.account_id))[0] == 1_000_000 - 50
    assert await exchange(
        nas,
        server,
        acct(
            user,
            sid,
            "Stop",
            4,
            Acct_Input_Octets=4000,
            Acct_Output_Octets=1500,
            Acct_Session_Time=130,
            Acct_Terminate_Cause="User-Request",
        ),
    )
    assert await money(accounts, a.account_id) == (1_000_000 - 60, 0)
    (rec,) = await records_of(charging, a.account_id)
    assert rec.charged == 60
    assert rec.cause == "normal"
    assert rec.owner == "radius:127.0.0.1"
    assert rec.services[0].used["total_octets"] == 5500


async def test_gigawords_are_charged_as_64_bit_totals(
    server: Server,
    nas: Nas,
    charging: ChargingService,
    accounts: Accounts,
    new_account: NewAccount,
) -> None:
    """standards §3.3: total = Gigawords x 2^32 + Octets (here 1 GiW + 1000 octets)."""
    a = await new_account(money=100_000_000)
    user, sid = a.identity.value, acct_session()
    assert await exchange(nas, server, acct(user, sid, "Start", 1))
    assert await exchange(
        nas,
        server,
        acct(
            user,
            sid,
            "Stop",
            2,
            Acct_Input_Octets=1000,
            Acct_Input_Gigawords=1,
            Acct_Output_Octets=0,
        ),
    )
    (rec,) = await records_of(charging, a.account_id)
    assert rec.services[0].used["total_octets"] == 2**32 + 1000
    assert rec.charged == -(-(2**32 + 1000) // 1000) * 10


async def test_retransmission_gets_the_cached_answer_and_no_second_charge(
    server: Server,
    nas: Nas,
    accounts: Accounts,
    new_account: NewAccount,
) -> None:
    """standards §3.4: same (source, port, Identifier, Authenticator) -> cached response."""
    a = await new_account(money=1_000_000)
    user, sid = a.identity.value, acct_session()
    await exchange(nas, server, acct(user, sid, "Start", 1))
    interim = acct(user, sid, "Interim-Update", 2, Acct_Input_Octets=3000)
    raw = bytes(interim.RequestPacket())
    before = m.DUPLICATES.labels("nas1")._value.get()
    first = await nas.send(raw, server.acct)
    second = await nas.send(raw, server.acct)
    assert first is not None
    assert first == second
    assert m.DUPLICATES.labels("nas1")._value.get() == before + 1
    assert (await money(accounts, a.account_id))[0] == 1_000_000 - 30


async def test_resent_record_with_new_identifier_charges_once(
    server: Server,
    nas: Nas,
    accounts: Accounts,
    new_account: NewAccount,
) -> None:
    """standards §3.4: a NAS re-sends with a new Identifier and Acct-Delay-Time: charged once."""
    a = await new_account(money=1_000_000)
    user, sid = a.identity.value, acct_session()
    await exchange(nas, server, acct(user, sid, "Start", 1))
    assert await exchange(nas, server, acct(user, sid, "Interim-Update", 2, Acct_Input_Octets=3000))
    assert await exchange(
        nas, server, acct(user, sid, "Interim-Update", 3, Acct_Input_Octets=3000, Acct_Delay_Time=5)
    )
    assert (await money(accounts, a.account_id))[0] == 1_000_000 - 30
    assert await exchange(nas, server, acct(user, sid, "Stop", 4, Acct_Input_Octets=3000))
    assert await exchange(
        nas, server, acct(user, sid, "Stop", 5, Acct_Input_Octets=3000, Acct_Delay_Time=9)
    )
    assert await money(accounts, a.account_id) == (1_000_000 - 30, 0)


async def test_counters_going_down_start_a_new_epoch_and_never_credit(
    server: Server,
    nas: Nas,
    accounts: Accounts,
    new_account: NewAccount,
) -> None:
    """standards §3.4: a lower total while time goes on (32-bit wrap without Gigawords)
    is charged from zero."""
    a = await new_account(money=1_000_000)
    user, sid = a.identity.value, acct_session()
    await exchange(nas, server, acct(user, sid, "Start", 1))
    await exchange(
        nas,
        server,
        acct(user, sid, "Interim-Update", 2, Acct_Input_Octets=5000, Acct_Session_Time=60),
    )
    assert (await money(accounts, a.account_id))[0] == 1_000_000 - 50
    await exchange(
        nas,
        server,
        acct(user, sid, "Interim-Update", 3, Acct_Input_Octets=2000, Acct_Session_Time=120),
    )
    # Not a credit of 30: a new epoch, its 2000 octets charged from zero (2 blocks).
    assert (await money(accounts, a.account_id))[0] == 1_000_000 - 50 - 20


def interim(user: str, sid: str, ident: int, k: int) -> rp.AcctPacket:
    """The k-th Interim of a session: 1000 octets and 60 s more than the one before."""
    return acct(
        user, sid, "Interim-Update", ident, Acct_Input_Octets=1000 * k, Acct_Session_Time=60 * k
    )


async def test_interim_resent_after_newer_ones_charges_nothing(
    server: Server,
    nas: Nas,
    accounts: Accounts,
    new_account: NewAccount,
) -> None:
    """standards §3.4: a NAS re-sends Interim 1 (new Identifier) after Interims 2..8: no charge."""
    a = await new_account(money=1_000_000)
    user, sid = a.identity.value, acct_session()
    await exchange(nas, server, acct(user, sid, "Start", 1))
    for k in range(1, 9):
        assert await exchange(nas, server, interim(user, sid, 1 + k, k))
    assert (await money(accounts, a.account_id))[0] == 1_000_000 - 80
    assert await exchange(nas, server, interim(user, sid, 20, 1))
    assert (await money(accounts, a.account_id))[0] == 1_000_000 - 80


async def test_interim_delayed_past_a_newer_one_charges_nothing(
    server: Server,
    nas: Nas,
    accounts: Accounts,
    new_account: NewAccount,
) -> None:
    """standards §3.4: Interim 2 arrives after Interim 3 (never seen before): its lower totals
    charge nothing, and the Stop charges only what is past Interim 3."""
    a = await new_account(money=1_000_000)
    user, sid = a.identity.value, acct_session()
    await exchange(nas, server, acct(user, sid, "Start", 1))
    assert await exchange(nas, server, interim(user, sid, 2, 3))
    assert await exchange(nas, server, interim(user, sid, 3, 2))
    assert (await money(accounts, a.account_id))[0] == 1_000_000 - 30
    stop = acct(user, sid, "Stop", 4, Acct_Input_Octets=4000, Acct_Session_Time=240)
    assert await exchange(nas, server, stop)
    assert await money(accounts, a.account_id) == (1_000_000 - 40, 0)


async def test_stop_resent_after_newer_records_charges_nothing(
    server: Server,
    nas: Nas,
    charging: ChargingService,
    accounts: Accounts,
    new_account: NewAccount,
) -> None:
    """standards §3.4: the Stop re-sent (new Identifier) after the close: no charge, one record."""
    a = await new_account(money=1_000_000)
    user, sid = a.identity.value, acct_session()
    await exchange(nas, server, acct(user, sid, "Start", 1))
    for k in range(1, 7):
        assert await exchange(nas, server, interim(user, sid, 1 + k, k))
    stop = dict(Acct_Input_Octets=7000, Acct_Session_Time=420)
    assert await exchange(nas, server, acct(user, sid, "Stop", 10, **stop))
    assert await money(accounts, a.account_id) == (1_000_000 - 70, 0)
    for ident in (11, 12):
        await exchange(nas, server, acct(user, sid, "Stop", ident, Acct_Delay_Time=ident, **stop))
    assert await money(accounts, a.account_id) == (1_000_000 - 70, 0)
    assert len(await records_of(charging, a.account_id)) == 1


async def test_stop_without_start_is_charged_and_recorded(
    server: Server,
    nas: Nas,
    charging: ChargingService,
    accounts: Accounts,
    new_account: NewAccount,
) -> None:
    """standards §3.4: Stop without Start creates the record anyway."""
    a = await new_account(money=1_000_000)
    user, sid = a.identity.value, acct_session()
    assert await exchange(nas, server, acct(user, sid, "Stop", 1, Acct_Output_Octets=1500))
    (rec,) = await records_of(charging, a.account_id)
    assert rec.charged == 20
    assert await money(accounts, a.account_id) == (1_000_000 - 20, 0)


async def test_interim_without_start_opens_the_session(
    server: Server,
    nas: Nas,
    accounts: Accounts,
    new_account: NewAccount,
) -> None:
    """An Interim for a session we never saw opens it (the Start was lost) and charges."""
    a = await new_account(money=1_000_000)
    user, sid = a.identity.value, acct_session()
    assert await exchange(nas, server, acct(user, sid, "Interim-Update", 1, Acct_Input_Octets=1000))
    assert (await money(accounts, a.account_id))[0] == 1_000_000 - 10


@pytest.mark.parametrize("status", ["Accounting-On", "Accounting-Off"])
async def test_accounting_on_off_closes_every_session_of_the_nas(
    server: Server,
    nas: Nas,
    charging: ChargingService,
    accounts: Accounts,
    new_account: NewAccount,
    status: str,
) -> None:
    """standards §3.4: Accounting-On/Off closes the NAS's sessions and releases reservations."""
    a = await new_account(money=1_000_000)
    user = a.identity.value
    for i, sid in enumerate((acct_session(), acct_session())):
        assert await exchange(nas, server, acct(user, sid, "Start", 10 + i))
    assert (await money(accounts, a.account_id))[1] > 0
    # The NAS rebooted after those sessions opened (sessions opened at or after the
    # event time belong to the new boot and are kept).
    on = acct(user, "on-" + acct_session(), status, 20, Event_Timestamp=int(time.time()) + 1)
    assert await exchange(nas, server, on)
    assert await money(accounts, a.account_id) == (1_000_000, 0)
    recs = await records_of(charging, a.account_id)
    assert [r.cause for r in recs] == ["nas_reboot", "nas_reboot"]


async def test_unknown_user_is_acknowledged_without_charge(server: Server, nas: Nas) -> None:
    """The NAS cannot act on an unknown user: acknowledge, count, charge nobody."""
    before = m.ACCT_OUTCOMES.labels("nas1", "start", "rejected")._value.get()
    assert await exchange(nas, server, acct("0000000000", acct_session(), "Start", 1))
    assert m.ACCT_OUTCOMES.labels("nas1", "start", "rejected")._value.get() == before + 1


async def test_wrong_secret_gets_no_answer(server: Server, nas: Nas) -> None:
    """standards §3.2: bad Request Authenticator -> drop, no reply, counted."""
    before = m.DROPS.labels("nas1", "bad_authenticator")._value.get()
    pkt = acct("1", acct_session(), "Start", 1, secret=b"wrong")
    assert await nas.send(bytes(pkt.RequestPacket()), server.acct, within=0.5) is None
    assert m.DROPS.labels("nas1", "bad_authenticator")._value.get() == before + 1


async def test_unknown_source_is_dropped_and_counted(start_server: Any, nas: Nas) -> None:
    """standards §3.1: a source matching no client is dropped silently and counted."""
    server = await start_server(
        clients=[{"name": "other", "address": "192.0.2.0/24", "secret": "x"}]
    )
    before = m.DROPS.labels(m.UNKNOWN_NAS, "unknown_client")._value.get()
    pkt = acct("1", acct_session(), "Start", 1)
    assert await nas.send(bytes(pkt.RequestPacket()), server.acct, within=0.5) is None
    assert m.DROPS.labels(m.UNKNOWN_NAS, "unknown_client")._value.get() == before + 1


def signed(body: bytes, code: int = 4, ident: int = 9) -> bytes:
    """A datagram with a correct Accounting Request Authenticator around ``body``."""
    header = struct.pack("!BBH", code, ident, 20 + len(body))
    return header + hashlib.md5(header + bytes(16) + body + SECRET).digest() + body


def drops(reason: str) -> float:
    return float(m.DROPS.labels("nas1", reason)._value.get())


async def test_each_malformed_or_unauthentic_datagram_is_dropped_counted_and_serving_goes_on(
    server: Server,
    nas: Nas,
    new_account: NewAccount,
) -> None:
    """standards §3.7: every discard reason end to end: no answer, counted by reason,
    and the next valid request is answered."""
    a = await new_account()
    user = a.identity.value
    good_attrs = bytes(acct(user, "x", "Start", 1).RequestPacket())[20:]
    no_status = acct(user, acct_session(), "Start", 2)
    del no_status["Acct-Status-Type"]
    no_session = acct(user, acct_session(), "Start", 3)
    del no_session["Acct-Session-Id"]
    bad_ma = acct(user, acct_session(), "Start", 4)
    bad_ma.add_message_authenticator()
    bad_ma_raw = bytearray(bad_ma.RequestPacket())
    bad_ma_raw[22] ^= 0xFF  # corrupt the HMAC, then re-sign the Request Authenticator
    cases = {
        "too_short": b"\x04\x01\x00\x10" + bytes(10),
        "bad_length": b"\x04\x01\x00\x10" + bytes(16),
        "truncated": b"\x04\x01\x10\x00" + bytes(40),
        "bad_attribute": signed(good_attrs + b"\x01\x01"),
        "wrong_code": signed(good_attrs, code=1),
        "bad_authenticator": bytes(acct(user, "x", "Start", 5, secret=b"nope").RequestPacket()),
        "bad_message_authenticator": signed(bytes(bad_ma_raw[20:])),
        "missing_status_type": bytes(no_status.RequestPacket()),
        "missing_session_id": bytes(no_session.RequestPacket()),
    }
    for reason, datagram in cases.items():
        before = drops(reason)
        assert await nas.send(datagram, server.acct, within=0.3) is None, reason
        assert drops(reason) == before + 1, reason
    assert await exchange(nas, server, acct(user, acct_session(), "Start", 6))


async def test_event_time_from_delay_or_timestamp_is_the_record_time(
    server: Server,
    nas: Nas,
    charging: ChargingService,
    new_account: NewAccount,
) -> None:
    """standards §3.3: event time = receive time - Acct-Delay-Time, or Event-Timestamp."""
    a = await new_account()
    user = a.identity.value
    t0 = int(time.time())
    assert await exchange(
        nas, server, acct(user, acct_session(), "Stop", 1, Acct_Delay_Time=100, Acct_Input_Octets=1)
    )
    assert await exchange(
        nas,
        server,
        acct(user, acct_session(), "Stop", 2, Event_Timestamp=t0 - 3600, Acct_Input_Octets=1),
    )
    ends = sorted(r.end for r in await records_of(charging, a.account_id))
    assert ends[0] == t0 - 3600
    assert t0 - 100 <= ends[1] <= int(time.time()) - 100


async def test_stop_without_counters_releases_the_reservation(
    server: Server,
    nas: Nas,
    accounts: Accounts,
    new_account: NewAccount,
) -> None:
    """A Stop carrying no counters charges nothing and releases what Start reserved."""
    a = await new_account(money=1_000_000)
    sid = acct_session()
    assert await exchange(nas, server, acct(a.identity.value, sid, "Start", 1))
    assert await exchange(nas, server, acct(a.identity.value, sid, "Stop", 2))
    assert await money(accounts, a.account_id) == (1_000_000, 0)


async def test_garbage_is_dropped_and_the_server_keeps_serving(
    server: Server,
    nas: Nas,
    new_account: NewAccount,
) -> None:
    """standards §3.7: malformed datagrams get nothing; the next valid request is answered."""
    a = await new_account()
    for junk in (b"", b"\x04", b"\x04\x01\x00\x10" + bytes(16), b"\x04\x01\x10\x00" + bytes(40)):
        assert await nas.send(junk, server.acct, within=0.2) is None
    pkt = acct(a.identity.value, acct_session(), "Start", 1)
    pkt_no_status = acct(a.identity.value, acct_session(), "Start", 2)
    del pkt_no_status["Acct-Status-Type"]
    assert await nas.send(bytes(pkt_no_status.RequestPacket()), server.acct, within=0.3) is None
    assert await exchange(nas, server, pkt)


async def test_drops_are_logged_once_per_source_per_interval(server: Server, nas: Nas) -> None:
    """A flood of garbage from one source: every datagram counted, one log line."""
    before = drops("too_short")
    with structlog.testing.capture_logs() as logs:
        for _ in range(5):
            assert await nas.send(b"\x04\x01", server.acct, within=0.1) is None
    assert drops("too_short") == before + 5
    lines = [e for e in logs if e["event"] == "radius_dropped"]
    assert len(lines) == 1  # a fresh front end: the first drop is logged, no more
