"""Dynamic authorisation, the OCS as client (RFC 5176): sans-IO message layer.

Builds Disconnect-Request (40) and CoA-Request (43) with a Request
Authenticator computed as for Accounting-Request (RFC 5176 §3.3), a
Message-Authenticator, Event-Timestamp (RFC 5176 §3.1, replay protection) and
the session identification attributes (User-Name, Acct-Session-Id,
Framed-IP-Address, Calling-Station-Id) with NAS-IP-Address/NAS-Identifier.
Checks an answer before anyone acts on it: matching Identifier, an ACK/NAK
code for the request, the Response Authenticator and, when present, the
Message-Authenticator (standards §3.5). Retransmissions reuse the same bytes,
hence the same Identifier and Authenticator; :func:`retransmit_delays` is the
backoff schedule.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pyrad import packet as rp

from protocols.radius import attributes as at
from protocols.radius import sessions as ss
from protocols.radius.codec import (
    ATTR_MESSAGE_AUTHENTICATOR,
    COA_ACK,
    COA_NAK,
    COA_REQUEST,
    DISCONNECT_ACK,
    DISCONNECT_NAK,
    DISCONNECT_REQUEST,
    check_frame,
    walk_attributes,
)
from protocols.radius.dictionary import load_dictionary
from protocols.radius.drops import RadiusDrop

ERROR_SESSION_NOT_FOUND = 503  # Session-Context-Not-Found: the session is gone


class DaeKind(enum.Enum):
    DISCONNECT = "disconnect"
    COA = "coa"

    @property
    def code(self) -> int:
        return int(DISCONNECT_REQUEST if self is DaeKind.DISCONNECT else COA_REQUEST)

    @property
    def answers(self) -> tuple[int, int]:
        """(ACK, NAK) codes answering this request (RFC 5176 §2)."""
        if self is DaeKind.DISCONNECT:
            return int(DISCONNECT_ACK), int(DISCONNECT_NAK)
        return int(COA_ACK), int(COA_NAK)


class DaeStatus(enum.Enum):
    ACK = "ack"
    NAK = "nak"
    TIMEOUT = "timeout"


@dataclass(frozen=True, slots=True)
class DaeReply:
    status: DaeStatus
    error_cause: int | None = None


# Session attributes -> RADIUS attribute names (RFC 5176 §3 identification).
IDENTIFICATION: tuple[tuple[str, str], ...] = (
    (ss.A_USER_NAME, "User-Name"),
    (ss.A_ACCT_SESSION_ID, "Acct-Session-Id"),
    (ss.A_FRAMED_IP, "Framed-IP-Address"),
    (ss.A_CALLING_STATION_ID, "Calling-Station-Id"),
    (ss.A_NAS_IP, "NAS-IP-Address"),
    (ss.A_NAS_ID, "NAS-Identifier"),
)


# Addresses are kept as their text form; the others are octets, echoed as received.
_ADDRESSES = frozenset({ss.A_FRAMED_IP, ss.A_NAS_IP})


def identification(attributes: Mapping[str, str]) -> list[tuple[str, Any]]:
    """The session's identification attributes (RFC 5176 §3), each string attribute
    as the octets the NAS sent (:func:`protocols.radius.sessions.echo_octets`)."""
    out: list[tuple[str, Any]] = []
    for key, name in IDENTIFICATION:
        if key not in _ADDRESSES:
            octets = ss.echo_octets(attributes, key)
            if octets:
                out.append((name, octets))
            continue
        value = attributes.get(key)
        if not value:
            continue
        if name == "NAS-IP-Address" and ":" in value:
            name = "NAS-IPv6-Address"
        out.append((name, value))
    return out


def encode_request(
    kind: DaeKind,
    identifier: int,
    secret: bytes,
    attributes: Sequence[tuple[str, Any]],
    event_timestamp: int,
) -> bytes:
    """One Disconnect/CoA-Request, ready to send (and to re-send unchanged)."""
    pkt = rp.CoAPacket(code=kind.code, id=identifier, secret=secret, dict=load_dictionary())
    pkt.add_message_authenticator()
    for name, value in attributes:
        pkt.AddAttribute(name, value)
    pkt.AddAttribute("Event-Timestamp", event_timestamp)
    return bytes(pkt.RequestPacket())


def _message_authenticator_ok(reply: bytes, request_auth: bytes, secret: bytes) -> bool:
    pos = 20
    while pos < len(reply):
        atype, alen = reply[pos], reply[pos + 1]
        if atype == ATTR_MESSAGE_AUTHENTICATOR:
            zeroed = reply[: pos + 2] + bytes(16) + reply[pos + alen :]
            signed = zeroed[:4] + request_auth + zeroed[20:]
            want = hmac.new(secret, signed, "md5").digest()
            return hmac.compare_digest(want, reply[pos + 2 : pos + alen])
        pos += alen
    return True


def verify_reply(kind: DaeKind, request: bytes, reply: bytes, secret: bytes) -> DaeReply | None:
    """The ACK/NAK if ``reply`` authentically answers ``request``, else None (ignore it)."""
    try:
        raw = check_frame(reply)
        walk_attributes(raw)
    except RadiusDrop:
        return None
    ack, nak = kind.answers
    if raw[0] not in (ack, nak) or raw[1] != request[1]:
        return None
    request_auth = request[4:20]
    want = hashlib.md5(raw[:4] + request_auth + raw[20:] + secret).digest()  # noqa: S324
    if not hmac.compare_digest(want, raw[4:20]):
        return None
    if not _message_authenticator_ok(raw, request_auth, secret):
        return None
    if raw[0] == ack:
        return DaeReply(DaeStatus.ACK)
    return DaeReply(DaeStatus.NAK, _error_cause(raw))


def _error_cause(raw: bytes) -> int | None:
    pkt = rp.Packet(packet=raw, dict=load_dictionary())
    try:
        return at.get_int(pkt, at.ERROR_CAUSE)
    except RadiusDrop:
        return None


def retransmit_delays(initial: float, maximum: float, retries: int) -> list[float]:
    """Waits after each send: doubling from ``initial``, capped at ``maximum``."""
    delays: list[float] = []
    delay = initial
    for _ in range(retries + 1):
        delays.append(min(delay, maximum))
        delay *= 2
    return delays


def request_identifier(raw: bytes) -> int:
    return int(struct.unpack_from("!B", raw, 1)[0])
