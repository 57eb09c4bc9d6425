"""Fast path, grouped AVPs of a Gy CCR: MSCC, RSU / USU, CC-Money, Subscription-Id (issue 6).

RFC 6733 §4.1 (AVP header, padding), §4.4 (Grouped); RFC 4006 §8.16-§8.19
(MSCC, RSU, USU), §8.22-§8.23 (CC-Money, Unit-Value), §8.46 (Subscription-Id);
TS 32.299 §7.2 (Reporting-Reason).

Each reader walks one grouped AVP in place (absolute offsets into the message,
no per-AVP objects) and maps it exactly as :mod:`protocols.diameter.gy_request`
does after the guarded decoder, or raises :class:`Decline` ("not mine": the
reference path decides). The rules of the whole fast path are those of
:mod:`protocols.diameter.fastpath`: exact flags (M or nothing, V only with
vendor 10415 on Reporting-Reason), exact lengths and fixed sizes, enumerations
in range, repeats only where the grammar allows them, depth and AVP-count limits.

Immutable values that recur (a rating group's ``ServiceKey``, a subscriber's
``Identity``, the empty RSU) are shared from small bounded caches: building a
frozen dataclass costs about 1 µs, more than reading its AVPs.
"""

from __future__ import annotations

import struct

from ocs.charging.types import (
    Identity,
    IdentityType,
    ServiceKey,
    ServiceRequest,
    TariffChange,
    Usage,
    UsedUnits,
)
from protocols.diameter.codec import Limits
from protocols.diameter.constants import VENDOR_3GPP, AvpCode
from protocols.diameter.gy_request import MAX_MONEY_EXPONENT, money_micro


class Decline(Exception):
    """Not ours: the reference path decides."""


DECLINE = Decline()

HDR = struct.Struct(">II").unpack_from
U32 = struct.Struct(">I").unpack_from
I32 = struct.Struct(">i").unpack_from
U64 = struct.Struct(">Q").unpack_from
I64 = struct.Struct(">q").unpack_from

# Plain ints: IntEnum members are slower to fetch and compare in the loops below.
_SUB_TYPE = int(AvpCode.SUBSCRIPTION_ID_TYPE)
_SUB_DATA = int(AvpCode.SUBSCRIPTION_ID_DATA)
_CC_MONEY = int(AvpCode.CC_MONEY)
_UNIT_VALUE = int(AvpCode.UNIT_VALUE)
_CURRENCY = int(AvpCode.CURRENCY_CODE)
_DIGITS = int(AvpCode.VALUE_DIGITS)
_EXPONENT = int(AvpCode.EXPONENT)
_TCU = int(AvpCode.TARIFF_CHANGE_USAGE)
_RG = int(AvpCode.RATING_GROUP)
_SID = int(AvpCode.SERVICE_IDENTIFIER)
_RSU = int(AvpCode.REQUESTED_SERVICE_UNIT)
_USU = int(AvpCode.USED_SERVICE_UNIT)
_TIME = int(AvpCode.CC_TIME)
_TOTAL = int(AvpCode.CC_TOTAL_OCTETS)
_INPUT = int(AvpCode.CC_INPUT_OCTETS)
_OUTPUT = int(AvpCode.CC_OUTPUT_OCTETS)
_EVENTS = int(AvpCode.CC_SERVICE_SPECIFIC_UNITS)
_REPORTING_REASON = 872  # 3GPP (vendor 10415)

_IDENTITY_TYPES = (
    IdentityType.E164,
    IdentityType.IMSI,
    IdentityType.SIP_URI,
    IdentityType.NAI,
    IdentityType.PRIVATE,
)
_TARIFF_CHANGES = tuple(TariffChange)
_EMPTY_USAGE = Usage()
_CACHE_ENTRIES = 4096  # per cache; emptied when full (bounded whatever the peers send)
_KEYS: dict[tuple[int | None, int | None], ServiceKey] = {}
_IDENTITIES: dict[bytes, Identity] = {}


def service_key(rating_group: int | None, service_id: int | None) -> ServiceKey:
    """The shared ``ServiceKey`` of a rating group / service id (equal to a new one)."""
    pair = (rating_group, service_id)
    key = _KEYS.get(pair)
    if key is None:
        if len(_KEYS) >= _CACHE_ENTRIES:
            _KEYS.clear()
        key = _KEYS[pair] = ServiceKey(rating_group, service_id)
    return key


