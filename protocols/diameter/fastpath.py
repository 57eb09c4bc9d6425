"""Fast path for Gy CCR decode: struct straight to a :class:`FastCcr` for the hot shapes.

RFC 6733 §3 (header), §4.1 (AVP header), §4.4 (Grouped); RFC 4006 §3.1 (CCR),
§8.16-§8.19 (MSCC, RSU, USU); TS 32.299 §7.2 (Reporting-Reason).

python-diameter, through :func:`protocols.diameter.codec.decode` and
:func:`protocols.diameter.gy_parse.parse_ccr`, stays the reference. This
module only says "mine" (a :class:`FastCcr` whose ``request`` equals what the
reference maps) or "not mine" (``None``: the caller runs the reference path
unchanged). It never builds an error answer. It says "mine" only for a
CCR-I/U/T that the walk (:mod:`protocols.diameter.fastpath_walk`, the
grammar's whitelist) accepts, with exact header flags, enumerations in range
and within the configured limits: exactly the messages for which the guarded
decoder finds no problem. Anything else is not ours.

Two steps: the walk checks the structure of every level from the AVP headers
alone and notes where each AVP is (a *shape*, no per-AVP objects); then the
values are read at those offsets and checked (enumerations, UTF-8, the
CC-Money exponent) into the ``ocs.charging`` values, exactly as
:mod:`protocols.diameter.gy_parse` maps them. A shape depends on the AVP
headers only, so it is kept per layout: the next message with the same length
and the same header words (code, flags, length, vendor; compared in one
``struct`` unpack) skips the walk. Gateways send the same layout over and over
(only values change), so most CCRs skip it.

Recurring immutable values (a rating group's ``ServiceKey``, a subscriber's
``Identity``, the empty RSU) are shared from small bounded caches: building a
frozen dataclass costs about 1 µs, more than reading its AVPs. :class:`FastCcr`
is a plain slotted dataclass for the same reason (STYLE.md 8).

A request is either a :class:`FastCcr` or a reference :class:`Decoded`
(:data:`Request`); :func:`reference` is the one place a fast request is
decoded again by python-diameter, for the reference answer builders.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from ocs.vocabulary.types import (
    EventAction,
    Identity,
    IdentityType,
    ServiceKey,
    ServiceRequest,
    TariffChange,
    Usage,
    UsedUnits,
)
from protocols.diameter import grammar
from protocols.diameter.codec import Decoded, decode
from protocols.diameter.constants import (
    APP_CREDIT_CONTROL,
    FLAG_PROXYABLE,
    FLAG_REQUEST,
    FLAG_RETRANSMIT,
    HEADER_LENGTH,
    VERSION,
    AvpCode,
    CcRequestType,
    Command,
)
from protocols.diameter.fastpath_walk import (
    CCR,
    HDR,
    I32,
    I64,
    U32,
    U64,
    Ccr,
    Decline,
    Money,
    Mscc,
    Units,
    Walker,
)
from protocols.diameter.gy_request import (
    IDENTITY_TYPES,
    MAX_MONEY_EXPONENT,
    GyRequest,
    money_micro,
    termination_cause,
)
from protocols.diameter.message import Header, Limits

_MSG = struct.Struct(">IIIII").unpack_from
_REQUEST_FLAGS = (FLAG_REQUEST, FLAG_REQUEST | FLAG_PROXYABLE)
_ACTIONS = tuple(EventAction)  # Requested-Action 0..3, in value order
_TARIFF_CHANGES = tuple(TariffChange)  # Tariff-Change-Usage 0..2, in value order
_SUB_TYPE = int(AvpCode.SUBSCRIPTION_ID_TYPE)  # a plain int: faster to compare than the enum


def _allowed(code: AvpCode) -> frozenset[int]:
    return grammar.ENUMERATIONS[(int(code), 0)]


# The enumerations the reference answers 5004 outside of (grammar.ENUMERATIONS). The
# fast path's CC-Request-Types are those of a session: an EVENT is the reference's.
_SESSION_TYPES = {
    int(t): t
    for t in CcRequestType
    if int(t) in _allowed(AvpCode.CC_REQUEST_TYPE) and t is not CcRequestType.EVENT
}
_ACTION_VALUES = _allowed(AvpCode.REQUESTED_ACTION)
_MSI_VALUES = _allowed(AvpCode.MULTIPLE_SERVICES_INDICATOR)
_TCU_VALUES = _allowed(AvpCode.TARIFF_CHANGE_USAGE)
_IDENTITY_VALUES = _allowed(AvpCode.SUBSCRIPTION_ID_TYPE)


@dataclass(slots=True)
class FastCcr:
    """A CCR-I/U/T as the fast path read it: its header, the request in ``ocs.charging``
    values, what the servability check needs, and what the CCA echoes (read-only; not
    frozen only because a frozen dataclass costs four times as much to build per CCR).

    ``session_avp`` and ``echo_avps`` are the request's Session-Id and
    CC-Request-Type + CC-Request-Number re-encoded as python-diameter would
    re-encode its AVP objects (same flags, zero padding), for the CCA.
    """

    header: Header
    request: GyRequest
    context: str
    destination_host: str | None
    destination_realm: str
    session_avp: bytes
    echo_avps: bytes
    limits: Limits = field(repr=False)
    raw: bytes = field(repr=False)


Request = FastCcr | Decoded  # an application request, as one of the two decoders read it


def reference(request: Request) -> Decoded:
    """The reference decoding of a request: the one place where a fast-path request is
    decoded again by python-diameter (for an error answer, or a CCA the fast encoder
    leaves to the reference builders)."""
    if isinstance(request, Decoded):
        return request
    return decode(request.raw, request.limits)


def fast_decode(data: bytes, limits: Limits) -> FastCcr | None:
    """The fast path's reading of a CCR-I/U/T, or None (not ours)."""
    if len(data) < HEADER_LENGTH:
        return None
    vl, fc, app, hbh, e2e = _MSG(data)
    flags = fc >> 24
    if (
        vl != (VERSION << 24 | len(data))
        or fc & 0xFFFFFF != Command.CREDIT_CONTROL
        or app != APP_CREDIT_CONTROL
        or flags & ~FLAG_RETRANSMIT not in _REQUEST_FLAGS
    ):
        return None
    try:
        shape = _shape(data, limits)
        header = Header(VERSION, len(data), flags, Command.CREDIT_CONTROL, app, hbh, e2e)
        return _read(data, shape, header, limits)
    except Decline:
        return None


