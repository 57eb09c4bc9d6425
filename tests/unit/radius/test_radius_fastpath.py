"""Property: the accounting fast path reads and answers exactly as pyrad does.

pyrad is the reference: on random well-framed Accounting-Requests (typed and
mistyped values, repeats, Class, Proxy-State, vendor attributes, unknown types)
``parse_wire`` gives the same record or the same drop as ``parse_accounting``
over pyrad's packet, and the Accounting-Response built without pyrad has the
same octets as pyrad's (standards §3.1, §3.2 Response Authenticator, §3.3, §3.7).
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Callable
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from pyrad import packet as rp

from protocols.radius import attributes as at
from protocols.radius.accounting_record import parse_accounting, parse_wire
from protocols.radius.codec import (
    ACCOUNTING_RESPONSE,
    PortKind,
    decode_request,
    encode_accounting_response,
    encode_reply,
    encode_reply_pyrad,
    walk_attributes,
)
from protocols.radius.dictionary import load_dictionary
from protocols.radius.drops import DropReason, RadiusDrop
from tests.unit.radius.radius_wire import SECRET, acct_packet

PROPERTY = settings(max_examples=600, deadline=None)

u32 = st.integers(0, 2**32 - 1).map(lambda v: v.to_bytes(4, "big"))
junk = st.binary(max_size=24)


def _sized(size: int, good: st.SearchStrategy[bytes]) -> st.SearchStrategy[bytes]:
    """Mostly well-formed values of ``size`` octets, sometimes the wrong size."""
    wrong = st.binary(max_size=size + 3).filter(lambda v: len(v) != size)
    return st.one_of(good, good, good, wrong)


INTEGER = _sized(4, u32)
TEXT = st.one_of(st.text(max_size=20).map(str.encode), junk)
IPV4 = _sized(4, st.binary(min_size=4, max_size=4))
IPV6 = _sized(16, st.binary(min_size=16, max_size=16))
CLASS = st.one_of(
    st.sampled_from([b"ocs:radius:192.0.2.1:s1", b"ocs:radius:bng:x", b"ocs:\xff\xfe"]), junk
)
VSA = st.one_of(
    st.tuples(st.sampled_from([14988, 14559, 14122, 9]), st.integers(1, 30), junk).map(
        lambda v: struct.pack("!LBB", v[0], v[1], len(v[2]) + 2) + v[2]
    ),
    junk,
)
_BY_TYPE: dict[int, st.SearchStrategy[bytes]] = {
    **dict.fromkeys(
        (
            at.ACCT_STATUS_TYPE,
            at.ACCT_DELAY_TIME,
            at.ACCT_INPUT_OCTETS,
            at.ACCT_OUTPUT_OCTETS,
            at.ACCT_SESSION_TIME,
            at.ACCT_TERMINATE_CAUSE,
            at.ACCT_INPUT_GIGAWORDS,
            at.ACCT_OUTPUT_GIGAWORDS,
            at.EVENT_TIMESTAMP,
        ),
        INTEGER,
    ),
    **dict.fromkeys(
        (
            at.USER_NAME,
            at.CALLED_STATION_ID,
            at.CALLING_STATION_ID,
            at.NAS_IDENTIFIER,
            at.ACCT_SESSION_ID,
            at.ACCT_MULTI_SESSION_ID,
        ),
        TEXT,
    ),
    at.NAS_IP_ADDRESS: IPV4,
    at.FRAMED_IP_ADDRESS: IPV4,
    at.NAS_IPV6_ADDRESS: IPV6,
    at.CLASS: CLASS,
    33: junk,  # Proxy-State
    26: VSA,
}
typed = st.sampled_from(sorted(_BY_TYPE)).flatmap(lambda t: st.tuples(st.just(t), _BY_TYPE[t]))
other = st.tuples(st.integers(1, 255).filter(lambda t: t not in _BY_TYPE and t != 80), junk)
attribute_lists = st.lists(st.one_of(typed, typed, other), max_size=30)


@st.composite
def accounting_requests(draw: st.DrawFn) -> bytes:
    """A well-framed, correctly signed Accounting-Request, most with status and session id."""
    attrs = draw(attribute_lists)
    if draw(st.integers(0, 9)):
        attrs.insert(draw(st.integers(0, len(attrs))), (at.ACCT_STATUS_TYPE, draw(u32)))
    if draw(st.integers(0, 9)):
        attrs.insert(draw(st.integers(0, len(attrs))), (at.ACCT_SESSION_ID, b"s-1"))
    body = b"".join(struct.pack("!BB", t, len(v) + 2) + v for t, v in attrs)
    header = struct.pack("!BBH", 4, draw(st.integers(0, 255)), 20 + len(body))
    return header + hashlib.md5(header + bytes(16) + body + SECRET).digest() + body


def _outcome(fn: Callable[[], Any]) -> Any:
    try:
        return fn()
    except RadiusDrop as drop:
        return (drop.reason, drop.detail)


@PROPERTY
@given(raw=accounting_requests())
def test_wire_record_equals_the_pyrad_record(raw: bytes) -> None:
    """Same AcctRecord, or the same drop reason and detail, as parse_accounting over pyrad."""
    pkt = rp.AcctPacket(packet=raw, secret=SECRET, dict=load_dictionary())
    found = walk_attributes(raw)
    assert _outcome(lambda: parse_wire(raw, found)) == _outcome(lambda: parse_accounting(pkt))


@PROPERTY
@given(raw=accounting_requests())
def test_fast_decode_and_response_equal_pyrad(raw: bytes) -> None:
    """decode_request's fast path: same record via .packet, Accounting-Response byte-equal."""
    req = decode_request(raw, PortKind.ACCT, SECRET)
    assert req.packet.raw_packet == raw  # the pyrad view, decoded on demand, is the same packet
    reference = encode_reply_pyrad(req, ACCOUNTING_RESPONSE)
    assert encode_accounting_response(req) == reference
    assert encode_reply(req, ACCOUNTING_RESPONSE) == reference
    wire = _outcome(lambda: parse_wire(req.raw, req.first))
    assert wire == _outcome(lambda: parse_accounting(req.packet))


