"""Every error answer end to end over TCP, with its Failed-AVP (standards §1.6, §1.8, §2.8, §2.9)."""

from __future__ import annotations

import asyncio
import itertools
import struct
from typing import Any

import pytest
import structlog
from redis.asyncio import Redis

from ocs.charging.api import ChargingService
from ocs.vocabulary.types import TerminationCause
from tests.core_fixtures import NewAccount
from tests.integration.diameter.conftest import NewClient, StartServer
from tests.integration.diameter.gy_client import (
    ORIGIN_HOST,
    GyClient,
    failed_codes,
    mscc,
    plain,
    result_of,
    rsu,
    usu,
)
from tests.unit.diameter import diam_wire as w

_ids = itertools.count(0x7000)
MSCC = 456


def ids() -> dict[str, int]:
    n = next(_ids)
    return {"hbh": n, "e2e": n}


def sub(msisdn: str) -> bytes:
    return w.grouped(443, w.u32(450, 0), w.utf8(444, msisdn))


ROWS = [
    # (scenario, message builder, Result-Code, E bit, Failed-AVP chain or None)
    (
        "3001 ACR on app 4",
        lambda: w.message(271, w.utf8(263, "x"), app=4, **ids()),
        3001,
        True,
        None,
    ),
    (
        "3001 STR: Gy sessions end with CCR-T",
        lambda: w.message(275, w.utf8(263, "x"), app=4, **ids()),
        3001,
        True,
        None,
    ),
    ("3007 app not advertised", lambda: w.message(272, app=16777238, **ids()), 3007, True, None),
    ("3008 E bit in a request", lambda: w.ccr(flags=0xE0, **ids()), 3008, True, None),
    (
        "3009 V bit with vendor 0",
        lambda: w.ccr(w.avp(872, bytes(4), flags=0xC0), **ids()),
        3009,
        True,
        [872],
    ),
    (
        "5001 unknown M-bit AVP in MSCC",
        lambda: w.ccr(w.grouped(MSCC, w.u32(99999, 1)), **ids()),
        5001,
        False,
        [MSCC, 99999],
    ),
    (
        "5004 CC-Request-Type 5",
        lambda: w.ccr(w.u32(416, 5), req_type=None, **ids()),
        5004,
        False,
        [416],
    ),
    (
        "5004 bad UTF-8",
        lambda: w.ccr(w.utf8(461, b"\xc3\x28"), context=None, **ids()),
        5004,
        False,
        [461],
    ),
    ("5005 missing Service-Context-Id", lambda: w.ccr(context=None, **ids()), 5005, False, [461]),
    (
        "5005 loadtest_cc CCR (no type, no context)",
        lambda: w.ccr(req_type=None, context=None, **ids()),
        5005,
        False,
        None,
    ),
    ("5008 Result-Code in a CCR", lambda: w.ccr(w.u32(268, 2001), **ids()), 5008, False, [268]),
    (
        "5009 duplicated CC-Request-Number",
        lambda: w.ccr(w.u32(415, 9), **ids()),
        5009,
        False,
        [415],
    ),
    ("5011 version 2", lambda: w.message(280, version=2, **ids()), 5011, False, None),
    (
        "5012 too many MSCC",
        lambda: w.ccr(*[w.grouped(MSCC, w.u32(432, i)) for i in range(65)], **ids()),
        5012,
        False,
        None,
    ),
    ("5012 nested grouped bomb", lambda: w.ccr(_bomb(40), **ids()), 5012, False, None),
    (
        "5014 Unsigned32 of 8 octets",
        lambda: w.ccr(w.avp(415, bytes(8)), number=None, **ids()),
        5014,
        False,
        [415],
    ),
    (
        "5014 group children overrun",
        lambda: w.ccr(w.avp(MSCC, struct.pack(">II", 432, (0x40 << 24) | 64)), **ids()),
        5014,
        False,
        [MSCC, 432],
    ),
    (
        "5031 unknown Service-Context-Id",
        lambda: w.ccr(sub("1"), context="32270@3gpp.org", **ids()),
        5031,
        False,
        [461],
    ),
    ("5005 CCR-I without subscriber", lambda: w.ccr(**ids()), 5005, False, [443]),
    (
        "3002 Destination-Host not us",
        lambda: w.ccr(sub("1"), w.utf8(293, "other.example"), **ids()),
        3002,
        True,
        None,
    ),
    (
        "3003 Destination-Realm not served",
        lambda: w.ccr(sub("1"), realm="elsewhere.example", **ids()),
        3003,
        True,
        None,
    ),
]