class GroupReader:
    """Reads the grouped AVPs of one message; counts AVPs against ``Limits.max_avps``."""

    __slots__ = ("count", "max_avps", "max_depth")

    def __init__(self, limits: Limits) -> None:
        self.max_depth = limits.max_depth
        self.max_avps = limits.max_avps
        self.count = 0

    def counted(self, n: int) -> None:
        self.count += n
        if self.count > self.max_avps:
            raise DECLINE  # the reference: 5012, too many AVPs

    def subscription(self, data: bytes, pos: int, end: int) -> Identity:
        """Subscription-Id {Type, Data} (command level): exactly these two, either order."""
        if self.max_depth <= 0:
            raise DECLINE  # the reference: 5012, grouping too deep
        self.counted(2)  # a cached payload is two AVPs; anything else declines below
        payload = data[pos:end]
        identity = _IDENTITIES.get(payload)
        if identity is None:
            identity = _identity(payload)
            if len(_IDENTITIES) >= _CACHE_ENTRIES:
                _IDENTITIES.clear()
            _IDENTITIES[payload] = identity
        return identity

    def mscc(self, data: bytes, pos: int, end: int) -> ServiceRequest:
        """One Multiple-Services-Credit-Control (command level)."""
        if self.max_depth <= 0:
            raise DECLINE
        rating_group: int | None = None
        service_id: int | None = None
        rsu = 0
        usus: list[int] = []
        reasons: list[int] = []
        n = 0
        while pos < end:
            if end - pos < 8:
                raise DECLINE
            code, flags_len = HDR(data, pos)
            length = flags_len & 0xFFFFFF
            nxt = pos + ((length + 3) & ~3)
            if length < 8 or nxt > end:
                raise DECLINE
            flags = flags_len >> 24
            n += 1
            if flags == 0x40 or flags == 0:
                if code == _USU:
                    usus.append(pos)
                elif code == _RG and rating_group is None:
                    if length != 12:
                        raise DECLINE
                    rating_group = U32(data, pos + 8)[0]
                elif code == _RSU and not rsu:
                    rsu = pos
                elif code == _SID:
                    if length != 12:
                        raise DECLINE
                    if service_id is None:
                        service_id = U32(data, pos + 8)[0]
                else:
                    raise DECLINE
            elif flags == 0xC0 or flags == 0x80:
                reasons.append(_reporting_reason(data, pos, code, length))
            else:
                raise DECLINE  # P or reserved bits
            pos = nxt
        self.counted(n)
        requested = None
        if rsu:
            requested = self.units(data, rsu, 1, None)[0]
        outer = tuple(reasons)
        used = tuple([self.used(data, at, 1, outer) for at in usus])
        return ServiceRequest(service_key(rating_group, service_id), requested, used)

    def used(self, data: bytes, at: int, depth: int, outer: tuple[int, ...]) -> UsedUnits:
        """A USU at offset ``at``; ``outer`` are the enclosing MSCC's Reporting-Reasons."""
        reasons: list[int] = []
        usage, change = self.units(data, at, depth, reasons)
        return UsedUnits(usage, change, (*reasons, *outer))

    def units(
        self, data: bytes, at: int, depth: int, reasons: list[int] | None
    ) -> tuple[Usage, TariffChange | None]:
        """RSU / USU units (and CC-Money) of the AVP at offset ``at``. ``reasons`` None: an
        RSU (no Tariff-Change-Usage, no Reporting-Reason); else a USU's, collected there."""
        if depth >= self.max_depth:
            raise DECLINE
        pos = at + 8
        end = at + (U32(data, at + 4)[0] & 0xFFFFFF)
        if pos == end:
            return _EMPTY_USAGE, None
        total = inp = out = seconds = events = money = None
        money_seen = False
        change: TariffChange | None = None
        n = 0
        while pos < end:
            if end - pos < 8:
                raise DECLINE
            code, flags_len = HDR(data, pos)
            length = flags_len & 0xFFFFFF
            nxt = pos + ((length + 3) & ~3)
            if length < 8 or nxt > end:
                raise DECLINE
            flags = flags_len >> 24
            n += 1
            if flags == 0x40 or flags == 0:
                if code == _TOTAL and total is None and length == 16:
                    total = U64(data, pos + 8)[0]
                elif code == _INPUT and inp is None and length == 16:
                    inp = U64(data, pos + 8)[0]
                elif code == _OUTPUT and out is None and length == 16:
                    out = U64(data, pos + 8)[0]
                elif code == _TIME and seconds is None and length == 12:
                    seconds = U32(data, pos + 8)[0]
                elif code == _EVENTS and events is None and length == 16:
                    events = U64(data, pos + 8)[0]
                elif code == _CC_MONEY and not money_seen:
                    money_seen = True
                    money = self.money(data, pos + 8, pos + length, depth + 1)
                elif code == _TCU and change is None and reasons is not None and length == 12:
                    value = I32(data, pos + 8)[0]
                    if not 0 <= value <= 2:
                        raise DECLINE  # the reference: 5004
                    change = _TARIFF_CHANGES[value]
                else:
                    raise DECLINE  # a repeat, a wrong size, or not an RSU / USU member we read
            elif (flags == 0xC0 or flags == 0x80) and reasons is not None:
                reasons.append(_reporting_reason(data, pos, code, length))
            else:
                raise DECLINE
            pos = nxt
        self.counted(n)
        usage = Usage(
            total_octets=total,
            input_octets=inp,
            output_octets=out,
            seconds=seconds,
            events=events,
            money=money,
        )
        return usage, change

    def money(self, data: bytes, pos: int, end: int, depth: int) -> int | None:
        """CC-Money in micro-units, as ``gy_request._money`` computes it."""
        unit_value = 0
        currency = False
        for code, at, length in self._members(data, pos, end, depth):
            if code == _UNIT_VALUE and not unit_value:
                unit_value = at
            elif code == _CURRENCY and not currency and length == 12:
                currency = True
            else:
                raise DECLINE
        if not unit_value:
            return None
        digits: int | None = None
        exponent: int | None = None
        value_end = unit_value + (U32(data, unit_value + 4)[0] & 0xFFFFFF)
        for code, at, length in self._members(data, unit_value + 8, value_end, depth + 1):
            if code == _DIGITS and digits is None and length == 16:
                digits = I64(data, at + 8)[0]
            elif code == _EXPONENT and exponent is None and length == 12:
                exponent = I32(data, at + 8)[0]
            else:
                raise DECLINE
        exponent = exponent or 0
        if not -MAX_MONEY_EXPONENT <= exponent <= MAX_MONEY_EXPONENT:
            # 10**exponent for an Exponent near 2**31 takes the process minutes (the
            # reference path too: reported); no real amount needs more than this.
            raise DECLINE
        return money_micro(digits or 0, exponent)  # the reference's own arithmetic

    def _members(self, data: bytes, pos: int, end: int, depth: int) -> list[tuple[int, int, int]]:
        """(code, offset, length) of a rarely used group's vendor-0 members."""
        if depth >= self.max_depth:
            raise DECLINE
        out: list[tuple[int, int, int]] = []
        while pos < end:
            if end - pos < 8:
                raise DECLINE
            code, flags_len = HDR(data, pos)
            length = flags_len & 0xFFFFFF
            nxt = pos + ((length + 3) & ~3)
            if length < 8 or nxt > end or flags_len >> 24 not in (0x40, 0):
                raise DECLINE
            out.append((code, pos, length))
            pos = nxt
        self.counted(len(out))
        return out


