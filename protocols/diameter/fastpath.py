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

Two steps: the walk checks the structure of every level from the AVP headers
alone and notes where each AVP is (a *shape*, no per-AVP objects); then the
values are read at those offsets and checked (enumerations, UTF-8). A shape
depends on the AVP headers only, so it is kept per layout: the next message
with the same length and the same header words (code, flags, length, vendor;
compared in one ``struct`` unpack) skips the walk. Gateways send the same
layout over and over (only values change), so most CCRs skip it.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass

from ocs.vocabulary.types import (
    EventAction,
    Identity,
    IdentityType,
    ServiceRequest,
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
    VERSION,
    AvpCode,
    CcRequestType,
    Command,
)
from protocols.diameter.fastpath_groups import (
    HDR,
    I32,
    U32,
    Decline,
    Mscc,
    Units,
    Walker,
    read_identity,
    read_mscc,
    read_usage,
    read_used,
    service_key,
)
from protocols.diameter.gy_request import GyRequest

_MSG = struct.Struct(">IIIII").unpack_from
_REQUEST_FLAGS = (FLAG_REQUEST, FLAG_REQUEST | FLAG_PROXYABLE)
_REQUEST_TYPES = (
    CcRequestType.INITIAL,  # never used: 0 is declined before the lookup
    CcRequestType.INITIAL,
    CcRequestType.UPDATE,
    CcRequestType.TERMINATION,
)
_ACTIONS = tuple(EventAction)  # Requested-Action 0..3, in value order
_MSCC = int(AvpCode.MULTIPLE_SERVICES_CREDIT_CONTROL)
_SUBSCRIPTION = int(AvpCode.SUBSCRIPTION_ID)
_USU = int(AvpCode.USED_SERVICE_UNIT)
_ROUTE_RECORD = int(AvpCode.ROUTE_RECORD)
A = AvpCode
_SESSION = int(A.SESSION_ID)
_CONTEXT = int(A.SERVICE_CONTEXT_ID)
_TYPE = int(A.CC_REQUEST_TYPE)
_NUMBER = int(A.CC_REQUEST_NUMBER)
_REALM = int(A.DESTINATION_REALM)
_HOST = int(A.DESTINATION_HOST)
_USER = int(A.USER_NAME)
_STATE = int(A.ORIGIN_STATE_ID)
_SERVICE_ID = int(A.SERVICE_IDENTIFIER)
_CAUSE = int(A.TERMINATION_CAUSE)
_ACTION = int(A.REQUESTED_ACTION)
_MSI = int(A.MULTIPLE_SERVICES_INDICATOR)
_RSU = int(A.REQUESTED_SERVICE_UNIT)
_REQUIRED = frozenset(
    int(code)
    for code in (
        A.SESSION_ID,
        A.ORIGIN_HOST,
        A.ORIGIN_REALM,
        A.DESTINATION_REALM,
        A.AUTH_APPLICATION_ID,
        A.SERVICE_CONTEXT_ID,
        A.CC_REQUEST_TYPE,
        A.CC_REQUEST_NUMBER,
    )
)
# Command-level AVPs allowed at most once (5009 in the reference when repeated). Those
# not read below (Origin-Host/Realm: the CER's count; Auth-Application-Id and
# Event-Timestamp: fixed size only) are still checked.
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
# Once-AVPs whose payload is a fixed 4 octets (Unsigned32 / Integer32 / Enumerated / Time).
_FIXED_4 = frozenset(
    int(code)
    for code in (
        A.AUTH_APPLICATION_ID,
        A.CC_REQUEST_TYPE,
        A.CC_REQUEST_NUMBER,
        A.ORIGIN_STATE_ID,
        A.EVENT_TIMESTAMP,
        A.SERVICE_IDENTIFIER,
        A.TERMINATION_CAUSE,
        A.REQUESTED_ACTION,
        A.MULTIPLE_SERVICES_INDICATOR,
    )
)


