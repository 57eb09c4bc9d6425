"""Guarded RADIUS decoding and answer encoding over pyrad (RFC 2865 §3, RFC 2866 §3).

Sans-IO. :func:`decode_request` is the one place a datagram becomes a
request: it checks the frame (Length 20..4096, octets past Length ignored, a
short datagram discarded), walks the attributes (length >= 2, none past the
end), checks the code for the port, then authenticates: the Accounting-Request
Request Authenticator (MD5 over the packet with a zeroed authenticator plus the
secret), the Message-Authenticator (HMAC-MD5, RFC 2869 §5.14) when present or
required by the client (BlastRADIUS, CVE-2024-3596, standards §3.2), and
Proxy-State without Message-Authenticator (``limit_proxy_state``). Every
failure is a :class:`~protocols.radius.drops.RadiusDrop`; nothing else escapes.

:func:`encode_reply` builds the answer with pyrad: Response Authenticator =
MD5(Code+ID+Length+Request Authenticator+attributes+secret), Proxy-State copied
in order, and Message-Authenticator as the first attribute of every
Access-Accept/Reject/Challenge and of answers to Status-Server (RFC 5997).

Fast path: pyrad costs tens of µs per packet, so an
Accounting-Request without Message-Authenticator is not handed to pyrad at
all: the attribute walk above is all the decoding it needs (the record is read
from it by :func:`protocols.radius.accounting_record.parse_wire`), and its
Accounting-Response, which has no attribute but the Proxy-States, is built here
(:func:`encode_accounting_response`). ``RadiusRequest.packet`` still gives the
pyrad view on demand, and everything else (Access-Request, Status-Server, any
request with Message-Authenticator, every answer with attributes) goes through
pyrad as before. pyrad is the reference: tests/unit/radius/test_radius_fastpath.py
proves on random packets that both give the same record and the same octets.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import struct
from collections.abc import Container, Sequence
from typing import Any

from pyrad import packet as rp

from protocols.radius.dictionary import load_dictionary
from protocols.radius.drops import DropReason, RadiusDrop

HEADER_LEN = 20
MIN_LENGTH = 20
MAX_LENGTH = 4096  # RFC 2865 §3
ATTR_MESSAGE_AUTHENTICATOR = 80
ATTR_PROXY_STATE = 33

# Codes (RFC 2865 §4, RFC 2866 §4, RFC 5176 §2, RFC 5997).
ACCESS_REQUEST = rp.AccessRequest
ACCESS_ACCEPT = rp.AccessAccept
ACCESS_REJECT = rp.AccessReject
ACCOUNTING_REQUEST = rp.AccountingRequest
ACCOUNTING_RESPONSE = rp.AccountingResponse
ACCESS_CHALLENGE = rp.AccessChallenge
STATUS_SERVER = rp.StatusServer
DISCONNECT_REQUEST = rp.DisconnectRequest
DISCONNECT_ACK = rp.DisconnectACK
DISCONNECT_NAK = rp.DisconnectNAK
COA_REQUEST = rp.CoARequest
COA_ACK = rp.CoAACK
COA_NAK = rp.CoANAK

_RESPONSE_HEADER = struct.Struct("!BBH")

# Decoding failures pyrad (or struct/ipaddress under it) may raise on hostile input.
_DECODE_ERRORS = (rp.PacketError, ValueError, struct.error, KeyError, IndexError, TypeError)


class PortKind(enum.Enum):
    """Which listener received the datagram; each serves its own codes."""

    AUTH = "auth"  # 1812: Access-Request, Status-Server
    ACCT = "acct"  # 1813: Accounting-Request, Status-Server


ALLOWED_CODES: dict[PortKind, frozenset[int]] = {
    PortKind.AUTH: frozenset({ACCESS_REQUEST, STATUS_SERVER}),
    PortKind.ACCT: frozenset({ACCOUNTING_REQUEST, STATUS_SERVER}),
}


class RadiusRequest:
    """A checked, authenticated request. ``raw`` is the packet up to Length;
    ``first`` maps each attribute type in it to the offset of its first instance
    (:func:`walk_attributes`; :func:`instances` finds the others)."""

    __slots__ = (
        "_packet",
        "authenticator",
        "code",
        "first",
        "has_message_authenticator",
        "identifier",
        "raw",
        "secret",
    )

    def __init__(
        self,
        raw: bytes,
        first: dict[int, int],
        has_message_authenticator: bool,
        secret: bytes,
        packet: rp.Packet | None = None,
    ) -> None:
        self.code = raw[0]
        self.identifier = raw[1]
        self.authenticator = raw[4:20]
        self.raw = raw
        self.first = first
        self.has_message_authenticator = has_message_authenticator
        self.secret = secret
        self._packet = packet

    @property
    def packet(self) -> rp.Packet:
        """The pyrad view of the request, decoded on first use (RadiusDrop if it cannot be)."""
        if self._packet is None:
            self._packet = _make_packet(self.code, self.raw, self.secret)
        return self._packet


def check_frame(data: bytes) -> bytes:
    """Return the packet cut at its Length field, or raise RadiusDrop (§3.1, §3.7)."""
    if len(data) < HEADER_LEN:
        raise RadiusDrop(DropReason.TOO_SHORT, f"{len(data)} octets")
    (length,) = struct.unpack_from("!H", data, 2)
    if length < MIN_LENGTH or length > MAX_LENGTH:
        raise RadiusDrop(DropReason.BAD_LENGTH, f"Length {length}")
    if len(data) < length:
        raise RadiusDrop(DropReason.TRUNCATED, f"Length {length}, received {len(data)}")
    return bytes(data[:length])  # octets past Length are padding (RFC 2865 §3)


def walk_attributes(raw: bytes) -> dict[int, int]:
    """Walk the attributes; return type -> offset of its first instance, or raise RadiusDrop.

    The request path reads first instances only (and rescans for the rare
    repeated ones, :func:`instances`), so this is all of the walk it keeps. Every
    attribute needs length >= 2 and must end by the end of the packet; a
    Message-Authenticator must be 18 octets. Runs per request: the end checks are
    made once after the loop (which stops before a cut header), with the same
    drop, in the same order, as checking each attribute.
    """
    first: dict[int, int] = {}
    remember = first.setdefault
    pos = HEADER_LEN
    end = len(raw)
    last = end - 1
    alen = 0
    while pos < last:
        alen = raw[pos + 1]
        atype = raw[pos]
        if alen < 2:
            raise RadiusDrop(DropReason.BAD_ATTRIBUTE, f"type {atype} length {alen} at {pos}")
        if atype == ATTR_MESSAGE_AUTHENTICATOR and alen != 18 and pos + alen <= end:
            raise RadiusDrop(DropReason.BAD_ATTRIBUTE, f"Message-Authenticator length {alen}")
        remember(atype, pos)
        pos += alen
    if pos == last:
        raise RadiusDrop(DropReason.BAD_ATTRIBUTE, f"attribute header cut at {pos}")
    if pos > end:  # the last attribute walked runs past the end
        start = pos - alen
        raise RadiusDrop(DropReason.BAD_ATTRIBUTE, f"type {raw[start]} length {alen} at {start}")
    return first


def instances(raw: bytes, first: dict[int, int], atype: int) -> list[bytes]:
    """Every attribute of type ``atype`` (whole: type, length, value), in order of arrival.

    ``raw`` must have passed :func:`walk_attributes` (which gave ``first``).
    """
    pos = first.get(atype)
    if pos is None:
        return []
    found = []
    end = len(raw)
    while pos < end:
        alen = raw[pos + 1]
        if raw[pos] == atype:
            found.append(raw[pos : pos + alen])
        pos += alen
    return found


def _expected_acct_authenticator(raw: bytes, secret: bytes) -> bytes:
    return hashlib.md5(raw[:4] + bytes(16) + raw[20:] + secret).digest()  # noqa: S324 (RFC 2866 §3)


def _make_packet(code: int, raw: bytes, secret: bytes) -> rp.Packet:
    cls = rp.AuthPacket if code == ACCESS_REQUEST else rp.AcctPacket
    try:
        return cls(packet=raw, secret=secret, dict=load_dictionary())
    except _DECODE_ERRORS as exc:
        raise RadiusDrop(DropReason.BAD_ATTRIBUTE, f"undecodable: {exc}") from None


def _verify_message_authenticator(pkt: rp.Packet) -> bool:
    try:
        return bool(pkt.verify_message_authenticator())
    except _DECODE_ERRORS:
        return False


def decode_request(
    data: bytes, port: PortKind, secret: bytes, require_message_authenticator: bool = False
) -> RadiusRequest:
    """Check and authenticate one datagram from a known client.

    Raises only :class:`RadiusDrop`; the caller answers nothing on it.
    """
    raw = check_frame(data)
    code = raw[0]
    if code not in ALLOWED_CODES[port]:
        raise RadiusDrop(DropReason.WRONG_CODE, f"code {code} on {port.value} port")
    first = walk_attributes(raw)
    has_ma = ATTR_MESSAGE_AUTHENTICATOR in first
    if code == ACCOUNTING_REQUEST:
        if not hmac.compare_digest(raw[4:20], _expected_acct_authenticator(raw, secret)):
            raise RadiusDrop(DropReason.BAD_AUTHENTICATOR, "Request Authenticator mismatch")
        if not has_ma:  # the fast path: no pyrad (see the module docstring)
            return RadiusRequest(raw, first, False, secret)
    if not has_ma:
        _check_missing_ma(code, first, require_message_authenticator)
    pkt = _make_packet(code, raw, secret)
    if has_ma and not _verify_message_authenticator(pkt):
        raise RadiusDrop(DropReason.BAD_MESSAGE_AUTHENTICATOR, "HMAC-MD5 mismatch")
    return RadiusRequest(raw, first, has_ma, secret, pkt)


def _check_missing_ma(code: int, types: Container[int], required: bool) -> None:
    if code == STATUS_SERVER:  # RFC 5997 §3: MUST carry Message-Authenticator
        raise RadiusDrop(DropReason.MISSING_MESSAGE_AUTHENTICATOR, "Status-Server")
    if code == ACCESS_REQUEST and required:
        raise RadiusDrop(DropReason.MISSING_MESSAGE_AUTHENTICATOR, "required for this client")
    if code == ACCESS_REQUEST and ATTR_PROXY_STATE in types:
        raise RadiusDrop(DropReason.PROXY_STATE_WITHOUT_MA, "Proxy-State, no Message-Authenticator")


def encode_reply(
    request: RadiusRequest, code: int, attributes: Sequence[tuple[str, Any]] = ()
) -> bytes:
    """Encode the answer to ``request`` with ``attributes`` (dictionary names).

    Message-Authenticator goes first in Access-Accept/Reject/Challenge and in
    every answer to Status-Server (BlastRADIUS; RFC 5997 §3).
    """
    if code == ACCOUNTING_RESPONSE and request.code == ACCOUNTING_REQUEST and not attributes:
        return encode_accounting_response(request)
    return encode_reply_pyrad(request, code, attributes)


def encode_reply_pyrad(
    request: RadiusRequest, code: int, attributes: Sequence[tuple[str, Any]] = ()
) -> bytes:
    """:func:`encode_reply` with pyrad for every answer (the reference of the fast path)."""
    reply = request.packet.CreateReply()
    reply.code = code
    signed = code in (ACCESS_ACCEPT, ACCESS_REJECT, ACCESS_CHALLENGE) or (
        request.code == STATUS_SERVER
    )
    reply.message_authenticator = True if signed else None
    if signed:
        reply.add_message_authenticator()
    for name, value in attributes:
        reply.AddAttribute(name, value)
    return bytes(reply.ReplyPacket())


def encode_accounting_response(request: RadiusRequest) -> bytes:
    """The Accounting-Response to an Accounting-Request (RFC 2866 §3, §4.2), without pyrad.

    Its only attributes are the request's Proxy-States, unmodified and in order
    (RFC 2865 §5.33); no Message-Authenticator (pyrad adds none either).
    """
    raw = request.raw
    attrs = b"".join(instances(raw, request.first, ATTR_PROXY_STATE))
    header = _RESPONSE_HEADER.pack(ACCOUNTING_RESPONSE, raw[1], HEADER_LEN + len(attrs))
    digest = hashlib.md5(header + raw[4:20] + attrs + request.secret).digest()  # noqa: S324
    return header + digest + attrs