def _shape(data: bytes, limits: Limits) -> Ccr:
    """The shape of a message with these AVP headers if one is known, else walk it."""
    size = len(data)
    layouts = _LAYOUTS.get(size)
    if layouts is not None:
        for layout in layouts:
            if layout.limits is limits and layout.check(data) == layout.expected:
                return layout.shape
    walker = Walker(limits.max_depth, limits.max_avps)
    shape = Ccr(0)
    walker.walk(data, CCR, shape, HEADER_LENGTH, size, 0)
    if len(shape.msccs) > limits.max_mscc:
        raise Decline  # the reference: 5012
    _remember(data, limits, shape, walker.heads)
    return shape


class _Layout:
    """A shape and how to recognise a message with the same AVP headers: one ``unpack``
    of every header it holds (code, flags, length and vendor words) compared as a tuple."""

    __slots__ = ("check", "expected", "heads", "limits", "shape")

    def __init__(self, data: bytes, limits: Limits, shape: Ccr, heads: list[tuple[int, int]]):
        fmt, cur = [">"], 0
        for pos, size in sorted(heads):
            fmt.append(f"{pos - cur}x{size // 4}I")
            cur = pos + size
        self.check = struct.Struct("".join(fmt)).unpack_from
        self.expected = self.check(data)
        self.limits = limits
        self.shape = shape
        self.heads = len(heads)


