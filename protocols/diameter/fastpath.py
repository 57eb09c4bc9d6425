"""Fast path for Gy CCR decode: struct straight to ``GyRequest`` for the hot shapes (issue 6).

RFC 6733 §3 (header), §4.1 (AVP header), §4.4 (Grouped); RFC 4006 §3.1 (CCR),
§8.16-§8.19 (MSCC, RSU, USU); TS 32.299 §7.2 (Reporting-Reason).

python-diameter, through :func:`protocols.diameter.codec.decode` and
:func:`protocols.diameter.gy_request.parse_ccr`, stays the reference. This
module only says "mine" (a :class:`Decoded` carrying a :class:`FastCcr` whose
``request`` equals what the reference maps) or "not mine" (``None``: the caller
runs the reference path unchanged). It never builds an error answer. It says
"mine" only for a CCR-I/U/T whose every AVP is on a whitelist below, with
exact header and AVP flags, exact lengths and zero-length-consistent padding,
enumerations in range, grammar counts met and within the configured limits:
exactly the messages for which the guarded decoder finds no problem. Anything
else (Proxy-Info, vendor AVPs other than 3GPP Reporting-Reason, unknown AVPs
even without M bit, events, CC-Money oddities) is not ours.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ocs.charging.types import (
    EventAction,
    Identity,
    IdentityType,
    ServiceKey,
    ServiceRequest,
    TariffChange,
    TerminationCause,
    Usage,
    UsedUnits,
)
from protocols.diameter.codec import Decoded, Header, Limits, decode
from protocols.diameter.constants import (
    APP_CREDIT_CONTROL,
    FLAG_PROXYABLE,
    FLAG_REQUEST,
    FLAG_RETRANSMIT,
    HEADER_LENGTH,
    VENDOR_3GPP,
    VERSION,
    AvpCode,
    CcRequestType,
    Command,
)
from protocols.diameter.gy_request import MAX_MONEY_EXPONENT, GyRequest, money_micro

_HDR = struct.Struct(">II")
_U32 = struct.Struct(">I")
_I32 = struct.Struct(">i")
_U64 = struct.Struct(">Q")
_I64 = struct.Struct(">q")
_MSG = struct.Struct(">IIIII")

_M = 0x40
_VM = 0xC0
_V = 0x80
# Keys of the AVPs we read: vendor-0 codes as they are, 3GPP ones offset above 2**32.
_TGPP = 1 << 32
REPORTING_REASON = 872 | _TGPP
_REQUEST_FLAGS = (FLAG_REQUEST, FLAG_REQUEST | FLAG_PROXYABLE)

_IDENTITY_TYPES = (
    IdentityType.E164,
    IdentityType.IMSI,
    IdentityType.SIP_URI,
    IdentityType.NAI,
    IdentityType.PRIVATE,
)
_UNITS: dict[int, str] = {
    AvpCode.CC_TIME: "seconds",
    AvpCode.CC_TOTAL_OCTETS: "total_octets",
    AvpCode.CC_INPUT_OCTETS: "input_octets",
    AvpCode.CC_OUTPUT_OCTETS: "output_octets",
    AvpCode.CC_SERVICE_SPECIFIC_UNITS: "events",
}
_U64_UNITS: frozenset[int] = frozenset(_UNITS) - {AvpCode.CC_TIME}


class _Decline(Exception):
    """Not ours: the reference path decides."""


_DECLINE = _Decline()

# One AVP as walked: (key, flags, payload).
_Avp = tuple[int, int, bytes]


@dataclass(frozen=True, slots=True)
class FastCcr:
    """What the fast path read from a CCR, beside the request itself.

    ``session_avp`` and ``echo_avps`` are the request's Session-Id and
    CC-Request-Type + CC-Request-Number re-encoded as python-diameter would
    re-encode its AVP objects (same flags, zero padding), for the CCA.
    """

    request: GyRequest
    limits: Limits
    context: str
    destination_host: str | None
    destination_realm: str
    session_avp: bytes
    echo_avps: bytes

    def servable(self, contexts: Sequence[str]) -> bool:
        """False when ``parse_ccr`` would reject (5031 context, 5005 no subscriber)."""
        if not any(self.context.endswith(c) for c in contexts):
            return False
        return bool(self.request.subscribers) or (
            self.request.request_type is not CcRequestType.INITIAL
        )


def fast_decode(data: bytes, limits: Limits) -> Decoded | None:
    """A :class:`Decoded` with ``fast`` set and no AVP objects, or None (not ours)."""
    if len(data) < HEADER_LENGTH:
        return None
    vl, fc, app, hbh, e2e = _MSG.unpack_from(data)
    flags = fc >> 24
    if (
        vl != (VERSION << 24 | len(data))
        or fc & 0xFFFFFF != Command.CREDIT_CONTROL
        or app != APP_CREDIT_CONTROL
        or flags & ~FLAG_RETRANSMIT not in _REQUEST_FLAGS
    ):
        return None
    try:
        fast = _Reader(limits).ccr(data)
    except _Decline:
        return None
    header = Header(VERSION, len(data), flags, Command.CREDIT_CONTROL, app, hbh, e2e)
    return Decoded(header, [], None, data, fast)


def expand(msg: Decoded) -> Decoded:
    """The reference decoding of a fast-path message (AVP objects for the reference builders)."""
    if msg.fast is None:
        return msg
    return decode(msg.raw, msg.fast.limits)


def _encoded(code: int, flags: int, payload: bytes) -> bytes:
    """An AVP as python-diameter re-encodes a decoded one (vendor 0 only here)."""
    n = 8 + len(payload)
    return _HDR.pack(code, flags << 24 | n) + payload + bytes(-n % 4)


def _u32(payload: bytes) -> int:
    if len(payload) != 4:
        raise _DECLINE
    return int(_U32.unpack(payload)[0])


def _i32(payload: bytes) -> int:
    if len(payload) != 4:
        raise _DECLINE
    return int(_I32.unpack(payload)[0])


def _u64(payload: bytes) -> int:
    if len(payload) != 8:
        raise _DECLINE
    return int(_U64.unpack(payload)[0])


def _i64(payload: bytes) -> int:
    if len(payload) != 8:
        raise _DECLINE
    return int(_I64.unpack(payload)[0])


def _enum(payload: bytes, high: int, low: int = 0) -> int:
    value = _i32(payload)
    if not low <= value <= high:
        raise _DECLINE  # the reference answers 5004 (or serves an event)
    return value


def _utf8(payload: bytes) -> str:
    try:
        return payload.decode("utf-8")
    except UnicodeDecodeError:
        raise _DECLINE from None


def _text(payload: bytes) -> str:
    """DiameterIdentity (OctetString in python-diameter): read as ``avps.get_str`` does."""
    return payload.decode("utf-8", errors="replace")


def _once(seen: set[int], key: int) -> None:
    if key in seen:
        raise _DECLINE  # 5009 in the reference, or a duplicate it would read first-only
    seen.add(key)


# Plain ints (IntEnum members are slower to fetch and compare in the loops below).
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
# Unit AVPs of RSU / USU: name in ``Usage`` and fixed size (Unsigned32 / Unsigned64).
_UNIT_SPEC: dict[int, tuple[str, int]] = {
    int(code): (name, 8 if code in _U64_UNITS else 4) for code, name in _UNITS.items()
}
_TARIFF_CHANGES = tuple(TariffChange)


class _Reader:
    __slots__ = ("count", "limits")

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.count = 0

    def walk(self, buf: bytes, pos: int, end: int) -> list[_Avp]:
        """AVP headers of one level; exact lengths and padding, V only with vendor 10415."""
        out: list[_Avp] = []
        append = out.append
        unpack = _HDR.unpack_from
        while pos < end:
            if end - pos < 8:
                raise _DECLINE
            code, flags_len = unpack(buf, pos)
            flags = flags_len >> 24
            length = flags_len & 0xFFFFFF
            if flags == 0x40 or flags == 0:
                nxt = pos + ((length + 3) & ~3)
                if length < 8 or nxt > end:
                    raise _DECLINE
                append((code, flags, buf[pos + 8 : pos + length]))
            elif flags == 0xC0 or flags == 0x80:
                nxt = pos + ((length + 3) & ~3)
                if length < 12 or nxt > end or _U32.unpack_from(buf, pos + 8)[0] != VENDOR_3GPP:
                    raise _DECLINE
                append((code | _TGPP, flags, buf[pos + 12 : pos + length]))
            else:
                raise _DECLINE  # P or reserved bits
            pos = nxt
        self.count += len(out)
        if self.count > self.limits.max_avps:
            raise _DECLINE
        return out

    def group(self, payload: bytes, depth: int) -> list[_Avp]:
        """Members of a grouped AVP found at ``depth`` (0 = command level)."""
        if depth >= self.limits.max_depth:
            raise _DECLINE  # the reference: 5012, grouping too deep
        return self.walk(payload, 0, len(payload))

    # -- command level ----------------------------------------------------------

    def ccr(self, data: bytes) -> FastCcr:
        c = _Command()
        handlers = _COMMAND
        once = _ONCE
        seen = c.seen
        for key, flags, payload in self.walk(data, HEADER_LENGTH, len(data)):
            handler = handlers.get(key)
            if handler is None:
                raise _DECLINE
            if key in once:
                if key in seen:
                    raise _DECLINE  # 5009 in the reference
                seen.add(key)
            handler(self, c, flags, payload)
        if not seen >= _REQUIRED or len(c.mscc) > self.limits.max_mscc:
            raise _DECLINE
        return c.result(self.limits)

    # -- groups -----------------------------------------------------------------

    def subscription(self, payload: bytes) -> Identity:
        members = self.group(payload, 0)
        if len(members) != 2:
            raise _DECLINE
        (k1, _, v1), (k2, _, v2) = members
        if k1 == _SUB_DATA and k2 == _SUB_TYPE:
            k1, v1, k2, v2 = k2, v2, k1, v1
        if k1 != _SUB_TYPE or k2 != _SUB_DATA:
            raise _DECLINE
        return Identity(_IDENTITY_TYPES[_enum(v1, 4)], _utf8(v2))

    def units(self, members: list[_Avp], depth: int, extra: list[_Avp] | None) -> Usage:
        """RSU / USU units; other members go to ``extra`` (None: refused)."""
        values: dict[str, int] = {}
        money_seen = False
        spec = _UNIT_SPEC
        for member in members:
            key, _, value = member
            unit = spec.get(key)
            if unit is not None:
                name, size = unit
                if name in values or len(value) != size:
                    raise _DECLINE
                values[name] = int.from_bytes(value, "big")
            elif key == _CC_MONEY and not money_seen:
                money_seen = True
                money = self.money(value, depth + 1)
                if money is not None:
                    values["money"] = money
            elif extra is None:
                raise _DECLINE
            else:
                extra.append(member)
        return Usage(**values)

    def money(self, payload: bytes, depth: int) -> int | None:
        """CC-Money in micro-units, as ``gy_request._money`` computes it."""
        unit_value: bytes | None = None
        seen: set[int] = set()
        for key, _, value in self.group(payload, depth):
            _once(seen, key)
            if key == _UNIT_VALUE:
                unit_value = value
            elif key == _CURRENCY:
                _u32(value)
            else:
                raise _DECLINE
        if unit_value is None:
            return None
        digits, exponent = 0, 0
        seen.clear()
        for key, _, value in self.group(unit_value, depth + 1):
            _once(seen, key)
            if key == _DIGITS:
                digits = _i64(value)
            elif key == _EXPONENT:
                exponent = _i32(value)
            else:
                raise _DECLINE
        if not -MAX_MONEY_EXPONENT <= exponent <= MAX_MONEY_EXPONENT:
            # 10**exponent for an Exponent near 2**31 takes the process minutes (the
            # reference path too: reported); no real amount needs more than this.
            raise _DECLINE
        return money_micro(digits, exponent)  # the reference's own arithmetic

    def rsu(self, payload: bytes, depth: int) -> Usage:
        return self.units(self.group(payload, depth), depth, None)

    def usu(self, payload: bytes, depth: int, outer_reasons: tuple[int, ...]) -> UsedUnits:
        others: list[_Avp] = []
        usage = self.units(self.group(payload, depth), depth, others)
        change: TariffChange | None = None
        reasons: list[int] = []
        for key, _, value in others:
            if key == REPORTING_REASON:
                reasons.append(_i32(value))
            elif key == _TCU and change is None:
                change = _TARIFF_CHANGES[_enum(value, 2)]
            else:
                raise _DECLINE
        return UsedUnits(usage, change, (*reasons, *outer_reasons))

    def mscc(self, payload: bytes) -> ServiceRequest:
        rating_group: int | None = None
        service_id: int | None = None
        rsu: bytes | None = None
        usus: list[bytes] = []
        reasons: list[int] = []
        for key, _, value in self.group(payload, 0):
            if key == _USU:
                usus.append(value)
            elif key == _RG and rating_group is None:
                rating_group = _u32(value)
            elif key == _RSU and rsu is None:
                rsu = value
            elif key == _SID:
                sid = _u32(value)
                if service_id is None:
                    service_id = sid
            elif key == REPORTING_REASON:
                reasons.append(_i32(value))
            else:
                raise _DECLINE
        outer = tuple(reasons)
        return ServiceRequest(
            ServiceKey(rating_group, service_id),
            self.rsu(rsu, 1) if rsu is not None else None,
            tuple([self.usu(u, 1, outer) for u in usus]),
        )


class _Command:
    """What the command level holds while it is walked."""

    __slots__ = (
        "context",
        "destination_host",
        "destination_realm",
        "echo",
        "mscc",
        "number",
        "origin_state_id",
        "request_type",
        "requested_action",
        "rsu",
        "seen",
        "service_id",
        "session",
        "session_avp",
        "subscribers",
        "termination_cause",
        "user_name",
        "usu",
    )

    def __init__(self) -> None:
        self.seen: set[int] = set()
        self.session = ""
        self.session_avp = b""
        self.context = ""
        self.destination_host: str | None = None
        self.destination_realm = ""
        self.request_type = 0
        self.number = 0
        self.echo: dict[int, bytes] = {}
        self.subscribers: list[Identity] = []
        self.user_name: str | None = None
        self.origin_state_id: int | None = None
        self.service_id: int | None = None
        self.termination_cause: int | None = None
        self.requested_action: int | None = None
        self.rsu: Usage | None = None
        self.usu: list[UsedUnits] = []
        self.mscc: list[ServiceRequest] = []

    def result(self, limits: Limits) -> FastCcr:
        request_type = CcRequestType(self.request_type)
        services = self.mscc or self._command_level(request_type)
        subscribers = self.subscribers
        if not subscribers and self.user_name:
            subscribers = [Identity(IdentityType.NAI, self.user_name)]
        action = self.requested_action
        cause = self.termination_cause
        request = GyRequest(
            session_id=self.session,
            request_type=request_type,
            request_number=self.number,
            subscribers=tuple(subscribers),
            services=tuple(services),
            multiple_services=bool(self.mscc),
            requested_action=EventAction(action)
            if action is not None
            else EventAction.DIRECT_DEBIT,
            termination_cause=(
                TerminationCause.ADMIN if (cause or 1) == 4 else TerminationCause.NORMAL
            ),
            origin_state_id=self.origin_state_id,
        )
        echo = self.echo[AvpCode.CC_REQUEST_TYPE] + self.echo[AvpCode.CC_REQUEST_NUMBER]
        return FastCcr(
            request,
            limits,
            self.context,
            self.destination_host,
            self.destination_realm,
            self.session_avp,
            echo,
        )

    def _command_level(self, request_type: CcRequestType) -> list[ServiceRequest]:
        """As ``gy_request._command_level`` (RFC 4006 §5.1.1)."""
        requested = self.rsu
        if requested is None and request_type is CcRequestType.INITIAL:
            requested = Usage()
        if requested is None and not self.usu and request_type is CcRequestType.TERMINATION:
            return []
        return [ServiceRequest(ServiceKey(None, self.service_id), requested, tuple(self.usu))]


_Handler = Callable[[_Reader, _Command, int, bytes], None]


def _set_session(r: _Reader, c: _Command, flags: int, payload: bytes) -> None:
    c.session = _utf8(payload)
    c.session_avp = _encoded(AvpCode.SESSION_ID, flags, payload)


def _set_context(r: _Reader, c: _Command, flags: int, payload: bytes) -> None:
    c.context = _utf8(payload)


def _set_request_type(r: _Reader, c: _Command, flags: int, payload: bytes) -> None:
    c.request_type = _enum(payload, 3, low=1)  # 4 (event) is not the hot path
    c.echo[AvpCode.CC_REQUEST_TYPE] = _encoded(AvpCode.CC_REQUEST_TYPE, flags, payload)


def _set_number(r: _Reader, c: _Command, flags: int, payload: bytes) -> None:
    c.number = _u32(payload)
    c.echo[AvpCode.CC_REQUEST_NUMBER] = _encoded(AvpCode.CC_REQUEST_NUMBER, flags, payload)


def _set_destination_realm(r: _Reader, c: _Command, flags: int, payload: bytes) -> None:
    c.destination_realm = _text(payload)


def _check_u32(r: _Reader, c: _Command, flags: int, payload: bytes) -> None:
    _u32(payload)


def _ignore(r: _Reader, c: _Command, flags: int, payload: bytes) -> None:
    return None  # DiameterIdentity we do not read (Origin-Host/Realm: the CER's count)


def _set_destination_host(r: _Reader, c: _Command, flags: int, payload: bytes) -> None:
    c.destination_host = _text(payload)


def _set_user_name(r: _Reader, c: _Command, flags: int, payload: bytes) -> None:
    c.user_name = _utf8(payload)


def _set_origin_state_id(r: _Reader, c: _Command, flags: int, payload: bytes) -> None:
    c.origin_state_id = _u32(payload)


def _check_time(r: _Reader, c: _Command, flags: int, payload: bytes) -> None:
    _u32(payload)  # Event-Timestamp: fixed size only, never read


def _set_service_id(r: _Reader, c: _Command, flags: int, payload: bytes) -> None:
    c.service_id = _u32(payload)


def _set_termination_cause(r: _Reader, c: _Command, flags: int, payload: bytes) -> None:
    c.termination_cause = _i32(payload)


def _set_requested_action(r: _Reader, c: _Command, flags: int, payload: bytes) -> None:
    c.requested_action = _enum(payload, 3)


def _check_msi(r: _Reader, c: _Command, flags: int, payload: bytes) -> None:
    _enum(payload, 1)


def _set_rsu(r: _Reader, c: _Command, flags: int, payload: bytes) -> None:
    c.rsu = r.rsu(payload, 0)


def _add_subscription(r: _Reader, c: _Command, flags: int, payload: bytes) -> None:
    c.subscribers.append(r.subscription(payload))


def _add_usu(r: _Reader, c: _Command, flags: int, payload: bytes) -> None:
    c.usu.append(r.usu(payload, 0, ()))


def _add_mscc(r: _Reader, c: _Command, flags: int, payload: bytes) -> None:
    c.mscc.append(r.mscc(payload))


def _route_record(r: _Reader, c: _Command, flags: int, payload: bytes) -> None:
    return None


A = AvpCode
_REQUIRED = frozenset(
    int(code)
    for code in {
        A.SESSION_ID,
        A.ORIGIN_HOST,
        A.ORIGIN_REALM,
        A.DESTINATION_REALM,
        A.AUTH_APPLICATION_ID,
        A.SERVICE_CONTEXT_ID,
        A.CC_REQUEST_TYPE,
        A.CC_REQUEST_NUMBER,
    }
)
# Command-level AVPs allowed at most once (5009 in the reference when repeated).
_ONCE = _REQUIRED | {
    int(code)
    for code in (
        A.DESTINATION_HOST,
        A.USER_NAME,
        A.ORIGIN_STATE_ID,
        A.EVENT_TIMESTAMP,
        A.SERVICE_IDENTIFIER,
        A.TERMINATION_CAUSE,
        A.REQUESTED_ACTION,
        A.MULTIPLE_SERVICES_INDICATOR,
        A.REQUESTED_SERVICE_UNIT,
    )
}
_COMMAND: dict[int, _Handler] = {
    int(code): handler
    for code, handler in {
        A.SESSION_ID: _set_session,
        A.ORIGIN_HOST: _ignore,
        A.ORIGIN_REALM: _ignore,
        A.DESTINATION_REALM: _set_destination_realm,
        A.AUTH_APPLICATION_ID: _check_u32,
        A.SERVICE_CONTEXT_ID: _set_context,
        A.CC_REQUEST_TYPE: _set_request_type,
        A.CC_REQUEST_NUMBER: _set_number,
        A.DESTINATION_HOST: _set_destination_host,
        A.USER_NAME: _set_user_name,
        A.ORIGIN_STATE_ID: _set_origin_state_id,
        A.EVENT_TIMESTAMP: _check_time,
        A.SERVICE_IDENTIFIER: _set_service_id,
        A.TERMINATION_CAUSE: _set_termination_cause,
        A.REQUESTED_ACTION: _set_requested_action,
        A.MULTIPLE_SERVICES_INDICATOR: _check_msi,
        A.REQUESTED_SERVICE_UNIT: _set_rsu,
        A.SUBSCRIPTION_ID: _add_subscription,
        A.USED_SERVICE_UNIT: _add_usu,
        A.MULTIPLE_SERVICES_CREDIT_CONTROL: _add_mscc,
        A.ROUTE_RECORD: _route_record,
    }.items()
}
