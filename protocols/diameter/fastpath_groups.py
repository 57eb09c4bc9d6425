"""Fast path, grouped AVPs of a Gy CCR: MSCC, RSU / USU, CC-Money, Subscription-Id (issue 6).

RFC 6733 §4.1 (AVP header, padding), §4.4 (Grouped); RFC 4006 §8.16-§8.19
(MSCC, RSU, USU), §8.22-§8.23 (CC-Money, Unit-Value), §8.46 (Subscription-Id);
TS 32.299 §7.2 (Reporting-Reason).

Reading is in two steps. :class:`Walker` checks the structure of each group
(exact flags: M or nothing, V only with vendor 10415 on Reporting-Reason;
exact lengths and fixed sizes; repeats only where the grammar allows them;
depth and AVP-count limits) and returns its *shape*: where each AVP is. A shape
depends on the AVP headers only, so one shape serves every message with the
same headers (see :mod:`protocols.diameter.fastpath`). The ``read_*``
functions then read the values at those offsets, check the value rules
(enumerations, UTF-8, the CC-Money exponent) and build the ``ocs.charging``
values exactly as :mod:`protocols.diameter.gy_request` does. Anything else
raises :class:`Decline` ("not mine": the reference path decides).

Immutable values that recur (a rating group's ``ServiceKey``, a subscriber's
``Identity``, the empty RSU) are shared from small bounded caches: building a
frozen dataclass costs about 1 µs, more than reading its AVPs.
"""

from __future__ import annotations

import struct

from ocs.vocabulary.types import (
    Identity,
    IdentityType,
    ServiceKey,
    ServiceRequest,
    TariffChange,
    Usage,
    UsedUnits,
)
from protocols.diameter.constants import VENDOR_3GPP, AvpCode
from protocols.diameter.gy_request import MAX_MONEY_EXPONENT, money_micro


class Decline(Exception):
    """Not ours: the reference path decides.

    Raised as a new instance each time (``raise Decline``). One shared instance kept the
    traceback of every raise chained on it (a re-raised exception's traceback grows), and
    with it the frames and their locals: the message bytes and its AVP offsets, about
    1.5 MB per refused 120 KB message, never freed (issue 13 item 5).
    """


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
# Longer Subscription-Ids are read but not kept: real ones are a few dozen octets, and
# 4096 entries of up to a message's size each would be a gigabyte (issue 13 item 5).
_IDENTITY_MAX = 256
_KEYS: dict[tuple[int | None, int | None], ServiceKey] = {}
_IDENTITIES: dict[bytes, Identity] = {}

# -- shapes: offsets of AVP headers (0: absent; no AVP starts at 0) -------------------


class Money:
    """A CC-Money: its Unit-Value's Value-Digits and Exponent (``present`` False: none)."""

    __slots__ = ("digits", "exponent", "present")

    def __init__(self, present: bool, digits: int = 0, exponent: int = 0) -> None:
        self.present, self.digits, self.exponent = present, digits, exponent


class Units:
    """An RSU or USU: its unit AVPs, CC-Money, Tariff-Change-Usage and Reporting-Reasons."""

    __slots__ = ("events", "input", "money", "output", "reasons", "seconds", "tcu", "total")

    def __init__(self) -> None:
        self.total = self.input = self.output = self.seconds = self.events = self.tcu = 0
        self.money: Money | None = None
        self.reasons: list[int] = []


class Mscc:
    """An MSCC: first Rating-Group, first Service-Identifier, RSU, USUs, Reporting-Reasons."""

    __slots__ = ("rating_group", "reasons", "rsu", "service_id", "usus")

    def __init__(self) -> None:
        self.rating_group = self.service_id = 0
        self.rsu: Units | None = None
        self.usus: list[Units] = []
        self.reasons: list[int] = []