_LAYOUTS: dict[int, list[_Layout]] = {}  # by message length, newest first
_LAYOUTS_PER_LENGTH = 4
_LAYOUT_LENGTHS = 256  # emptied when more lengths are seen (bounded whatever peers send)
_LAYOUT_HEADS = 256  # longer messages are walked every time
# Emptied past this many AVP headers held in all layouts: a header costs about 220
# octets (its offsets, the unpack format and the expected words; tracemalloc), so about
# 3.6 MB in all, whatever layouts peers send. A gateway's layouts of 30-60 headers fit
# by hundreds.
_LAYOUT_HEADS_HELD = 16_384
_held = [0]  # AVP headers held in _LAYOUTS
# Lengths walked once: a layout costs about a walk to build, so it is built the second
# time a length is walked (a gateway's next CCR), not for one-off shapes.
_WALKED: set[int] = set()


def forget_layouts() -> None:
    """Drop every known layout (measurements of the walk; the memory bound)."""
    _LAYOUTS.clear()
    _WALKED.clear()
    _held[0] = 0


def _remember(data: bytes, limits: Limits, shape: Ccr, heads: list[tuple[int, int]]) -> None:
    count = len(heads)
    if count > _LAYOUT_HEADS:
        return
    if len(data) not in _WALKED:
        if len(_WALKED) >= _LAYOUT_LENGTHS:
            _WALKED.clear()
        _WALKED.add(len(data))
        return
    _WALKED.discard(len(data))
    if _held[0] + count > _LAYOUT_HEADS_HELD:
        forget_layouts()
    layouts = _LAYOUTS.get(len(data))
    if layouts is None:
        if len(_LAYOUTS) >= _LAYOUT_LENGTHS:
            forget_layouts()
        layouts = _LAYOUTS[len(data)] = []
    layouts.insert(0, _Layout(data, limits, shape, heads))
    _held[0] += count
    for gone in layouts[_LAYOUTS_PER_LENGTH:]:
        _held[0] -= gone.heads
    del layouts[_LAYOUTS_PER_LENGTH:]


# -- values -------------------------------------------------------------------------

_CACHE_ENTRIES = 4096  # per cache; emptied when full (bounded whatever the peers send)
# Longer Subscription-Ids are read but not kept: real ones are a few dozen octets, and
# 4096 entries of up to a message's size each would be a gigabyte.
_IDENTITY_MAX = 256
_KEYS: dict[tuple[int | None, int | None], ServiceKey] = {}
_IDENTITIES: dict[bytes, Identity] = {}
_EMPTY_USAGE = Usage()


def _payload(data: bytes, pos: int) -> bytes:
    return data[pos + 8 : pos + (U32(data, pos + 4)[0] & 0xFFFFFF)]


def _utf8(data: bytes, pos: int) -> str:
    try:
        return _payload(data, pos).decode("utf-8")
    except UnicodeDecodeError:
        raise Decline from None


def _as_is(data: bytes, pos: int) -> bytes:
    """A vendor-0 AVP as python-diameter re-encodes it: same header, zero padding."""
    length = U32(data, pos + 4)[0] & 0xFFFFFF
    return data[pos : pos + length] + bytes(-length % 4)


def _enum(data: bytes, pos: int, allowed: frozenset[int]) -> int:
    value = int(I32(data, pos + 8)[0])
    if value not in allowed:
        raise Decline  # the reference answers 5004
    return value