def _bomb(depth: int) -> bytes:
    inner = w.u32(432, 1)
    for _ in range(depth):
        inner = w.grouped(MSCC, inner)
    return inner


@pytest.mark.parametrize(
    ("scenario", "build", "code", "e_bit", "chain"), ROWS, ids=[r[0] for r in ROWS]
)
async def test_error_rows(
    gy: GyClient, scenario: str, build: object, code: int, e_bit: bool, chain: list[int] | None
) -> None:
    """Each row of standards §1.6 / §2.9: its Result-Code, E bit and Failed-AVP; the peer stays open."""
    data = build()  # type: ignore[operator]
    answer = await gy.send_raw(data)
    msg = plain(answer)
    assert result_of(answer) == code, scenario
    assert msg.header.is_error is e_bit
    assert msg.header.hop_by_hop_identifier == struct.unpack(">I", data[12:16])[0]
    if chain is not None:
        assert failed_codes(answer) == chain
    assert all(a.code not in (283, 293) for a in msg.avps)  # never Destination-*
    assert (await gy.dwr()).result_code == 2001


async def test_user_unknown_5030(gy: GyClient) -> None:
    """CCR-I for an identity no account has -> 5030 USER_UNKNOWN."""
    a = await gy.call(gy.ccr("gw;nouser", 1, 0, "19999999999999", [mscc(10, rsu())]))
    assert a.result_code == 5030


async def test_update_before_initial_5002(gy: GyClient) -> None:
    """standards §2.9: CCR-U before CCR-I -> 5002."""
    a = await gy.call(gy.ccr("gw;never-started", 2, 1, None, [mscc(10, rsu())]))
    assert a.result_code == 5002 and a.cc_request_number == 1


async def test_abandoned_session_then_update_5002(
    gy: GyClient, charging: ChargingService, new_account: NewAccount
) -> None:
    """standards §2.6: Tcc expired (session abandoned by supervision) -> a later CCR-U gets 5002."""
    acct = await new_account()
    s = "gw;abandoned;" + str(next(_ids))
    await gy.call(gy.ccr(s, 1, 0, acct.identity.value, [mscc(10, rsu())]))
    await charging.abandon(acct.account_id, s, TerminationCause.ABANDONED, force=True)
    a = await gy.call(gy.ccr(s, 2, 1, None, [mscc(10, rsu(), [usu(cc_total_octets=10)])]))
    assert a.result_code == 5002


async def test_unknown_rating_group_5031_others_granted(
    gy: GyClient, new_account: NewAccount
) -> None:
    """standards §2.9: an unknown RG gets 5031 in its MSCC (Failed-AVP names it); others are granted."""
    acct = await new_account()
    a = await gy.call(
        gy.ccr(
            "gw;rg;" + str(next(_ids)),
            1,
            0,
            acct.identity.value,
            [mscc(12345, rsu()), mscc(10, rsu())],
        )
    )
    codes = {m.rating_group: m.result_code for m in a.multiple_services_credit_control}
    assert a.result_code == 2001 and codes == {12345: 5031, 10: 2001}
    assert failed_codes(a.raw) == [MSCC, 432]


async def test_framing_error_5015_then_close(gy: GyClient) -> None:
    """standards §1.8: length not a multiple of 4 -> 5015, then the TCP connection is closed."""
    gy.write(w.message(272, app=4, length=22, hbh=0x99, e2e=0x99) + b"\0\0")
    await asyncio.wait_for(gy.closed.wait(), 5)
    assert [result_of(m) for m in gy.unsolicited] == [5015]


async def test_oversized_message_5015_then_close(
    start_server: StartServer, new_client: NewClient
) -> None:
    """standards §1.8: a length above our maximum -> 5015 and close, without buffering it."""
    server = await start_server(limits={"max_message_size": 4096})
    c = await new_client(server)
    c.write(w.message(272, app=4, length=1 << 20, hbh=0x42, e2e=0x42))
    await asyncio.wait_for(c.closed.wait(), 5)
    assert [result_of(m) for m in c.unsolicited] == [5015]


async def test_too_busy_3004_past_in_flight_cap(
    start_server: StartServer, new_client: NewClient, new_account: NewAccount
) -> None:
    """Overload: past the per-peer in-flight cap the answer is 3004 (E bit), not a queue."""
    server = await start_server(limits={"max_in_flight": 1})
    c = await new_client(server)
    acct = await new_account()
    first, second = (
        w.ccr(sub(acct.identity.value), session=f"gw;busy;{i}", hbh=0x500 + i, e2e=0x500 + i)
        for i in range(2)
    )
    loop = asyncio.get_running_loop()
    futs = {h: loop.create_future() for h in (0x500, 0x501)}
    c._waiting.update(futs)
    c.write(first + second)  # one read: the first is still in flight when the second arrives
    a1, a2 = await asyncio.wait_for(asyncio.gather(futs[0x500], futs[0x501]), 5)
    assert result_of(a1) == 2001
    assert result_of(a2) == 3004 and plain(a2).header.is_error