@dataclass(slots=True)
class FastCcr:
    """What the fast path read from a CCR, beside the request itself (read-only; not
    frozen only because a frozen dataclass costs four times as much to build per CCR).

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
        if not self.context.endswith(tuple(contexts)):
            return False
        return bool(self.request.subscribers) or (
            self.request.request_type is not CcRequestType.INITIAL
        )


def fast_decode(data: bytes, limits: Limits) -> Decoded | None:
    """A :class:`Decoded` with ``fast`` set and no AVP objects, or None (not ours)."""
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
        fast = _ccr(data, limits)
    except Decline:
        return None
    header = Header(VERSION, len(data), flags, Command.CREDIT_CONTROL, app, hbh, e2e)
    return Decoded(header, [], None, data, fast)


def expand(msg: Decoded) -> Decoded:
    """The reference decoding of a fast-path message (AVP objects for the reference builders)."""
    if msg.fast is None:
        return msg
    return decode(msg.raw, msg.fast.limits)


def _ccr(data: bytes, limits: Limits) -> FastCcr:
    """The shape of a message with these AVP headers if one is known, else walk it."""
    size = len(data)
    layouts = _LAYOUTS.get(size)
    if layouts is not None:
        for layout in layouts:
            if layout.limits is limits and layout.check(data) == layout.expected:
                return _read(data, layout.shape, limits)
    shape = _walk(data, limits)
    _remember(data, limits, shape)
    return _read(data, shape, limits)


class _Shape:
    """Where the AVPs of one CCR are (offsets of their headers; 0: absent)."""

    __slots__ = ("heads", "msccs", "once", "rsu", "subscriptions", "usus")

    def __init__(self, once: dict[int, int], walker: Walker) -> None:
        self.once = once
        self.heads = walker.heads
        self.subscriptions: list[int] = []
        self.msccs: list[Mscc] = []
        self.usus: list[Units] = []
        self.rsu: Units | None = None


def _walk(data: bytes, limits: Limits) -> _Shape:
    """Check the structure of every level (headers only); the values are read later."""
    once: dict[int, int] = {}
    msccs: list[int] = []
    subscriptions: list[int] = []
    usus: list[int] = []
    walker = Walker(limits.max_depth, limits.max_avps)
    heads = walker.heads
    pos, end = HEADER_LENGTH, len(data)
    while pos < end:
        if end - pos < 8:
            raise Decline
        code, flags_len = HDR(data, pos)
        length = flags_len & 0xFFFFFF
        nxt = pos + ((length + 3) & ~3)
        if length < 8 or nxt > end or (flags_len >> 24) not in (0x40, 0):
            raise Decline  # V (no vendor AVP at command level is ours), P or reserved bits
        heads.append((pos, 8))
        if code in _ONCE:
            if code in once:
                raise Decline  # 5009 in the reference
            if code in _FIXED_4 and length != 12:
                raise Decline
            once[code] = pos
        elif code == _MSCC:
            msccs.append(pos)
        elif code == _SUBSCRIPTION:
            subscriptions.append(pos)
        elif code == _USU:
            usus.append(pos)
        elif code != _ROUTE_RECORD:
            raise Decline  # not on the whitelist
        pos = nxt
    if not once.keys() >= _REQUIRED or len(msccs) > limits.max_mscc:
        raise Decline
    walker.counted(len(heads))
    shape = _Shape(once, walker)
    shape.subscriptions = [walker.subscription(data, at) for at in subscriptions]
    shape.msccs = [walker.mscc(data, at) for at in msccs]
    shape.usus = [walker.units(data, at, 0, True) for at in usus]
    at = once.get(_RSU)
    shape.rsu = walker.units(data, at, 0, False) if at is not None else None
    return shape


class _Layout:
    """A shape and how to recognise a message with the same AVP headers: one ``unpack``
    of every header it holds (code, flags, length and vendor words) compared as a tuple."""

    __slots__ = ("check", "expected", "limits", "shape")

    def __init__(self, data: bytes, limits: Limits, shape: _Shape) -> None:
        fmt, cur = [">"], 0
        for pos, size in sorted(shape.heads):
            fmt.append(f"{pos - cur}x{size // 4}I")
            cur = pos + size
        self.check = struct.Struct("".join(fmt)).unpack_from
        self.expected = self.check(data)
        self.limits = limits
        self.shape = shape


_LAYOUTS: dict[int, list[_Layout]] = {}  # by message length, newest first
_LAYOUTS_PER_LENGTH = 4
_LAYOUT_LENGTHS = 256  # emptied when more lengths are seen (bounded whatever peers send)
_LAYOUT_HEADS = 256  # longer messages are walked every time
# Emptied past this many AVP headers held in all layouts: a header costs about 220
# octets (its offsets, the unpack format and the expected words; tracemalloc), so about
# 3.6 MB in all, whatever layouts peers send (issue 13 item 5). A gateway's layouts of
# 30-60 headers fit by hundreds.
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


def _remember(data: bytes, limits: Limits, shape: _Shape) -> None:
    heads = len(shape.heads)
    if heads > _LAYOUT_HEADS:
        return
    if len(data) not in _WALKED:
        if len(_WALKED) >= _LAYOUT_LENGTHS:
            _WALKED.clear()
        _WALKED.add(len(data))
        return
    _WALKED.discard(len(data))
    if _held[0] + heads > _LAYOUT_HEADS_HELD:
        forget_layouts()
    layouts = _LAYOUTS.get(len(data))
    if layouts is None:
        if len(_LAYOUTS) >= _LAYOUT_LENGTHS:
            forget_layouts()
        layouts = _LAYOUTS[len(data)] = []
    layouts.insert(0, _Layout(data, limits, shape))
    _held[0] += heads
    for gone in layouts[_LAYOUTS_PER_LENGTH:]:
        _held[0] -= len(gone.shape.heads)
    del layouts[_LAYOUTS_PER_LENGTH:]


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


def _enum(data: bytes, pos: int, high: int, low: int = 0) -> int:
    value = int(I32(data, pos + 8)[0])
    if not low <= value <= high:
        raise Decline  # the reference answers 5004 (or serves an event)
    return value


def _read(data: bytes, shape: _Shape, limits: Limits) -> FastCcr:
    """The values at the shape's offsets, mapped as ``parse_ccr`` maps them."""
    once = shape.once
    get = once.get
    request_type = _REQUEST_TYPES[_enum(data, once[_TYPE], 3, low=1)]  # 4: not ours
    at = get(_MSI)
    if at is not None:
        _enum(data, at, 1)
    at = get(_ACTION)
    action = _ACTIONS[_enum(data, at, 3)] if at is not None else EventAction.DIRECT_DEBIT
    at = get(_CAUSE)
    cause = TerminationCause.NORMAL
    if at is not None and I32(data, at + 8)[0] == 4:
        cause = TerminationCause.ADMIN
    at = get(_STATE)
    state_id = None if at is None else int(U32(data, at + 8)[0])
    subscribers = [read_identity(data, at) for at in shape.subscriptions]
    at = get(_USER)
    if at is not None:
        user = _utf8(data, at)  # read (and checked) even beside Subscription-Ids
        if not subscribers and user:
            subscribers = [Identity(IdentityType.NAI, user)]
    services = [read_mscc(data, m) for m in shape.msccs]
    command_level: list[ServiceRequest] = []
    if not services or shape.usus or shape.rsu is not None:
        command_level = _command_level(data, shape, request_type)  # (its values checked)
    request = GyRequest(
        session_id=_utf8(data, once[_SESSION]),
        request_type=request_type,
        request_number=int(U32(data, once[_NUMBER] + 8)[0]),
        subscribers=tuple(subscribers),
        services=tuple(services or command_level),
        multiple_services=bool(services),
        requested_action=action,
        termination_cause=cause,
        origin_state_id=state_id,
    )
    at = get(_HOST)
    return FastCcr(
        request,
        limits,
        _utf8(data, once[_CONTEXT]),
        None if at is None else _payload(data, at).decode("utf-8", errors="replace"),
        _payload(data, once[_REALM]).decode("utf-8", errors="replace"),
        _as_is(data, once[_SESSION]),
        data[once[_TYPE] : once[_TYPE] + 12] + data[once[_NUMBER] : once[_NUMBER] + 12],
    )


def _command_level(data: bytes, shape: _Shape, request_type: CcRequestType) -> list[ServiceRequest]:
    """As ``gy_request._command_level`` (RFC 4006 §5.1.1); read even beside MSCC."""
    used: list[UsedUnits] = [read_used(data, u, ()) for u in shape.usus]
    requested: Usage | None = read_usage(data, shape.rsu) if shape.rsu is not None else None
    if requested is None and request_type is CcRequestType.INITIAL:
        requested = Usage()
    if requested is None and not used and request_type is CcRequestType.TERMINATION:
        return []
    at = shape.once.get(_SERVICE_ID)
    service_id = None if at is None else int(U32(data, at + 8)[0])
    return [ServiceRequest(service_key(None, service_id), requested, tuple(used))]