class Walker:
    """Checks the structure of one message's groups; records every AVP header it passes
    (``heads``: offset, header size) and counts AVPs against ``Limits.max_avps``."""

    __slots__ = ("count", "heads", "max_avps", "max_depth")

    def __init__(self, max_depth: int, max_avps: int) -> None:
        self.max_depth = max_depth
        self.max_avps = max_avps
        self.count = 0
        self.heads: list[tuple[int, int]] = []

    def counted(self, n: int) -> None:
        self.count += n
        if self.count > self.max_avps:
            raise Decline  # the reference: 5012, too many AVPs

    def _members(self, data: bytes, at: int, depth: int) -> list[tuple[int, int, int, int]]:
        """(code, flags, offset, length) of the members of the grouped AVP at ``at``; exact
        lengths, no P or reserved bit, V only with vendor 10415."""
        if depth >= self.max_depth:
            raise Decline  # the reference: 5012, grouping too deep
        pos = at + 8
        end = at + (U32(data, at + 4)[0] & 0xFFFFFF)
        out: list[tuple[int, int, int, int]] = []
        heads = self.heads
        while pos < end:
            if end - pos < 8:
                raise Decline
            code, flags_len = HDR(data, pos)
            length = flags_len & 0xFFFFFF
            nxt = pos + ((length + 3) & ~3)
            flags = flags_len >> 24
            if length < 8 or nxt > end:
                raise Decline
            if flags == 0x40 or flags == 0:
                heads.append((pos, 8))
            elif flags == 0xC0 or flags == 0x80:
                if length < 12 or U32(data, pos + 8)[0] != VENDOR_3GPP:
                    raise Decline
                heads.append((pos, 12))
            else:
                raise Decline  # P or reserved bits
            out.append((code, flags & 0x80, pos, length))
            pos = nxt
        self.counted(len(out))
        return out

    def subscription(self, data: bytes, at: int) -> int:
        """Subscription-Id {Type, Data}: exactly these two, either order. Returns ``at``."""
        members = self._members(data, at, 0)
        if len(members) != 2:
            raise Decline
        (c1, v1, _, l1), (c2, v2, _, l2) = members
        if v1 or v2 or {c1, c2} != {_SUB_TYPE, _SUB_DATA}:
            raise Decline
        if (l1 if c1 == _SUB_TYPE else l2) != 12:
            raise Decline
        return at

    def mscc(self, data: bytes, at: int) -> Mscc:
        """One Multiple-Services-Credit-Control (command level)."""
        shape = Mscc()
        for code, vendor, pos, length in self._members(data, at, 0):
            if vendor:
                _reporting_reason(code, length)
                shape.reasons.append(pos)
            elif code == _USU:
                shape.usus.append(self.units(data, pos, 1, True))
            elif code == _RG and not shape.rating_group and length == 12:
                shape.rating_group = pos
            elif code == _RSU and shape.rsu is None:
                shape.rsu = self.units(data, pos, 1, False)
            elif code == _SID and length == 12:
                shape.service_id = shape.service_id or pos
            else:
                raise Decline
        return shape

    def units(self, data: bytes, at: int, depth: int, used: bool) -> Units:
        """RSU (``used`` False: unit AVPs and CC-Money only) or USU units."""
        shape = Units()
        money_seen = False
        for code, vendor, pos, length in self._members(data, at, depth):
            if vendor:
                if not used:
                    raise Decline
                _reporting_reason(code, length)
                shape.reasons.append(pos)
            elif code == _TOTAL and not shape.total and length == 16:
                shape.total = pos
            elif code == _INPUT and not shape.input and length == 16:
                shape.input = pos
            elif code == _OUTPUT and not shape.output and length == 16:
                shape.output = pos
            elif code == _TIME and not shape.seconds and length == 12:
                shape.seconds = pos
            elif code == _EVENTS and not shape.events and length == 16:
                shape.events = pos
            elif code == _CC_MONEY and not money_seen:
                money_seen = True
                shape.money = self.money(data, pos, depth + 1)
            elif code == _TCU and used and not shape.tcu and length == 12:
                shape.tcu = pos
            else:
                raise Decline  # a repeat, a wrong size, or not an RSU / USU member we read
        return shape

    def money(self, data: bytes, at: int, depth: int) -> Money:
        """CC-Money {Unit-Value {Value-Digits, [Exponent]}, [Currency-Code]}."""
        unit_value = 0
        currency = False
        for code, vendor, pos, length in self._members(data, at, depth):
            if vendor:
                raise Decline
            if code == _UNIT_VALUE and not unit_value:
                unit_value = pos
            elif code == _CURRENCY and not currency and length == 12:
                currency = True
            else:
                raise Decline
        if not unit_value:
            return Money(False)
        digits = exponent = 0
        for code, vendor, pos, length in self._members(data, unit_value, depth + 1):
            if vendor:
                raise Decline
            if code == _DIGITS and not digits and length == 16:
                digits = pos
            elif code == _EXPONENT and not exponent and length == 12:
                exponent = pos
            else:
                raise Decline
        return Money(True, digits, exponent)


def _reporting_reason(code: int, length: int) -> None:
    """3GPP Reporting-Reason (the only vendor AVP we read): Enumerated, 4 octets."""
    if code != _REPORTING_REASON or length != 16:
        raise Decline


