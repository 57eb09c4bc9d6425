"""Prepaid authorisation: Access-Request -> Access-Accept with quotas, or Reject
(standards §3.2 BlastRADIUS, §3.6 prepaid)."""

from __future__ import annotations

from typing import Any

from pyrad import packet as rp

from ocs.accounts import Accounts
from ocs.charging.api import ChargingService
from protocols.radius.dictionary import load_dictionary
from tests.core_fixtures import NewAccount
from tests.integration.radius.conftest import SECRET, Server, StartServer, acct_session
from tests.integration.radius.radius_harness import Nas
from tests.integration.radius.test_radius_accounting import acct, exchange, money, records_of


def access(
    user: str, ident: int = 5, ma: bool = True, password: str | None = None, **attrs: Any
) -> rp.AuthPacket:
    pkt = rp.AuthPacket(id=ident, secret=SECRET, dict=load_dictionary())
    if ma:
        pkt.add_message_authenticator()
    pkt.AddAttribute("User-Name", user)
    pkt.AddAttribute("NAS-IP-Address", "127.0.0.1")
    for name, value in attrs.items():
        pkt.AddAttribute(name.replace("_", "-"), value)
    if password is not None:
        pkt["User-Password"] = pkt.PwCrypt(password)
    return pkt


async def authorise(nas: Nas, server: Server, pkt: rp.AuthPacket) -> rp.Packet | None:
    raw = bytes(pkt.RequestPacket())
    answer = await nas.send(raw, server.auth)
    if answer is None:
        return None
    assert answer[20] == 80, "Message-Authenticator must come first (BlastRADIUS)"
    assert pkt.VerifyReply(pkt.CreateReply(packet=answer), answer, enforce_ma=True)
    return rp.Packet(packet=answer, dict=load_dictionary())


async def test_accept_carries_time_volume_and_interim_and_start_continues_it(
    server: Server,
    nas: Nas,
    charging: ChargingService,
    accounts: Accounts,
    new_account: NewAccount,
) -> None:
    """standards §3.6: Session-Timeout, Termination-Action, Mikrotik Total-Limit, Class,
    Acct-Interim-Interval; the Start with our Class continues the same reservation."""
    a = await new_account(money=1_000_000)
    sid = acct_session()
    ans = await authorise(nas, server, access(a.identity.value, Acct_Session_Id=sid))
    assert ans is not None
    assert ans.code == rp.AccessAccept
    assert ans["Session-Timeout"] == [600]  # the grant's validity time (policy)
    assert ans["Termination-Action"] == ["RADIUS-Request"]
    assert ans["Mikrotik-Total-Limit"] == [10_000]  # policy default grant
    assert ans["Acct-Interim-Interval"] == [60]
    (klass,) = ans["Class"]
    assert klass == f"ocs:radius:127.0.0.1:{sid}".encode()
    reserved = (await money(accounts, a.account_id))[1]
    assert reserved == 100
    start = acct(a.identity.value, sid, "Start", 6, Class=klass)
    assert await exchange(nas, server, start)
    assert (await money(accounts, a.account_id))[1] == reserved  # continued, not doubled
    stop = acct(a.identity.value, sid, "Stop", 7, Class=klass, Acct_Output_Octets=1000)
    assert await exchange(nas, server, stop)
    assert await money(accounts, a.account_id) == (1_000_000 - 10, 0)
    (rec,) = await records_of(charging, a.account_id)
    assert rec.session == f"radius:127.0.0.1:{sid}"


async def test_reauthorisation_gets_a_fresh_grant_without_doubling_the_reservation(
    server: Server,
    nas: Nas,
    accounts: Accounts,
    new_account: NewAccount,
) -> None:
    """Termination-Action RADIUS-Request: the NAS asks again for the same session; the new
    grant replaces the reservation (not added to it) and is answered, not replayed."""
    a = await new_account(money=1_000_000)
    sid = acct_session()
    first = await authorise(nas, server, access(a.identity.value, ident=1, Acct_Session_Id=sid))
    assert first is not None
    assert first.code == rp.AccessAccept
    assert await exchange(
        nas, server, acct(a.identity.value, sid, "Interim-Update", 2, Acct_Input_Octets=4000)
    )
    again = await authorise(nas, server, access(a.identity.value, ident=3, Acct_Session_Id=sid))
    assert again is not None
    assert again.code == rp.AccessAccept
    assert again["Class"] == first["Class"]
    assert again["Mikrotik-Total-Limit"] == [4_000 + 10_000]  # session total
    assert await money(accounts, a.account_id) == (1_000_000 - 40, 100)


async def test_generated_session_id_travels_in_class(
    server: Server,
    nas: Nas,
    charging: ChargingService,
    accounts: Accounts,
    new_account: NewAccount,
) -> None:
    """Without Acct-Session-Id the Class names a generated session that the Start continues."""
    a = await new_account(money=1_000_000)
    ans = await authorise(nas, server, access(a.identity.value))
    assert ans is not None
    (klass,) = ans["Class"]
    assert klass.startswith(b"ocs:radius:127.0.0.1:ocs-")
    sid = acct_session()
    assert await exchange(nas, server, acct(a.identity.value, sid, "Start", 8, Class=klass))
    assert await exchange(
        nas, server, acct(a.identity.value, sid, "Stop", 9, Class=klass, Acct_Input_Octets=10)
    )
    assert await money(accounts, a.account_id) == (1_000_000 - 10, 0)
    (rec,) = await records_of(charging, a.account_id)
    assert rec.session == klass[4:].decode()


