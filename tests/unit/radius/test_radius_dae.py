"""Disconnect/CoA messages and the checks on their answers (standards §3.2, §3.5)."""

from __future__ import annotations

import hashlib

from pyrad import packet as rp

from protocols.radius import attributes as at
from protocols.radius import sessions as ss
from protocols.radius.accounting import session_ref
from protocols.radius.accounting_record import parse_wire
from protocols.radius.codec import PortKind, decode_request
from protocols.radius.dae import (
    DaeKind,
    DaeStatus,
    encode_request,
    identification,
    retransmit_delays,
    verify_reply,
)
from protocols.radius.dictionary import load_dictionary
from protocols.radius.settings import ClientConfig
from tests.unit.radius.radius_wire import SECRET as RADIUS_SECRET
from tests.unit.radius.radius_wire import acct_request, attributes_of

SECRET = b"dae-secret"


def _request(kind: DaeKind = DaeKind.DISCONNECT) -> bytes:
    attrs = identification(
        {
            ss.A_USER_NAME: "alice",
            ss.A_ACCT_SESSION_ID: "s1",
            ss.A_FRAMED_IP: "10.0.0.5",
            ss.A_NAS_IP: "127.0.0.1",
            ss.A_SOURCE: "127.0.0.1",
        }
    )
    return encode_request(kind, 42, SECRET, attrs, 1_700_000_000)


def _answer(raw: bytes, code: int, secret: bytes = SECRET, cause: int | None = None) -> bytes:
    req = rp.CoAPacket(packet=raw, secret=secret, dict=load_dictionary())
    rep = req.CreateReply()
    rep.code = code
    if cause is not None:
        rep.AddAttribute("Error-Cause", cause)
    return bytes(rep.ReplyPacket())


def test_request_authenticator_like_accounting_and_identifies_the_session() -> None:
    """standards §3.2/§3.5: MD5 over zeroed authenticator; session identification attributes."""
    raw = _request()
    assert raw[0] == 40
    assert raw[1] == 42
    assert raw[4:20] == hashlib.md5(raw[:4] + bytes(16) + raw[20:] + SECRET).digest()
    pkt = rp.CoAPacket(packet=raw, secret=SECRET, dict=load_dictionary())
    assert pkt.verify_message_authenticator()
    assert pkt["User-Name"] == ["alice"]
    assert pkt["Acct-Session-Id"] == ["s1"]
    assert pkt["Framed-IP-Address"] == ["10.0.0.5"]
    assert pkt["NAS-IP-Address"] == ["127.0.0.1"]
    assert pkt["Event-Timestamp"] == [1_700_000_000]  # replay protection (RFC 5176 §3.1)


def test_ack_nak_and_error_cause_are_read_after_verification() -> None:
    raw = _request()
    assert verify_reply(DaeKind.DISCONNECT, raw, _answer(raw, 41), SECRET).status is DaeStatus.ACK
    nak = verify_reply(DaeKind.DISCONNECT, raw, _answer(raw, 42, cause=503), SECRET)
    assert nak.status is DaeStatus.NAK
    assert nak.error_cause == 503


def test_forged_or_mismatched_answers_are_ignored() -> None:
    """standards §3.5: verify the ACK/NAK before acting on it."""
    raw = _request()
    assert verify_reply(DaeKind.DISCONNECT, raw, _answer(raw, 41, b"wrong"), SECRET) is None
    assert verify_reply(DaeKind.DISCONNECT, raw, _answer(raw, 44), SECRET) is None  # CoA-ACK
    other = bytearray(_answer(raw, 41))
    other[1] ^= 1
    assert verify_reply(DaeKind.DISCONNECT, raw, bytes(other), SECRET) is None
    assert verify_reply(DaeKind.DISCONNECT, raw, b"\x29\x2a", SECRET) is None


def test_coa_answers() -> None:
    raw = _request(DaeKind.COA)
    assert raw[0] == 43
    assert verify_reply(DaeKind.COA, raw, _answer(raw, 44), SECRET).status is DaeStatus.ACK
    assert verify_reply(DaeKind.COA, raw, _answer(raw, 45), SECRET).status is DaeStatus.NAK


def test_backoff_doubles_and_caps() -> None:
    assert retransmit_delays(1, 5, 4) == [1, 2, 4, 5, 5]
    assert retransmit_delays(2, 16, 0) == [2]


def test_text_attributes_are_echoed_as_the_octets_received() -> None:
    """RFC 5176 §3: a Calling-Station-Id and User-Name that are not UTF-8 (100 octets each)
    go back in the Disconnect-Request octet for octet, from the record to the wire."""
    calling, user = bytes(range(0x80, 0xE4)), b"\xffuser\\x41"
    raw = acct_request({"Calling-Station-Id": calling, "User-Name": user})
    req = decode_request(raw, PortKind.ACCT, RADIUS_SECRET, False)
    rec = parse_wire(req.raw, req.first)
    assert rec.binary == ((at.USER_NAME, user), (at.CALLING_STATION_ID, calling))
    client = ClientConfig.model_validate({"name": "nas", "address": "127.0.0.1", "secret": "x"})
    nas = ss.nas_key(rec.nas_ip, rec.nas_identifier, "127.0.0.1")
    attrs = dict(session_ref(rec, client.name, "127.0.0.1", nas, None).attributes)
    wire = dict(
        attributes_of(encode_request(DaeKind.DISCONNECT, 1, SECRET, identification(attrs), 0))
    )
    assert (wire[31], wire[1], wire[44]) == (calling, user, b"sess-1")


def test_utf8_text_needs_no_octets_copy() -> None:
    """The common case keeps one text value per attribute (nothing extra per request)."""
    raw = acct_request({"Calling-Station-Id": "00-11-22-33-44-55", "User-Name": "CORP\\alice"})
    req = decode_request(raw, PortKind.ACCT, RADIUS_SECRET, False)
    rec = parse_wire(req.raw, req.first)
    assert rec.binary == ()
    wire = dict(
        attributes_of(
            encode_request(
                DaeKind.DISCONNECT,
                1,
                SECRET,
                identification(
                    {
                        ss.A_USER_NAME: rec.user_name or "",
                        ss.A_CALLING_STATION_ID: rec.calling_station_id or "",
                    }
                ),
                0,
            )
        )
    )
    assert (wire[1], wire[31]) == (b"CORP\\alice", b"00-11-22-33-44-55")