def test_response_copies_every_proxy_state_in_order() -> None:
    """Proxy-States come back unmodified and in order (RFC 2865 §5.33), as pyrad does."""
    pkt = acct_packet({"Acct-Status-Type": "Interim-Update"})
    pkt.AddAttribute("Proxy-State", b"first")
    pkt.AddAttribute("Proxy-State", b"second")
    req = decode_request(bytes(pkt.RequestPacket()), PortKind.ACCT, SECRET)
    out = encode_reply(req, ACCOUNTING_RESPONSE)
    assert out == encode_reply_pyrad(req, ACCOUNTING_RESPONSE)
    assert out[20:] == b"\x21\x07first\x21\x08second"
    assert pkt.VerifyReply(rp.AcctPacket(packet=out, secret=SECRET, dict=load_dictionary()), out)


def test_accounting_with_message_authenticator_still_equals_pyrad() -> None:
    """Off the fast path (Message-Authenticator, checked by pyrad) the answer is the same."""
    pkt = acct_packet({"Acct-Status-Type": "Stop", "Class": b"c1"}, message_authenticator=True)
    req = decode_request(bytes(pkt.RequestPacket()), PortKind.ACCT, SECRET)
    assert req.has_message_authenticator
    assert encode_reply(req, ACCOUNTING_RESPONSE) == encode_reply_pyrad(req, ACCOUNTING_RESPONSE)
    assert parse_wire(req.raw, req.first) == parse_accounting(req.packet)


def _walk_one_by_one(raw: bytes) -> dict[int, int]:
    """The plain walk (each attribute checked in turn, RFC 2865 §5): walk_attributes' reference."""
    first: dict[int, int] = {}
    pos, end = 20, len(raw)
    while pos < end:
        if end - pos < 2:
            raise RadiusDrop(DropReason.BAD_ATTRIBUTE, f"attribute header cut at {pos}")
        atype, alen = raw[pos], raw[pos + 1]
        if alen < 2 or pos + alen > end:
            raise RadiusDrop(DropReason.BAD_ATTRIBUTE, f"type {atype} length {alen} at {pos}")
        if atype == 80 and alen != 18:
            raise RadiusDrop(DropReason.BAD_ATTRIBUTE, f"Message-Authenticator length {alen}")
        first.setdefault(atype, pos)
        pos += alen
    return first


@settings(max_examples=2000, deadline=None)
@given(
    chunks=st.lists(
        st.tuples(
            st.one_of(st.sampled_from([80, 80, 1, 26, 33]), st.integers(0, 255)),
            st.integers(0, 30),
            st.sampled_from([0, 0, 0, 0, -1, 1, -5]),  # value octets present minus declared
        ),
        max_size=12,
    ),
    tail=st.binary(max_size=2),
)
def test_walk_drops_exactly_as_the_plain_walk(
    chunks: list[tuple[int, int, int]], tail: bytes
) -> None:
    """Same offsets, or the same drop reason and detail, on attribute lists with random
    (also short, zero and overlong) lengths and cut headers (standards §3.1, §3.7)."""
    body = b"".join(bytes([t, n]) + bytes(max(n - 2 + d, 0)) for t, n, d in chunks) + tail
    raw = bytes(20) + body
    assert _outcome(lambda: walk_attributes(raw)) == _outcome(lambda: _walk_one_by_one(raw))