async def test_grant_is_sized_by_the_balance(
    server: Server,
    nas: Nas,
    new_account: NewAccount,
) -> None:
    """A balance worth 5000 octets gets a 5000-octet Total-Limit."""
    a = await new_account(money=50)
    ans = await authorise(nas, server, access(a.identity.value))
    assert ans is not None
    assert ans.code == rp.AccessAccept
    assert ans["Mikrotik-Total-Limit"] == [5_000]


async def test_chillispot_flavour(
    start_server: StartServer, nas: Nas, new_account: NewAccount
) -> None:
    """standards §3.6: ChilliSpot Max-Total-Octets for a ChilliSpot client."""
    server = await start_server(client={"flavour": "chillispot"})
    a = await new_account(money=1_000_000)
    ans = await authorise(nas, server, access(a.identity.value))
    assert ans is not None
    assert ans["ChilliSpot-Max-Total-Octets"] == [10_000]
    assert "Mikrotik-Total-Limit" not in ans


async def test_unknown_user_is_rejected(server: Server, nas: Nas) -> None:
    """Access-Reject with Reply-Message for an unknown user."""
    ans = await authorise(nas, server, access("0000000001"))
    assert ans is not None
    assert ans.code == rp.AccessReject
    assert ans["Reply-Message"] == ["Unknown user"]


async def test_no_credit_is_rejected_and_nothing_stays_reserved(
    server: Server,
    nas: Nas,
    accounts: Accounts,
    new_account: NewAccount,
) -> None:
    """Access-Reject 'No credit' for an empty balance; no reservation is left behind."""
    a = await new_account(money=0)
    ans = await authorise(nas, server, access(a.identity.value))
    assert ans is not None
    assert ans.code == rp.AccessReject
    assert ans["Reply-Message"] == ["No credit"]
    view = await accounts.show(a.account_id)
    assert all(b["reserved"] == 0 for b in view["buckets"])
    assert view["sessions"] == []  # the refused session was closed at once


async def test_blocked_account_is_rejected(
    server: Server,
    nas: Nas,
    accounts: Accounts,
    new_account: NewAccount,
) -> None:
    """Access-Reject 'Account blocked'."""
    a = await new_account(money=1_000_000)
    await accounts.set_status(a.account_id, "blocked")
    ans = await authorise(nas, server, access(a.identity.value))
    assert ans is not None
    assert ans.code == rp.AccessReject
    assert ans["Reply-Message"] == ["Account blocked"]


async def test_pap_mode_checks_the_shared_password(
    start_server: StartServer,
    nas: Nas,
    new_account: NewAccount,
) -> None:
    """PAP mode: a wrong User-Password is rejected, the configured one accepted."""
    server = await start_server(client={"auth_mode": "pap", "pap_password": "voucher"})
    a = await new_account(money=1_000_000)
    wrong = await authorise(nas, server, access(a.identity.value, password="nope"))
    assert wrong is not None
    assert wrong.code == rp.AccessReject
    none = await authorise(nas, server, access(a.identity.value, ident=6))
    assert none is not None
    assert none.code == rp.AccessReject
    right = await authorise(nas, server, access(a.identity.value, ident=7, password="voucher"))
    assert right is not None
    assert right.code == rp.AccessAccept
    only = await authorise(
        nas, server, access(a.identity.value, ident=8, Service_Type="Authorize-Only")
    )
    assert only is not None
    assert only.code == rp.AccessAccept  # RFC 5176 §3.1: Authorize-Only has no password


async def test_required_message_authenticator_missing_gets_no_answer(
    start_server: StartServer,
    nas: Nas,
    new_account: NewAccount,
) -> None:
    """standards §3.2 BlastRADIUS: require_message_authenticator drops unsigned requests."""
    server = await start_server(client={"require_message_authenticator": True})
    a = await new_account()
    assert await authorise(nas, server, access(a.identity.value, ma=False)) is None
    assert await authorise(nas, server, access(a.identity.value, ident=9)) is not None


async def test_status_server_is_answered(server: Server, nas: Nas) -> None:
    """RFC 5997: Status-Server on the auth port gets a signed Access-Accept."""
    pkt = rp.AuthPacket(code=rp.StatusServer, id=3, secret=SECRET, dict=load_dictionary())
    pkt.add_message_authenticator()
    raw = bytes(pkt.RequestPacket())
    answer = await nas.send(raw, server.auth)
    assert answer is not None
    assert answer[0] == rp.AccessAccept
    assert pkt.VerifyReply(pkt.CreateReply(packet=answer), answer, enforce_ma=True)


async def test_a_long_or_binary_acct_session_id_still_gets_an_accept_whose_class_fits(
    server: Server,
    nas: Nas,
    accounts: Accounts,
    new_account: NewAccount,
) -> None:
    """An Access-Request whose Acct-Session-Id makes `ocs:radius:<nas>:<id>` longer than an
    attribute can be (250 octets, or 80 non-UTF-8 ones written 4 characters each) gets its
    Accept with a Class of at most 253 octets, and the Start echoing it continues the same
    reservation (found by the wire fuzz: no answer, radius_internal_error ValueError)."""
    for sid in ("L" * 250, bytes(range(0x80, 0xD0))):
        a = await new_account(money=1_000_000)
        ans = await authorise(nas, server, access(a.identity.value, Acct_Session_Id=sid))
        assert ans is not None and ans.code == rp.AccessAccept
        (klass,) = ans["Class"]
        assert len(klass) <= 253
        reserved = (await money(accounts, a.account_id))[1]
        assert reserved > 0
        start = acct(a.identity.value, "x", "Start", 6, Class=klass)
        start["Acct-Session-Id"] = sid
        assert await exchange(nas, server, start)
        assert (await money(accounts, a.account_id))[1] == reserved  # continued, not doubled