# -- values -------------------------------------------------------------------------


def service_key(rating_group: int | None, service_id: int | None) -> ServiceKey:
    """The shared ``ServiceKey`` of a rating group / service id (equal to a new one)."""
    pair = (rating_group, service_id)
    key = _KEYS.get(pair)
    if key is None:
        if len(_KEYS) >= _CACHE_ENTRIES:
            _KEYS.clear()
        key = _KEYS[pair] = ServiceKey(rating_group, service_id)
    return key


def read_identity(data: bytes, at: int) -> Identity:
    """The Identity of a Subscription-Id whose shape :meth:`Walker.subscription` checked."""
    payload = data[at + 8 : at + (U32(data, at + 4)[0] & 0xFFFFFF)]
    identity = _IDENTITIES.get(payload)
    if identity is None:
        code, flags_len = HDR(payload, 0)
        second = ((flags_len & 0xFFFFFF) + 3) & ~3
        type_at, data_at = (0, second) if code == _SUB_TYPE else (second, 0)
        kind = I32(payload, type_at + 8)[0]
        if not 0 <= kind <= 4:
            raise Decline  # the reference: 5004
        data_end = data_at + (U32(payload, data_at + 4)[0] & 0xFFFFFF)
        try:
            value = payload[data_at + 8 : data_end].decode("utf-8")
        except UnicodeDecodeError:
            raise Decline from None
        identity = Identity(_IDENTITY_TYPES[kind], value)
        if len(payload) <= _IDENTITY_MAX:
            if len(_IDENTITIES) >= _CACHE_ENTRIES:
                _IDENTITIES.clear()
            _IDENTITIES[payload] = identity
    return identity


def read_mscc(data: bytes, shape: Mscc) -> ServiceRequest:
    rg = shape.rating_group
    sid = shape.service_id
    key = service_key(
        None if not rg else int(U32(data, rg + 8)[0]),
        None if not sid else int(U32(data, sid + 8)[0]),
    )
    rsu = shape.rsu
    requested = read_usage(data, rsu) if rsu is not None else None
    outer = tuple([int(I32(data, p + 12)[0]) for p in shape.reasons])
    return ServiceRequest(key, requested, tuple([read_used(data, u, outer) for u in shape.usus]))


def read_used(data: bytes, shape: Units, outer: tuple[int, ...]) -> UsedUnits:
    """A USU; ``outer`` are the enclosing MSCC's Reporting-Reasons (after its own)."""
    change: TariffChange | None = None
    if shape.tcu:
        value = I32(data, shape.tcu + 8)[0]
        if not 0 <= value <= 2:
            raise Decline  # the reference: 5004
        change = _TARIFF_CHANGES[value]
    usage = read_usage(data, shape)
    if shape.reasons:
        return UsedUnits(usage, change, (*[I32(data, p + 12)[0] for p in shape.reasons], *outer))
    return UsedUnits(usage, change, outer)


def read_usage(data: bytes, shape: Units) -> Usage:
    """The units of an RSU / USU (an empty RSU: the shared ``Usage()``)."""
    total, inp, out, seconds, events = (
        shape.total,
        shape.input,
        shape.output,
        shape.seconds,
        shape.events,
    )
    money = shape.money
    if not (total or inp or out or seconds or events or money):
        return _EMPTY_USAGE
    return Usage(
        total_octets=int(U64(data, total + 8)[0]) if total else None,
        input_octets=int(U64(data, inp + 8)[0]) if inp else None,
        output_octets=int(U64(data, out + 8)[0]) if out else None,
        seconds=int(U32(data, seconds + 8)[0]) if seconds else None,
        events=int(U64(data, events + 8)[0]) if events else None,
        money=read_money(data, money) if money is not None else None,
    )


def read_money(data: bytes, shape: Money) -> int | None:
    """CC-Money in micro-units, as ``gy_request._money`` computes it."""
    if not shape.present:
        return None
    digits = int(I64(data, shape.digits + 8)[0]) if shape.digits else 0
    exponent = int(I32(data, shape.exponent + 8)[0]) if shape.exponent else 0
    if not -MAX_MONEY_EXPONENT <= exponent <= MAX_MONEY_EXPONENT:
        # 10**exponent for an Exponent near 2**31 takes the process minutes (the
        # reference path too: reported); no real amount needs more than this.
        raise Decline
    return money_micro(digits, exponent)  # the reference's own arithmetic
