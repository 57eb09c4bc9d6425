"""Guarded decode and answer encoding (standards §3.1, §3.2, §3.7)."""

from __future__ import annotations

import hashlib

import pytest
from pyrad import packet as rp

from protocols.radius.accounting_record import parse_accounting
from protocols.radius.codec import (
    ACCESS_ACCEPT,
    ACCESS_REJECT,
    ACCOUNTING_RESPONSE,
    PortKind,
    decode_request,
    encode_reply,
)
from protocols.radius.dictionary import load_dictionary
from protocols.radius.drops import DropReason, RadiusDrop
from tests.unit.radius.radius_wire import (
    SECRET,
    access_packet,
    acct_packet,
    acct_request,
    attributes_of,
    with_length,
)


def drop_reason(data: bytes, port: PortKind = PortKind.ACCT, **kw: bool) -> DropReason:
    with pytest.raises(RadiusDrop) as info:
        decode_request(data, port, SECRET, **kw)
    return info.value.reason


def test_accounting_request_decodes_and_response_authenticator_verifies() -> None:
    """standards §3.2: Response Authenticator = MD5(Code+ID+Length+ReqAuth+attrs+secret)."""
    pkt = acct_packet()
    raw = bytes(pkt.RequestPacket())
    req = decode_request(raw, PortKind.ACCT, SECRET)
    assert (req.code, req.identifier) == (4, 1)
    out = encode_reply(req, ACCOUNTING_RESPONSE)
    want = hashlib.md5(out[:4] + raw[4:20] + out[20:] + SECRET).digest()
    assert out[4:20] == want
    assert pkt.VerifyReply(rp.Packet(packet=out, dict=load_dictionary()), out)


def test_octets_after_length_are_ignored() -> None:
    """standards §3.1: octets past Length are padding."""
    raw = acct_request()
    req = decode_request(raw + b"\x00garbage", PortKind.ACCT, SECRET)
    assert req.raw == raw


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", DropReason.TOO_SHORT),
        (b"\x04\x01\x00\x14" + bytes(15), DropReason.TOO_SHORT),
        (with_length(acct_request(), 19), DropReason.BAD_LENGTH),
        (with_length(acct_request(), 4097), DropReason.BAD_LENGTH),
        (with_length(acct_request(), 200), DropReason.TRUNCATED),
    ],
    ids=["empty", "19-octets", "length-19", "length-4097", "length-beyond-datagram"],
)
def test_bad_frames_are_dropped(data: bytes, reason: DropReason) -> None:
    """standards §3.7: fewer than 20 octets, Length outside 20..4096 or past the datagram."""
    assert drop_reason(data) is reason


def _resign(raw: bytes) -> bytes:
    auth = hashlib.md5(raw[:4] + bytes(16) + raw[20:] + SECRET).digest()
    return raw[:4] + auth + raw[20:]


def test_attribute_with_length_below_two_is_dropped() -> None:
    """standards §3.7: attribute length < 2."""
    raw = acct_request()
    bad = with_length(raw + b"\x01\x01", len(raw) + 2)
    assert drop_reason(_resign(bad)) is DropReason.BAD_ATTRIBUTE


def test_attribute_running_past_the_end_is_dropped() -> None:
    """standards §3.7: attribute running past the end of the packet."""
    raw = acct_request()
    bad = with_length(raw + b"\x01\x09abc", len(raw) + 5)
    assert drop_reason(_resign(bad)) is DropReason.BAD_ATTRIBUTE


@pytest.mark.parametrize(
    ("raw", "port"),
    [
        (acct_request(), PortKind.AUTH),
        (bytes(access_packet().RequestPacket()), PortKind.ACCT),
        (b"\x2b" + acct_request()[1:], PortKind.ACCT),  # CoA-Request to the server
        (b"\x05" + acct_request()[1:], PortKind.ACCT),  # an answer sent to us
    ],
    ids=["acct-on-auth", "access-on-acct", "coa-request", "accounting-response"],
)
def test_wrong_code_for_port_is_dropped(raw: bytes, port: PortKind) -> None:
    """standards §3.7: wrong Code for this port."""
    assert drop_reason(raw, port) is DropReason.WRONG_CODE


def test_wrong_secret_is_dropped() -> None:
    """standards §3.2: Accounting-Request Authenticator mismatch -> no reply."""
    assert drop_reason(acct_request(secret=b"wrong")) is DropReason.BAD_AUTHENTICATOR


def test_accounting_with_valid_message_authenticator_is_accepted() -> None:
    """standards §3.2: Message-Authenticator on Accounting-Request uses a zeroed authenticator."""
    req = decode_request(acct_request(message_authenticator=True), PortKind.ACCT, SECRET)
    assert req.has_message_authenticator


def test_access_request_with_bad_message_authenticator_is_dropped() -> None:
    """standards §3.2: Message-Authenticator present but wrong -> drop."""
    raw = bytes(access_packet(secret=b"other").RequestPacket())
    assert drop_reason(raw, PortKind.AUTH) is DropReason.BAD_MESSAGE_AUTHENTICATOR


def test_required_message_authenticator_missing_is_dropped() -> None:
    """standards §3.2 BlastRADIUS: require_message_authenticator per client."""
    raw = bytes(access_packet(message_authenticator=False).RequestPacket())
    decode_request(raw, PortKind.AUTH, SECRET)  # accepted when not required
    reason = drop_reason(raw, PortKind.AUTH, require_message_authenticator=True)
    assert reason is DropReason.MISSING_MESSAGE_AUTHENTICATOR