def _read(data: bytes, shape: Ccr, header: Header, limits: Limits) -> FastCcr:
    """The values at the shape's offsets, mapped as ``gy_parse.parse_ccr`` maps them."""
    request_type = _SESSION_TYPES.get(I32(data, shape.request_type + 8)[0])
    if request_type is None:
        raise Decline  # an EVENT (the reference serves it) or 5004
    if shape.msi:
        _enum(data, shape.msi, _MSI_VALUES)
    at = shape.action
    action = _ACTIONS[_enum(data, at, _ACTION_VALUES)] if at else EventAction.DIRECT_DEBIT
    at = shape.termination_cause
    cause = termination_cause(I32(data, at + 8)[0] if at else None)
    at = shape.origin_state_id
    state_id = int(U32(data, at + 8)[0]) if at else None
    subscribers = [read_identity(data, sub.at) for sub in shape.subscriptions]
    at = shape.user_name
    if at:
        user = _utf8(data, at)  # read (and checked) even beside Subscription-Ids
        if not subscribers and user:
            subscribers = [Identity(IdentityType.NAI, user)]
    services = [read_mscc(data, m) for m in shape.msccs]
    command_level: list[ServiceRequest] = []
    if not services or shape.usus or shape.rsu is not None:
        command_level = _command_level(data, shape, request_type)  # (its values checked)
    request = GyRequest(
        session_id=_utf8(data, shape.session),
        request_type=request_type,
        request_number=int(U32(data, shape.request_number + 8)[0]),
        subscribers=tuple(subscribers),
        services=tuple(services or command_level),
        multiple_services=bool(services),
        requested_action=action,
        termination_cause=cause,
        origin_state_id=state_id,
    )
    at = shape.destination_host
    number = shape.request_number
    return FastCcr(
        header,
        request,
        _utf8(data, shape.context),
        _payload(data, at).decode("utf-8", errors="replace") if at else None,
        _payload(data, shape.destination_realm).decode("utf-8", errors="replace"),
        _as_is(data, shape.session),
        data[shape.request_type : shape.request_type + 12] + data[number : number + 12],
        limits,
        data,
    )


def _command_level(data: bytes, shape: Ccr, request_type: CcRequestType) -> list[ServiceRequest]:
    """As ``gy_parse._command_level`` (RFC 4006 §5.1.1); read even beside MSCC."""
    used: list[UsedUnits] = [read_used(data, u, ()) for u in shape.usus]
    requested: Usage | None = read_usage(data, shape.rsu) if shape.rsu is not None else None
    if requested is None and request_type is CcRequestType.INITIAL:
        requested = Usage()
    if requested is None and not used and request_type is CcRequestType.TERMINATION:
        return []
    at = shape.service_id
    service_id = int(U32(data, at + 8)[0]) if at else None
    return [ServiceRequest(service_key(None, service_id), requested, tuple(used))]


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
    """The Identity of a Subscription-Id whose shape the walk checked."""
    payload = data[at + 8 : at + (U32(data, at + 4)[0] & 0xFFFFFF)]
    identity = _IDENTITIES.get(payload)
    if identity is None:
        code, flags_len = HDR(payload, 0)
        second = ((flags_len & 0xFFFFFF) + 3) & ~3
        type_at, data_at = (0, second) if code == _SUB_TYPE else (second, 0)
        kind = I32(payload, type_at + 8)[0]
        if kind not in _IDENTITY_VALUES:
            raise Decline  # the reference: 5004
        data_end = data_at + (U32(payload, data_at + 4)[0] & 0xFFFFFF)
        try:
            value = payload[data_at + 8 : data_end].decode("utf-8")
        except UnicodeDecodeError:
            raise Decline from None
        identity = Identity(IDENTITY_TYPES[kind], value)
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
        change = _TARIFF_CHANGES[_enum(data, shape.tcu, _TCU_VALUES)]
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
    """CC-Money in micro-units, as ``gy_parse.money_of`` computes it."""
    unit_value = shape.unit_value
    if unit_value is None:
        return None
    digits = int(I64(data, unit_value.digits + 8)[0]) if unit_value.digits else 0
    exponent = int(I32(data, unit_value.exponent + 8)[0]) if unit_value.exponent else 0
    if not -MAX_MONEY_EXPONENT <= exponent <= MAX_MONEY_EXPONENT:
        # 10**exponent for an Exponent near 2**31 takes the process minutes (the
        # reference refuses it with 5004); no real amount needs more than this.
        raise Decline
    return money_micro(digits, exponent)  # the reference's own arithmetic
