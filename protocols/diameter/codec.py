"""The one guarded decoder: message bytes -> header + python-diameter AVPs + a Problem.

RFC 6733 §3 (header), §4.1 (AVP header), §4.4 (Grouped), §7.1.5 / §7.5
(permanent failures and Failed-AVP). python-diameter is the codec (its AVP
classes and dictionary); it is lenient about lengths, so the walk below checks
every AVP header and fixed-size payload before building its AVP object. Every
failure becomes data, a :class:`Problem` with the Result-Code and Failed-AVP to
answer, never an exception: the traffic layer answers the problem before any
application code runs (as Erlang/OTP diameter does).

Order of checks: header (5011 version, 3008 bits, 3007 application, 3001
command), then the AVP walk (5014 lengths, 3009 bits, 5001 unknown M-bit, 5004
values, 5012 depth/count limits, grouped grammars), then the command grammar
(5008, 5009, 5005) and the MSCC count limit (5012).
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass, field

from diameter.message.avp import Avp, AvpGrouped
from diameter.message.avp.avp import (
    AvpAddress,
    AvpFloat32,
    AvpFloat64,
    AvpInteger32,
    AvpInteger64,
    AvpTime,
    AvpUnsigned32,
    AvpUnsigned64,
    AvpUtf8String,
    get_avp_dictionary_entry,
)

from protocols.diameter import grammar
from protocols.diameter.constants import (
    APP_COMMON,
    APP_CREDIT_CONTROL,
    AVP_FLAG_MANDATORY,
    AVP_FLAG_VENDOR,
    HEADER_LENGTH,
    VERSION,
    AvpCode,
    Command,
    ResultCode,
)
from protocols.diameter.message import DEFAULT_LIMITS, Header, Limits

_FIXED_SIZE: dict[type[Avp], int] = {
    AvpUnsigned32: 4,
    AvpInteger32: 4,
    AvpFloat32: 4,
    AvpTime: 4,
    AvpUnsigned64: 8,
    AvpInteger64: 8,
    AvpFloat64: 8,
}
_ADDRESS_SIZE = {1: 6, 2: 18}  # family 1 IPv4, 2 IPv6: 2 octets of family + address
_BASE_COMMANDS = frozenset(
    {Command.CAPABILITIES_EXCHANGE, Command.DEVICE_WATCHDOG, Command.DISCONNECT_PEER}
)
_NOT_PROXYABLE = _BASE_COMMANDS  # RFC 6733 §5: CER/DWR/DPR never carry P


@dataclass(frozen=True, slots=True)
class Problem:
    """Why a message cannot be served, as the answer must say it."""

    result_code: ResultCode
    failed_avps: tuple[Avp, ...] = ()
    detail: str = ""


@dataclass(slots=True)
class Decoded:
    """A decoded message. ``avps`` is as much as could be read, even with a problem."""

    header: Header
    avps: list[Avp]
    problem: Problem | None
    raw: bytes = field(repr=False, default=b"")


class _Fail(Exception):
    def __init__(self, problem: Problem) -> None:
        super().__init__(problem.detail)
        self.problem = problem


def decode(data: bytes, limits: Limits = DEFAULT_LIMITS) -> Decoded:
    """Decode one framed message. Never raises; failures are in ``Decoded.problem``."""
    if len(data) < HEADER_LENGTH:
        padded = data + bytes(HEADER_LENGTH - len(data))
        short = Problem(ResultCode.INVALID_MESSAGE_LENGTH, detail="short header")
        return Decoded(Header.parse(padded), [], short, data)
    header = Header.parse(data)
    avps: list[Avp] = []
    problem = _header_problem(header, len(data))
    try:
        walker = _Walker(limits, skip_mandatory_check=not header.is_request)
        walker.walk(data, HEADER_LENGTH, len(data), 0, (), avps)
        if problem is None and header.is_request:
            problem = _message_problem(header, avps, limits)
    except _Fail as fail:
        problem = problem or fail.problem
    except Exception as exc:  # python-diameter raising something unforeseen: still an answer
        problem = problem or Problem(ResultCode.UNABLE_TO_COMPLY, detail=f"decoder: {exc!r}")
    return Decoded(header, avps, problem, data)


def _header_problem(header: Header, size: int) -> Problem | None:
    if header.length != size:
        return Problem(ResultCode.INVALID_MESSAGE_LENGTH, detail="length != octets received")
    if header.version != VERSION:
        return Problem(ResultCode.UNSUPPORTED_VERSION, detail=f"version {header.version}")
    if not header.is_request:
        return None
    if header.is_error:
        return Problem(ResultCode.INVALID_HDR_BITS, detail="E bit set in a request")
    if header.command_code in _NOT_PROXYABLE and header.is_proxyable:
        return Problem(ResultCode.INVALID_HDR_BITS, detail="P bit set on a base command")
    if header.application_id not in (APP_COMMON, APP_CREDIT_CONTROL):
        return Problem(ResultCode.APPLICATION_UNSUPPORTED, detail=f"app {header.application_id}")
    if (header.command_code, header.application_id) not in grammar.REQUESTS:
        return Problem(ResultCode.COMMAND_UNSUPPORTED, detail=f"command {header.command_code}")
    return None


def _message_problem(header: Header, avps: list[Avp], limits: Limits) -> Problem | None:
    rules = grammar.REQUESTS[(header.command_code, header.application_id)]
    mscc = [
        a for a in avps if a.code == AvpCode.MULTIPLE_SERVICES_CREDIT_CONTROL and not a.vendor_id
    ]
    if len(mscc) > limits.max_mscc:
        return Problem(ResultCode.UNABLE_TO_COMPLY, detail=f"{len(mscc)} MSCC > {limits.max_mscc}")
    return check_grammar(rules, avps, ())


def check_grammar(
    rules: grammar.Grammar, avps: Sequence[Avp], parents: tuple[Avp, ...]
) -> Problem | None:
    """5008 / 5009 / 5005 for one AVP list against its grammar."""
    counts: dict[grammar.Key, int] = {}
    for avp in avps:
        key = (avp.code, avp.vendor_id)
        limit = rules.rules.get(key)
        if limit is None:
            known = get_avp_dictionary_entry(avp.code, avp.vendor_id) is not None
            if known and (key in rules.forbidden or not rules.open):
                return _problem(
                    ResultCode.AVP_NOT_ALLOWED, parents, avp, f"{avp.name} in {rules.name}"
                )
            continue
        seen = counts.get(key, 0) + 1
        counts[key] = seen
        if limit[1] is not None and seen > limit[1]:
            return _problem(
                ResultCode.AVP_OCCURS_TOO_MANY_TIMES, parents, avp, f"{avp.name} repeated"
            )
    for key, (least, _) in rules.rules.items():
        if counts.get(key, 0) < least:
            sample = sample_avp(key[0], key[1])
            return _problem(
                ResultCode.MISSING_AVP, parents, sample, f"{sample.name} missing in {rules.name}"
            )
    return None


def fixed_size(code: int, vendor: int = 0) -> int | None:
    """The payload size of a fixed-size AVP type (Unsigned32, Time...) per python-diameter's
    dictionary, as the walk below checks it; None for other types and unknown AVPs."""
    entry = get_avp_dictionary_entry(code, vendor)
    return _FIXED_SIZE.get(entry["type"]) if entry else None


def _problem(code: ResultCode, parents: tuple[Avp, ...], avp: Avp, detail: str) -> Problem:
    return Problem(code, (wrap_in_parents(parents, avp),), detail)


def wrap_in_parents(parents: tuple[Avp, ...], inner: Avp) -> Avp:
    """Failed-AVP content for an AVP nested in groups: each group holds only the next one."""
    for parent in reversed(parents):
        group = AvpGrouped(parent.code, parent.vendor_id, b"", parent.flags)
        group.name = parent.name
        group.value = [inner]
        inner = group
    return inner


def sample_avp(code: int, vendor: int = 0, flags: int | None = None) -> Avp:
    """An AVP of this code with a zero-filled minimum payload (RFC 6733 §7.5, 5005/5014)."""
    entry = get_avp_dictionary_entry(code, vendor)
    kind: type[Avp] = entry["type"] if entry else Avp
    size = _FIXED_SIZE.get(kind, 0)
    if kind is AvpAddress:
        size = _ADDRESS_SIZE[1]
    if flags is None:
        flags = (AVP_FLAG_VENDOR if vendor else 0) | (
            AVP_FLAG_MANDATORY if entry and entry.get("mandatory") else 0
        )
    avp = kind(code, vendor, bytes(size), flags)
    if entry:
        avp.name = entry["name"]
    return avp


class _Walker:
    """Walks AVPs, checking each header before python-diameter builds the object."""

    __slots__ = ("count", "limits", "skip_mandatory_check")

    def __init__(self, limits: Limits, skip_mandatory_check: bool) -> None:
        self.limits = limits
        self.count = 0
        # Answers are never answered: unknown M-bit AVPs in them are not our error.
        self.skip_mandatory_check = skip_mandatory_check

    def walk(
        self, buf: bytes, pos: int, end: int, depth: int, parents: tuple[Avp, ...], out: list[Avp]
    ) -> None:
        while pos < end:
            avp, pos = self._one(buf, pos, end, depth, parents)
            out.append(avp)

    def _one(
        self, buf: bytes, pos: int, end: int, depth: int, parents: tuple[Avp, ...]
    ) -> tuple[Avp, int]:
        if end - pos < 8:
            code = int.from_bytes(buf[pos : pos + 4], "big") if end - pos >= 4 else 0
            raise _Fail(
                _problem(
                    ResultCode.INVALID_AVP_LENGTH, parents, sample_avp(code), "truncated AVP header"
                )
            )
        code, flags_len = struct.unpack_from(">II", buf, pos)
        flags, length = flags_len >> 24, flags_len & 0xFFFFFF
        vendor, hdr = 0, 8
        if flags & AVP_FLAG_VENDOR:
            hdr = 12
            if end - pos >= 12:
                vendor = struct.unpack_from(">I", buf, pos + 8)[0]
        if length < hdr or pos + length > end:
            sample = sample_avp(code, vendor, flags)
            raise _Fail(
                _problem(
                    ResultCode.INVALID_AVP_LENGTH, parents, sample, f"AVP {code} length {length}"
                )
            )
        if flags & AVP_FLAG_VENDOR and vendor == 0:
            bad = Avp(code, 0, buf[pos + hdr : pos + length], flags)
            raise _Fail(
                _problem(
                    ResultCode.INVALID_AVP_BITS, parents, bad, f"AVP {code}: V bit with vendor 0"
                )
            )
        payload = buf[pos + hdr : pos + length]
        # Padding after the last AVP of a group may be missing; non-zero padding is accepted.
        nxt = min(pos + ((length + 3) & ~3), end)
        self.count += 1
        if self.count > self.limits.max_avps:
            raise _Fail(
                Problem(
                    ResultCode.UNABLE_TO_COMPLY, detail=f"more than {self.limits.max_avps} AVPs"
                )
            )
        return self._build(code, vendor, flags, payload, depth, parents), nxt

    def _build(
        self,
        code: int,
        vendor: int,
        flags: int,
        payload: bytes,
        depth: int,
        parents: tuple[Avp, ...],
    ) -> Avp:
        entry = get_avp_dictionary_entry(code, vendor)
        if entry is None:
            avp = Avp(code, vendor, payload, flags)
            if flags & AVP_FLAG_MANDATORY and not self.skip_mandatory_check:
                raise _Fail(
                    _problem(
                        ResultCode.AVP_UNSUPPORTED,
                        parents,
                        avp,
                        f"unknown M-bit AVP {code}/{vendor}",
                    )
                )
            return avp
        kind: type[Avp] = entry["type"]
        avp = kind(code, vendor, payload, flags)
        avp.name = entry["name"]
        if isinstance(avp, AvpGrouped):
            self._children(avp, depth, parents)
        else:
            self._check_value(avp, kind, parents)
        return avp

    def _children(self, avp: AvpGrouped, depth: int, parents: tuple[Avp, ...]) -> None:
        if depth + 1 > self.limits.max_depth:
            raise _Fail(
                Problem(
                    ResultCode.UNABLE_TO_COMPLY,
                    detail=f"grouped AVPs nested deeper than {self.limits.max_depth}",
                )
            )
        children: list[Avp] = []
        inner = (*parents, avp)
        payload = avp.payload
        skip = self.skip_mandatory_check
        key = (avp.code, avp.vendor_id)
        if key == (AvpCode.FAILED_AVP, 0):
            self.skip_mandatory_check = True  # Failed-AVP quotes the peer's problem, not ours
        elif depth == 0 and key not in grammar.READ_GROUPS and not self.limits.strict_mbit:
            self.skip_mandatory_check = True  # a container we carry but never read
        try:
            self.walk(payload, 0, len(payload), depth + 1, inner, children)
        finally:
            self.skip_mandatory_check = skip
        # python-diameter caches decoded children here; setting it avoids a second parse.
        avp._avps = children
        rules = grammar.GROUPS.get((avp.code, avp.vendor_id))
        if rules is not None and not skip:
            problem = check_grammar(rules, children, inner)
            if problem is not None:
                raise _Fail(problem)

    def _check_value(self, avp: Avp, kind: type[Avp], parents: tuple[Avp, ...]) -> None:
        size = _FIXED_SIZE.get(kind)
        n = len(avp.payload)
        if size is not None and n != size:
            sample = sample_avp(avp.code, avp.vendor_id, avp.flags)
            raise _Fail(
                _problem(ResultCode.INVALID_AVP_LENGTH, parents, sample, f"{avp.name}: {n} octets")
            )
        if kind is AvpAddress:
            family = int.from_bytes(avp.payload[:2], "big") if n >= 2 else -1
            if n < 2 or _ADDRESS_SIZE.get(family, n) != n:
                raise _Fail(
                    _problem(ResultCode.INVALID_AVP_VALUE, parents, avp, f"{avp.name}: bad address")
                )
        elif kind is AvpUtf8String:
            try:
                avp.payload.decode("utf-8")
            except UnicodeDecodeError:
                raise _Fail(
                    _problem(ResultCode.INVALID_AVP_VALUE, parents, avp, f"{avp.name}: bad UTF-8")
                ) from None
        allowed = grammar.ENUMERATIONS.get((avp.code, avp.vendor_id))
        if allowed is not None and avp.value not in allowed and not self.skip_mandatory_check:
            raise _Fail(
                _problem(ResultCode.INVALID_AVP_VALUE, parents, avp, f"{avp.name} = {avp.value}")
            )


def result_code_of(message: bytes) -> int | None:
    """The top-level Result-Code of a message (for metrics on answers we built)."""
    pos, end = HEADER_LENGTH, len(message)
    while end - pos >= 12:
        code, flags_len = struct.unpack_from(">II", message, pos)
        length = flags_len & 0xFFFFFF
        if length < 8:
            return None
        if code == AvpCode.RESULT_CODE and not flags_len >> 31:
            return int(struct.unpack_from(">I", message, pos + 8)[0])
        pos += (length + 3) & ~3
    return None