def test_proxy_state_without_message_authenticator_is_dropped() -> None:
    """standards §3.2 BlastRADIUS: limit_proxy_state."""
    pkt = access_packet({"Proxy-State": b"px"}, message_authenticator=False)
    assert drop_reason(bytes(pkt.RequestPacket()), PortKind.AUTH) is (
        DropReason.PROXY_STATE_WITHOUT_MA
    )


@pytest.mark.parametrize("code", [ACCESS_ACCEPT, ACCESS_REJECT])
def test_access_answers_carry_message_authenticator_first(code: int) -> None:
    """standards §3.2 BlastRADIUS: Message-Authenticator first in Accept/Reject."""
    pkt = access_packet({"Proxy-State": b"px1"})
    req = decode_request(bytes(pkt.RequestPacket()), PortKind.AUTH, SECRET)
    out = encode_reply(req, code, [("Session-Timeout", 60), ("Reply-Message", "hi")])
    attrs = attributes_of(out)
    assert attrs[0][0] == 80
    assert (33, b"px1") in attrs  # Proxy-State copied (RFC 2865 §5.33)
    assert pkt.VerifyReply(pkt.CreateReply(packet=out), out, enforce_ma=True)


def test_status_server_needs_message_authenticator_and_is_answered_signed() -> None:
    """RFC 5997 §3: Status-Server must carry Message-Authenticator; the answer is signed."""
    unsigned = rp.AcctPacket(code=rp.StatusServer, id=9, secret=SECRET, dict=load_dictionary())
    unsigned.message_authenticator = False
    raw = bytes(unsigned.RequestPacket())
    assert drop_reason(raw) is DropReason.MISSING_MESSAGE_AUTHENTICATOR
    signed = rp.AcctPacket(code=rp.StatusServer, id=9, secret=SECRET, dict=load_dictionary())
    req = decode_request(bytes(signed.RequestPacket()), PortKind.ACCT, SECRET)
    out = encode_reply(req, ACCOUNTING_RESPONSE)
    assert attributes_of(out)[0][0] == 80
    assert signed.VerifyReply(signed.CreateReply(packet=out), out)


@pytest.mark.parametrize(
    ("attrs", "reason"),
    [
        ({"Acct-Status-Type": None}, DropReason.MISSING_STATUS_TYPE),
        ({"Acct-Session-Id": None}, DropReason.MISSING_SESSION_ID),
    ],
)
def test_accounting_without_status_or_session_id_is_dropped(
    attrs: dict[str, None], reason: DropReason
) -> None:
    """standards §3.7: Accounting-Request without Acct-Status-Type or Acct-Session-Id."""
    req = decode_request(acct_request(attrs), PortKind.ACCT, SECRET)
    with pytest.raises(RadiusDrop) as info:
        parse_accounting(req.packet)
    assert info.value.reason is reason


def test_malformed_integer_value_is_dropped() -> None:
    """A 3-octet Acct-Status-Type cannot be read: drop, never guess."""
    pkt = acct_packet({"Acct-Status-Type": None})
    pkt[40] = [b"\x00\x00\x01"]
    req = decode_request(bytes(pkt.RequestPacket()), PortKind.ACCT, SECRET)
    with pytest.raises(RadiusDrop) as info:
        parse_accounting(req.packet)
    assert info.value.reason is DropReason.BAD_ATTRIBUTE_VALUE


def test_accounting_record_fields_and_gigawords() -> None:
    """standards §3.3: Gigawords combine with octets; Acct-Delay-Time moves the event back."""
    raw = acct_request(
        {
            "Acct-Status-Type": "Interim-Update",
            "Acct-Input-Octets": 5,
            "Acct-Input-Gigawords": 2,
            "Acct-Output-Octets": 7,
            "Acct-Session-Time": 61,
            "Acct-Delay-Time": 10,
            "Framed-IP-Address": "10.0.0.9",
            "Calling-Station-Id": "00-11",
        }
    )
    rec = parse_accounting(decode_request(raw, PortKind.ACCT, SECRET).packet)
    assert rec.status == 3
    assert rec.session_id == "sess-1"
    assert rec.counters.input_octets == 2 * 2**32 + 5
    assert rec.counters.total_octets == 2 * 2**32 + 12
    assert rec.counters.seconds == 61
    assert (rec.framed_ip, rec.calling_station_id, rec.nas_ip) == ("10.0.0.9", "00-11", "127.0.0.1")
    assert rec.event_time(1000) == 990


def test_event_timestamp_wins_over_delay_unless_in_the_future() -> None:
    """RFC 2869 §5.3: Event-Timestamp is the event time; a far-future one is ignored."""
    raw = acct_request({"Event-Timestamp": 900, "Acct-Delay-Time": 10})
    rec = parse_accounting(decode_request(raw, PortKind.ACCT, SECRET).packet)
    assert rec.event_time(1000) == 900
    raw = acct_request({"Event-Timestamp": 5000, "Acct-Delay-Time": 10})
    rec = parse_accounting(decode_request(raw, PortKind.ACCT, SECRET).packet)
    assert rec.event_time(1000) == 990