@pytest.mark.parametrize("per_process", [False, True])
async def test_too_busy_3004_past_in_flight_octets(
    start_server: StartServer, new_client: NewClient, new_account: NewAccount, per_process: bool
) -> None:
    """Past the in-flight octets of a connection (or, the second request on
    another connection, of the process) the answer is 3004; the request already taken is
    served, and the octets come back when it is answered."""
    acct = await new_account()
    first, second = (
        w.ccr(sub(acct.identity.value), session=f"gw;octets;{i}", hbh=0x600 + i, e2e=0x600 + i)
        for i in range(2)
    )
    room = len(first) + 64  # one request fits, two do not
    limits = {"max_message_size": room, "max_in_flight_bytes": room}
    if per_process:  # each connection has room for one; the process too, for one only
        limits["max_in_flight_bytes_total"] = room
    server = await start_server(limits=limits)
    a = await new_client(server)
    b = await new_client(server, origin_host="gw2.test.example") if per_process else a
    loop = asyncio.get_running_loop()
    futs = {h: loop.create_future() for h in (0x600, 0x601)}
    a._waiting[0x600], b._waiting[0x601] = futs[0x600], futs[0x601]
    a.write(first)
    b.write(second)  # arrives while the first still holds its octets
    a1, a2 = await asyncio.wait_for(asyncio.gather(futs[0x600], futs[0x601]), 5)
    assert result_of(a1) == 2001
    assert result_of(a2) == 3004 and plain(a2).header.is_error
    again = await b.send_raw(w.ccr(sub(acct.identity.value), session="gw;octets;2", **ids()))
    assert result_of(again) == 2001


async def test_storage_unavailable_answers_configured_code(
    start_server: StartServer, new_client: NewClient, charging: ChargingService
) -> None:
    """Redis unreachable -> the configured code (default 3004); the connection stays up."""
    dead = Redis.from_url("redis://127.0.0.1:1", socket_connect_timeout=0.5)
    broken = ChargingService(dead, charging.policies, charging.partitions)
    for code in (3004, 5012):
        server = await start_server(broken, storage_failure_result_code=code)
        c = await new_client(server)
        a = await c.send_raw(w.ccr(sub("123"), **ids()))
        assert result_of(a) == code
        assert plain(a).header.is_error is (code == 3004)
        assert (await c.dwr()).result_code == 2001
    await dead.aclose()


async def test_unknown_hop_by_hop_answer_is_discarded(gy: GyClient) -> None:
    """standards §1.2: an answer with an unknown Hop-by-Hop id is dropped silently; nothing answers it."""
    gy.write(
        w.message(258, w.utf8(263, "x"), w.u32(268, 2001), app=4, flags=0x40, hbh=0xDEAD, e2e=1)
    )
    assert (await gy.dwr()).result_code == 2001
    assert gy.unsolicited == []


async def test_partial_header_then_eof_keeps_server_up(gy: GyClient, new_client: NewClient) -> None:
    """standards §1.8: fewer than 20 header octets then EOF: dropped; the server stays up."""
    c = await new_client(cer=False)
    c.write(w.dwr()[:10])
    await c.close()
    assert (await gy.dwr()).result_code == 2001


async def test_core_crash_answers_5012_and_the_request_knows_its_peer(
    start_server: StartServer, new_client: NewClient, charging: ChargingService
) -> None:
    """An unexpected error in the core: 5012 (UNABLE_TO_COMPLY) with the E bit clear, the
    connection stays up, and the request ran with its peer bound for every log event."""
    seen: list[object] = []

    class Crashing(ChargingService):
        async def initiate(self, *args: object, **kwargs: object) -> Any:
            seen.append(structlog.contextvars.get_contextvars().get("peer"))
            raise RuntimeError("core bug")

    crashing = Crashing(charging.redis, charging.policies, charging.partitions)
    server = await start_server(crashing)
    c = await new_client(server)
    for _ in range(2):  # the second on the same connection: same peer, still answered
        a = await c.send_raw(w.ccr(sub("123"), **ids()))
        assert result_of(a) == 5012
        assert not plain(a).header.is_error
    assert seen == [ORIGIN_HOST, ORIGIN_HOST]
    assert structlog.contextvars.get_contextvars().get("peer") is None  # not leaked here
    assert (await c.dwr()).result_code == 2001
