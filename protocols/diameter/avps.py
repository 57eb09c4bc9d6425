"""Small typed helpers to read and build AVPs with python-diameter (RFC 6733 §4).

Reading works on the AVP lists the guarded decoder produced (lengths and
fixed sizes already checked, so ``.value`` cannot fail for the types read
here). Building goes through ``Avp.new`` so flags come from python-diameter's
dictionary; Product-Name and Firmware-Revision are forced to M = 0 (RFC 6733
§5.3.3, §5.3.4).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from diameter.message.avp import Avp, AvpGrouped, AvpOctetString

from protocols.diameter.constants import AvpCode


def find(avps: Sequence[Avp], code: int, vendor: int = 0) -> Avp | None:
    for avp in avps:
        if avp.code == code and avp.vendor_id == vendor:
            return avp
    return None


def find_all(avps: Sequence[Avp], code: int, vendor: int = 0) -> list[Avp]:
    return [a for a in avps if a.code == code and a.vendor_id == vendor]


def children(avp: Avp) -> list[Avp]:
    if isinstance(avp, AvpGrouped):
        return list(avp.value)
    return []


def get_int(avps: Sequence[Avp], code: int, vendor: int = 0) -> int | None:
    avp = find(avps, code, vendor)
    if avp is None:
        return None
    value = avp.value
    return value if isinstance(value, int) else None


def get_str(avps: Sequence[Avp], code: int, vendor: int = 0) -> str | None:
    """UTF8String or DiameterIdentity (OctetString in python-diameter) as text."""
    avp = find(avps, code, vendor)
    if avp is None:
        return None
    value = avp.value
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return str(value)


def get_ints(avps: Sequence[Avp], code: int, vendor: int = 0) -> list[int]:
    return [a.value for a in find_all(avps, code, vendor) if isinstance(a.value, int)]


def new(code: int, value: Any, vendor: int = 0, mandatory: bool | None = None) -> Avp:
    """A new AVP; DiameterIdentity values may be given as ``str``."""
    avp = Avp.new(code, vendor, value=None, is_mandatory=mandatory)
    if isinstance(value, str) and type(avp) is AvpOctetString:
        value = value.encode()
    avp.value = value
    return avp


def group(code: int, members: Iterable[Avp], vendor: int = 0) -> Avp:
    return Avp.new(code, vendor, value=list(members))


def identity_avps(origin_host: str, origin_realm: str) -> list[Avp]:
    return [new(AvpCode.ORIGIN_HOST, origin_host), new(AvpCode.ORIGIN_REALM, origin_realm)]
