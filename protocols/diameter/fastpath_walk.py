"""Fast path, step one: the walk of a Gy CCR's AVP headers, by the grammar (RFC 6733 §4.1,
§4.4; RFC 4006 §3.1, §8.16-§8.19, §8.22-§8.23, §8.46; TS 32.299 §7.2 Reporting-Reason).

What the fast path takes is derived from :mod:`protocols.diameter.grammar`, the
tables the reference decoder checks: at each level (the CCR, MSCC, RSU, USU,
CC-Money, Unit-Value, Subscription-Id) the members the grammar allows, each as
often as it allows (a repeat of a ``0*1`` member declines), the required ones
present, and every fixed-size type (python-diameter's dictionary, as the
reference checks it: :func:`protocols.diameter.codec.fixed_size`) at its exact
length. A member the fast path has no slot for (Proxy-Info: its CCA must echo
it) is not on the whitelist, nor is anything the grammar does not name (unknown
AVPs even without M bit, other vendors' AVPs). Flags are exact: M or nothing, V
only on a vendor AVP the grammar names, never P or a reserved bit.

The walk reads headers only and notes where each member is: a *shape* per
level (slotted objects of offsets, 0 when absent; no AVP starts at 0), and
every header passed (``Walker.heads``) so that a message with the same headers
is recognised later without walking (:mod:`protocols.diameter.fastpath`).
Anything else raises :class:`Decline` ("not mine": the reference path
decides). The shapes are plain slotted classes, not dataclasses: several are
built per walk (STYLE.md 8: about 1 µs each as frozen dataclasses).
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

from protocols.diameter import grammar
from protocols.diameter.codec import fixed_size
from protocols.diameter.constants import AvpCode, TgppAvpCode
from protocols.diameter.grammar import Grammar, Key


class Decline(Exception):
    """Not ours: the reference path decides.

    Raised as a new instance each time (``raise Decline``). One shared instance kept the
    traceback of every raise chained on it (a re-raised exception's traceback grows), and
    with it the frames and their locals: the message bytes and its AVP offsets, about
    1.5 MB per refused 120 KB message, never freed.
    """


HDR = struct.Struct(">II").unpack_from
U32 = struct.Struct(">I").unpack_from
I32 = struct.Struct(">i").unpack_from
U64 = struct.Struct(">Q").unpack_from
I64 = struct.Struct(">q").unpack_from

# -- shapes: where each member of one level is (offsets of AVP headers; 0: absent) -----


class Subscription:
    """Subscription-Id {Subscription-Id-Type, Subscription-Id-Data}."""

    __slots__ = ("at", "data", "type")

    def __init__(self, at: int) -> None:
        self.at = at
        self.type = self.data = 0


class UnitValue:
    """Unit-Value {Value-Digits, [Exponent]}."""

    __slots__ = ("at", "digits", "exponent")

    def __init__(self, at: int) -> None:
        self.at = at
        self.digits = self.exponent = 0


class Money:
    """CC-Money {Unit-Value, [Currency-Code]}."""

    __slots__ = ("at", "currency", "unit_value")

    def __init__(self, at: int) -> None:
        self.at = at
        self.currency = 0
        self.unit_value: UnitValue | None = None


class Units:
    """An RSU or USU: unit AVPs, CC-Money, Tariff-Change-Usage, 3GPP Reporting-Reasons."""

    __slots__ = ("at", "events", "input", "money", "output", "reasons", "seconds", "tcu", "total")

    def __init__(self, at: int) -> None:
        self.at = at
        self.total = self.input = self.output = self.seconds = self.events = self.tcu = 0
        self.money: Money | None = None
        self.reasons: list[int] = []


class Mscc:
    """An MSCC: Rating-Group, the first Service-Identifier, RSU, USUs, Reporting-Reasons."""

    __slots__ = ("at", "rating_group", "reasons", "rsu", "service_id", "usus")

    def __init__(self, at: int) -> None:
        self.at = at
        self.rating_group = self.service_id = 0
        self.rsu: Units | None = None
        self.usus: list[Units] = []
        self.reasons: list[int] = []


class Ccr:
    """The command level of a CCR."""

    __slots__ = (
        "action",
        "at",
        "auth_application_id",
        "context",
        "destination_host",
        "destination_realm",
        "event_timestamp",
        "msccs",
        "msi",
        "origin_host",
        "origin_realm",
        "origin_state_id",
        "request_number",
        "request_type",
        "route_records",
        "rsu",
        "service_id",
        "session",
        "subscriptions",
        "termination_cause",
        "user_name",
        "usus",
    )

    def __init__(self, at: int) -> None:
        self.at = at
        self.session = self.origin_host = self.origin_realm = self.destination_realm = 0
        self.auth_application_id = self.context = self.request_type = self.request_number = 0
        self.destination_host = self.user_name = self.origin_state_id = 0
        self.event_timestamp = self.service_id = self.termination_cause = 0
        self.action = self.msi = 0
        self.rsu: Units | None = None
        self.subscriptions: list[Subscription] = []
        self.usus: list[Units] = []
        self.msccs: list[Mscc] = []
        self.route_records: list[int] = []


# -- the whitelist, derived from the grammar ----------------------------------------

ONCE, FIRST, EACH = 0, 1, 2  # a 0*1 / 1 member; the first of many kept; every one kept


class Rule(NamedTuple):
    """How the walk takes one member: into which slot, how often, at which exact length
    (header + payload; 0: any), and the level it opens when it is grouped."""

    slot: str
    kind: int
    length: int
    level: Level | None


class Level:
    """One grammar as the fast path walks it: its members' rules (vendor-0 ones by code,
    the others by (code, vendor)), the members it requires."""

    __slots__ = ("by_code", "by_key", "grammar", "make", "required")

    def __init__(
        self,
        rules_of: Grammar,
        make: Callable[[int], Any],
        slots: Mapping[Key, str],
        levels: Mapping[Key, Level] | None = None,
        first: frozenset[Key] = frozenset(),
    ) -> None:
        levels = levels or {}
        self.grammar = rules_of
        self.make = make
        self.by_code: dict[int, Rule] = {}
        self.by_key: dict[Key, Rule] = {}
        required: set[int | Key] = set()
        for key, (least, most) in rules_of.rules.items():
            slot = slots.get(key)
            if slot is None:
                if least:
                    raise ValueError(f"{rules_of.name}: required {key} has no slot")
                continue  # never ours: a message carrying it is declined
            kind = ONCE if most == 1 else (FIRST if key in first else EACH)
            size = fixed_size(*key)
            length = 0 if size is None else (12 if key[1] else 8) + size
            rule = Rule(slot, kind, length, levels.get(key))
            if key[1]:
                self.by_key[key] = rule
            else:
                self.by_code[key[0]] = rule
            if least:
                required.add(key if key[1] else key[0])
        self.required = frozenset(required)  # as the walk notes them: code, or (code, vendor)


def _k(code: int, vendor: int = 0) -> Key:
    return (int(code), vendor)


A = AvpCode
_REPORTING_REASON = _k(TgppAvpCode.REPORTING_REASON, 10415)
_UNIT_SLOTS = {
    _k(A.CC_TIME): "seconds",
    _k(A.CC_MONEY): "money",
    _k(A.CC_TOTAL_OCTETS): "total",
    _k(A.CC_INPUT_OCTETS): "input",
    _k(A.CC_OUTPUT_OCTETS): "output",
    _k(A.CC_SERVICE_SPECIFIC_UNITS): "events",
    _k(A.TARIFF_CHANGE_USAGE): "tcu",
    _REPORTING_REASON: "reasons",
}

UNIT_VALUE = Level(
    grammar.UNIT_VALUE, UnitValue, {_k(A.VALUE_DIGITS): "digits", _k(A.EXPONENT): "exponent"}
)
CC_MONEY = Level(
    grammar.CC_MONEY,
    Money,
    {_k(A.UNIT_VALUE): "unit_value", _k(A.CURRENCY_CODE): "currency"},
    {_k(A.UNIT_VALUE): UNIT_VALUE},
)
_MONEY_LEVEL = {_k(A.CC_MONEY): CC_MONEY}
RSU = Level(grammar.RSU, Units, _UNIT_SLOTS, _MONEY_LEVEL)
USU = Level(grammar.USU, Units, _UNIT_SLOTS, _MONEY_LEVEL)
SUBSCRIPTION_ID = Level(
    grammar.SUBSCRIPTION_ID,
    Subscription,
    {_k(A.SUBSCRIPTION_ID_TYPE): "type", _k(A.SUBSCRIPTION_ID_DATA): "data"},
)
MSCC = Level(
    grammar.MSCC,
    Mscc,
    {
        _k(A.REQUESTED_SERVICE_UNIT): "rsu",
        _k(A.USED_SERVICE_UNIT): "usus",
        _k(A.SERVICE_IDENTIFIER): "service_id",
        _k(A.RATING_GROUP): "rating_group",
        _REPORTING_REASON: "reasons",
    },
    {_k(A.REQUESTED_SERVICE_UNIT): RSU, _k(A.USED_SERVICE_UNIT): USU},
    first=frozenset({_k(A.SERVICE_IDENTIFIER)}),  # RFC 4006 §8.16: the first names the service
)
CCR = Level(
    grammar.CCR,
    Ccr,
    {
        _k(A.SESSION_ID): "session",
        _k(A.ORIGIN_HOST): "origin_host",
        _k(A.ORIGIN_REALM): "origin_realm",
        _k(A.DESTINATION_REALM): "destination_realm",
        _k(A.AUTH_APPLICATION_ID): "auth_application_id",
        _k(A.SERVICE_CONTEXT_ID): "context",
        _k(A.CC_REQUEST_TYPE): "request_type",
        _k(A.CC_REQUEST_NUMBER): "request_number",
        _k(A.DESTINATION_HOST): "destination_host",
        _k(A.USER_NAME): "user_name",
        _k(A.ORIGIN_STATE_ID): "origin_state_id",
        _k(A.EVENT_TIMESTAMP): "event_timestamp",
        _k(A.SUBSCRIPTION_ID): "subscriptions",
        _k(A.SERVICE_IDENTIFIER): "service_id",
        _k(A.TERMINATION_CAUSE): "termination_cause",
        _k(A.REQUESTED_SERVICE_UNIT): "rsu",
        _k(A.REQUESTED_ACTION): "action",
        _k(A.USED_SERVICE_UNIT): "usus",
        _k(A.MULTIPLE_SERVICES_INDICATOR): "msi",
        _k(A.MULTIPLE_SERVICES_CREDIT_CONTROL): "msccs",
        _k(A.ROUTE_RECORD): "route_records",
        # Proxy-Info has no slot: every answer must echo it, which only the reference
        # builders do, so a CCR carrying it is not the fast path's.
    },
    {
        _k(A.SUBSCRIPTION_ID): SUBSCRIPTION_ID,
        _k(A.REQUESTED_SERVICE_UNIT): RSU,
        _k(A.USED_SERVICE_UNIT): USU,
        _k(A.MULTIPLE_SERVICES_CREDIT_CONTROL): MSCC,
    },
)


class Walker:
    """Walks one message's levels; records every AVP header it passes (``heads``: offset,
    header size) and counts AVPs against ``Limits.max_avps``, grouping against
    ``Limits.max_depth`` (where the reference answers 5012)."""

    __slots__ = ("count", "heads", "max_avps", "max_depth")

    def __init__(self, max_depth: int, max_avps: int) -> None:
        self.max_depth = max_depth
        self.max_avps = max_avps
        self.count = 0
        self.heads: list[tuple[int, int]] = []

    def walk(self, data: bytes, level: Level, shape: Any, pos: int, end: int, depth: int) -> None:
        """The members of one level, ``data[pos:end]``, into ``shape``."""
        by_code, by_key = level.by_code, level.by_key
        heads = self.heads
        seen: set[int | Key] = set()  # the single (ONCE, FIRST) members met
        members = 0
        while pos < end:
            if end - pos < 8:
                raise Decline
            code, flags_len = HDR(data, pos)
            length = flags_len & 0xFFFFFF
            nxt = pos + ((length + 3) & ~3)
            flags = flags_len >> 24
            if length < 8 or nxt > end:
                raise Decline
            key: int | Key
            if flags == 0x40 or flags == 0:
                size = 8
                key = code
                rule = by_code.get(code)
            elif (flags == 0xC0 or flags == 0x80) and length >= 12:
                size = 12
                key = (code, U32(data, pos + 8)[0])
                rule = by_key.get(key)
            else:
                raise Decline  # P or reserved bits, or a vendor AVP too short for its id
            if rule is None:
                raise Decline  # not on the whitelist
            slot, kind, exact, inner = rule
            if exact and length != exact:
                raise Decline  # a fixed-size type of the wrong size
            heads.append((pos, size))
            members += 1
            value: Any = pos
            if inner is not None:
                if depth + 1 > self.max_depth:
                    raise Decline  # the reference: 5012, grouping too deep
                value = inner.make(pos)
                self.walk(data, inner, value, pos + size, pos + length, depth + 1)
            if kind == EACH:
                getattr(shape, slot).append(value)
            elif key not in seen:
                seen.add(key)
                setattr(shape, slot, value)
            elif kind == ONCE:
                raise Decline  # the reference: 5009
            pos = nxt
        self.count += members
        if self.count > self.max_avps:
            raise Decline  # the reference: 5012, too many AVPs
        if not level.required <= seen:
            raise Decline  # the reference: 5005
