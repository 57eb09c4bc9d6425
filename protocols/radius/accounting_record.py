"""One Accounting-Request as a typed record (RFC 2866 §5, RFC 2869 §5).

Parsing checks what standards §3.7 requires before any charging: an
Acct-Status-Type and an Acct-Session-Id, each well formed; otherwise the
request is dropped (counted, no Accounting-Response). Counters are combined
with their Gigawords here (:mod:`protocols.radius.counters`).

Two readers give the same record: :func:`parse_accounting` over pyrad's view
(the reference) and :func:`parse_wire` over the attribute walk the codec
already did (the fast path, which spares pyrad's tens of µs; equal on random
packets, see tests/unit/radius/test_radius_fastpath.py). Both take the first
instance of each attribute and every Class, and fail with the same drop in the
same order.
"""

from __future__ import annotations

import enum
import ipaddress
import socket
import struct
from typing import NamedTuple

from pyrad import packet as rp

from protocols.radius import attributes as at
from protocols.radius.codec import instances
from protocols.radius.counters import Counters, combine
from protocols.radius.drops import DropReason, RadiusDrop

# Event-Timestamps further than this in the future are treated as clock errors.
MAX_CLOCK_SKEW = 300


class StatusType(enum.IntEnum):
    """Acct-Status-Type (RFC 2866 §5.1)."""

    START = 1
    STOP = 2
    INTERIM_UPDATE = 3
    ACCOUNTING_ON = 7
    ACCOUNTING_OFF = 8
    FAILED = 15


class AcctRecord(NamedTuple):
    """The fields of one Accounting-Request the front end acts on.

    A NamedTuple: immutable like a frozen dataclass at a fraction of its
    construction cost (built per request).
    """

    status: int
    session_id: str
    counters: Counters
    nas_ip: str | None = None
    nas_identifier: str | None = None
    user_name: str | None = None
    calling_station_id: str | None = None
    called_station_id: str | None = None
    framed_ip: str | None = None
    classes: tuple[bytes, ...] = ()
    delay: int = 0
    event_timestamp: int | None = None
    terminate_cause: int | None = None
    multi_session_id: str | None = None
    # (type, octets) of each echoed text attribute (ECHOED) that is not UTF-8: its
    # text above is for logs and lookups, these octets go back in a Disconnect/CoA.
    binary: tuple[tuple[int, bytes], ...] = ()

    def event_time(self, received: int) -> int:
        """When the event happened: Event-Timestamp if sane, else receive time minus
        Acct-Delay-Time (RFC 2866 §5.2, RFC 2869 §5.3)."""
        if self.event_timestamp and self.event_timestamp <= received + MAX_CLOCK_SKEW:
            return self.event_timestamp
        return max(0, received - self.delay)


# Text attributes a Disconnect/CoA echoes (RFC 5176 §3), so their octets must survive.
ECHOED = (at.USER_NAME, at.ACCT_SESSION_ID, at.CALLING_STATION_ID, at.NAS_IDENTIFIER)


def binary_values(values: tuple[tuple[int, bytes | None], ...]) -> tuple[tuple[int, bytes], ...]:
    """The ``(type, octets)`` among ``values`` that are not UTF-8."""
    out: list[tuple[int, bytes]] = []
    for key, raw in values:
        if raw is None or raw.isascii():
            continue
        try:
            raw.decode()
        except UnicodeDecodeError:
            out.append((key, raw))
    return tuple(out)


def parse_accounting(pkt: rp.Packet) -> AcctRecord:
    """Typed view of an authenticated Accounting-Request; RadiusDrop if unusable."""
    status = at.get_int(pkt, at.ACCT_STATUS_TYPE)
    if status is None:
        raise RadiusDrop(DropReason.MISSING_STATUS_TYPE)
    session_id = at.get_text(pkt, at.ACCT_SESSION_ID)
    if not session_id:
        raise RadiusDrop(DropReason.MISSING_SESSION_ID)
    counters = Counters(
        input_octets=combine(
            at.get_int(pkt, at.ACCT_INPUT_OCTETS), at.get_int(pkt, at.ACCT_INPUT_GIGAWORDS)
        ),
        output_octets=combine(
            at.get_int(pkt, at.ACCT_OUTPUT_OCTETS), at.get_int(pkt, at.ACCT_OUTPUT_GIGAWORDS)
        ),
        seconds=at.get_int(pkt, at.ACCT_SESSION_TIME),
    )
    return AcctRecord(
        status=status,
        session_id=session_id,
        counters=counters,
        nas_ip=at.get_ipv4(pkt, at.NAS_IP_ADDRESS) or at.get_ipv6(pkt, at.NAS_IPV6_ADDRESS),
        nas_identifier=at.get_text(pkt, at.NAS_IDENTIFIER),
        user_name=at.get_text(pkt, at.USER_NAME),
        calling_station_id=at.get_text(pkt, at.CALLING_STATION_ID),
        called_station_id=at.get_text(pkt, at.CALLED_STATION_ID),
        framed_ip=at.get_ipv4(pkt, at.FRAMED_IP_ADDRESS),
        classes=tuple(at.raw_values(pkt, at.CLASS)),
        delay=at.get_int(pkt, at.ACCT_DELAY_TIME) or 0,
        event_timestamp=at.get_int(pkt, at.EVENT_TIMESTAMP),
        terminate_cause=at.get_int(pkt, at.ACCT_TERMINATE_CAUSE),
        multi_session_id=at.get_text(pkt, at.ACCT_MULTI_SESSION_ID),
        binary=binary_values(tuple((key, at.first_raw(pkt, key)) for key in ECHOED)),
    )


