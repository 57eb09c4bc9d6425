"""Typed, guarded reads of received RADIUS attributes (RFC 2865 §5).

pyrad keeps received values as raw octets keyed by attribute code (or
``(vendor, code)``); these helpers decode the first instance with the RFC data
type and turn a malformed value (a 3-octet integer, an IPv4 address of 5
octets) into :class:`RadiusDrop` with ``BAD_ATTRIBUTE_VALUE``. Raw access by
code also sidesteps pyrad's VALUE-name translation, so integers stay integers.
"""

from __future__ import annotations

import ipaddress
import struct
from collections import OrderedDict

from pyrad import packet as rp

from protocols.radius.drops import DropReason, RadiusDrop

Key = int | tuple[int, int]

# Attribute codes used by the front end (RFC 2865, 2866, 2869, 3162, 5176).
USER_NAME = 1
USER_PASSWORD = 2
NAS_IP_ADDRESS = 4
SERVICE_TYPE = 6
FRAMED_IP_ADDRESS = 8
CLASS = 25
CALLED_STATION_ID = 30
CALLING_STATION_ID = 31
NAS_IDENTIFIER = 32
ACCT_STATUS_TYPE = 40
ACCT_DELAY_TIME = 41
ACCT_INPUT_OCTETS = 42
ACCT_OUTPUT_OCTETS = 43
ACCT_SESSION_ID = 44
ACCT_SESSION_TIME = 46
ACCT_TERMINATE_CAUSE = 49
ACCT_MULTI_SESSION_ID = 50
ACCT_INPUT_GIGAWORDS = 52
ACCT_OUTPUT_GIGAWORDS = 53
EVENT_TIMESTAMP = 55
NAS_IPV6_ADDRESS = 95
ERROR_CAUSE = 101


def raw_values(pkt: rp.Packet, key: Key) -> list[bytes]:
    """All raw values of one attribute, in order of arrival."""
    values = OrderedDict.get(pkt, key)
    if not values:
        return []
    return [bytes(v) for v in values if isinstance(v, bytes | bytearray)]


def first_raw(pkt: rp.Packet, key: Key) -> bytes | None:
    values = raw_values(pkt, key)
    return values[0] if values else None


def first_sized(pkt: rp.Packet, key: Key, size: int) -> bytes | None:
    """The first value of a fixed-size attribute; a drop when it has another size."""
    raw = first_raw(pkt, key)
    if raw is not None and len(raw) != size:
        raise RadiusDrop(DropReason.BAD_ATTRIBUTE_VALUE, f"attribute {key}: {len(raw)} octets")
    return raw


def get_int(pkt: rp.Packet, key: Key) -> int | None:
    """An ``integer`` / ``date`` attribute (32-bit unsigned)."""
    raw = first_sized(pkt, key, 4)
    return None if raw is None else int(struct.unpack("!I", raw)[0])


def get_text(pkt: rp.Packet, key: Key) -> str | None:
    """A ``string`` attribute; invalid UTF-8 kept reversibly with backslash escapes."""
    raw = first_raw(pkt, key)
    if raw is None:
        return None
    return raw.decode("utf-8", errors="backslashreplace")


def get_ipv4(pkt: rp.Packet, key: Key) -> str | None:
    raw = first_sized(pkt, key, 4)
    return None if raw is None else str(ipaddress.IPv4Address(raw))


def get_ipv6(pkt: rp.Packet, key: Key) -> str | None:
    raw = first_sized(pkt, key, 16)
    return None if raw is None else str(ipaddress.IPv6Address(raw))