def _reporting_reason(data: bytes, pos: int, code: int, length: int) -> int:
    """3GPP Reporting-Reason (the only vendor AVP we read): Enumerated, any value kept."""
    if code != _REPORTING_REASON or length != 16 or U32(data, pos + 8)[0] != VENDOR_3GPP:
        raise DECLINE
    return int(I32(data, pos + 12)[0])


def _identity(payload: bytes) -> Identity:
    """Subscription-Id-Type + Subscription-Id-Data, in either order, nothing else."""
    end = len(payload)
    if end < 16:
        raise DECLINE
    code1, fl1 = HDR(payload, 0)
    len1 = fl1 & 0xFFFFFF
    pos2 = (len1 + 3) & ~3
    if len1 < 8 or pos2 + 8 > end or fl1 >> 24 not in (0x40, 0):
        raise DECLINE
    code2, fl2 = HDR(payload, pos2)
    len2 = fl2 & 0xFFFFFF
    if len2 < 8 or pos2 + ((len2 + 3) & ~3) != end or fl2 >> 24 not in (0x40, 0):
        raise DECLINE
    if code1 == _SUB_DATA and code2 == _SUB_TYPE:
        type_at, type_len, data_at, data_len = pos2, len2, 0, len1
    elif code1 == _SUB_TYPE and code2 == _SUB_DATA:
        type_at, type_len, data_at, data_len = 0, len1, pos2, len2
    else:
        raise DECLINE
    if type_len != 12:
        raise DECLINE
    kind = I32(payload, type_at + 8)[0]
    if not 0 <= kind <= 4:
        raise DECLINE  # the reference: 5004
    try:
        value = payload[data_at + 8 : data_at + data_len].decode("utf-8")
    except UnicodeDecodeError:
        raise DECLINE from None
    return Identity(_IDENTITY_TYPES[kind], value)