_U32 = struct.Struct("!I")
_STATUS, _SESSION_ID, _SESSION_TIME = at.ACCT_STATUS_TYPE, at.ACCT_SESSION_ID, at.ACCT_SESSION_TIME
_IN, _IN_GIGAWORDS = at.ACCT_INPUT_OCTETS, at.ACCT_INPUT_GIGAWORDS
_OUT, _OUT_GIGAWORDS = at.ACCT_OUTPUT_OCTETS, at.ACCT_OUTPUT_GIGAWORDS
_NAS_IP, _NAS_IPV6, _NAS_ID = at.NAS_IP_ADDRESS, at.NAS_IPV6_ADDRESS, at.NAS_IDENTIFIER
_USER_NAME, _CALLING, _CALLED = at.USER_NAME, at.CALLING_STATION_ID, at.CALLED_STATION_ID
_FRAMED_IP, _CLASS, _DELAY = at.FRAMED_IP_ADDRESS, at.CLASS, at.ACCT_DELAY_TIME
_EVENT_TIMESTAMP, _TERMINATE_CAUSE = at.EVENT_TIMESTAMP, at.ACCT_TERMINATE_CAUSE
_MULTI_SESSION_ID = at.ACCT_MULTI_SESSION_ID


def parse_wire(raw: bytes, first: dict[int, int]) -> AcctRecord:
    """:func:`parse_accounting` over ``raw`` and its attribute walk (type -> first offset,
    :func:`protocols.radius.codec.walk_attributes`). Same checks in the same order;
    positional arguments and local constants because this runs per request."""
    status = _int(raw, first, _STATUS)
    if status is None:
        raise RadiusDrop(DropReason.MISSING_STATUS_TYPE)
    session_id = _text(raw, first, _SESSION_ID)
    if not session_id:
        raise RadiusDrop(DropReason.MISSING_SESSION_ID)
    counters = Counters(
        combine(_int(raw, first, _IN), _int(raw, first, _IN_GIGAWORDS)),
        combine(_int(raw, first, _OUT), _int(raw, first, _OUT_GIGAWORDS)),
        _int(raw, first, _SESSION_TIME),
    )
    nas_ip = _ipv4(raw, first, _NAS_IP) or _ipv6(raw, first, _NAS_IPV6)
    nas_id = _text(raw, first, _NAS_ID)
    user_name = _text(raw, first, _USER_NAME)
    calling = _text(raw, first, _CALLING)
    # Invalid UTF-8 decodes with backslash escapes: only then look for binary values.
    maybe_binary = "\\" in f"{session_id}{nas_id}{user_name}{calling}"
    return AcctRecord(
        status,
        session_id,
        counters,
        nas_ip,
        nas_id,
        user_name,
        calling,
        _text(raw, first, _CALLED),
        _ipv4(raw, first, _FRAMED_IP),
        tuple(a[2:] for a in instances(raw, first, _CLASS)) if _CLASS in first else (),
        _int(raw, first, _DELAY) or 0,
        _int(raw, first, _EVENT_TIMESTAMP),
        _int(raw, first, _TERMINATE_CAUSE),
        _text(raw, first, _MULTI_SESSION_ID),
        _binary(raw, first) if maybe_binary else (),
    )


def _binary(raw: bytes, first: dict[int, int]) -> tuple[tuple[int, bytes], ...]:
    values = []
    for key in ECHOED:
        pos = first.get(key)
        values.append((key, None if pos is None else raw[pos + 2 : pos + raw[pos + 1]]))
    return binary_values(tuple(values))


def _bad_size(key: int, length: int) -> RadiusDrop:
    return RadiusDrop(DropReason.BAD_ATTRIBUTE_VALUE, f"attribute {key}: {length - 2} octets")


def _int(raw: bytes, first: dict[int, int], key: int) -> int | None:
    pos = first.get(key)
    if pos is None:
        return None
    if raw[pos + 1] != 6:
        raise _bad_size(key, raw[pos + 1])
    return int(_U32.unpack_from(raw, pos + 2)[0])


def _text(raw: bytes, first: dict[int, int], key: int) -> str | None:
    pos = first.get(key)
    if pos is None:
        return None
    return raw[pos + 2 : pos + raw[pos + 1]].decode("utf-8", errors="backslashreplace")


def _ipv4(raw: bytes, first: dict[int, int], key: int) -> str | None:
    pos = first.get(key)
    if pos is None:
        return None
    if raw[pos + 1] != 6:
        raise _bad_size(key, raw[pos + 1])
    return socket.inet_ntoa(raw[pos + 2 : pos + 6])


def _ipv6(raw: bytes, first: dict[int, int], key: int) -> str | None:
    pos = first.get(key)
    if pos is None:
        return None
    if raw[pos + 1] != 18:
        raise _bad_size(key, raw[pos + 1])
    return str(ipaddress.IPv6Address(raw[pos + 2 : pos + 18]))
