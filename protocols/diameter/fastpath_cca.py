"""Fast path for Gy CCA encode: struct bytes equal to the reference builder's (issue 6).

RFC 6733 §3, §4.1 (header, AVP header, zero padding), §7.2 (answer shape);
RFC 4006 §3.2 (CCA), §8.16-§8.17 (MSCC, GSU), §8.33 (Validity-Time), §8.34
(FUI), §8.20 (Tariff-Time-Change); TS 32.299 §7.2 (thresholds, Quota-Holding-Time).

Encodes the CCA of a session request the fast decoder read (a
:class:`~protocols.diameter.fastpath.FastCcr`) exactly as
``GyApplication._session_cca`` through ``answers.answer`` and python-diameter
would: same AVP order, flags from python-diameter's dictionary, zero padding.
It returns ``None`` whenever it is not sure (a 5031 that needs a Failed-AVP,
a value python-diameter would refuse to encode): the caller then runs the
reference builder. The unit tests prove the bytes equal on random outcomes.
"""

from __future__ import annotations

import struct

from diameter.message.avp import Avp

from ocs.charging.types import (
    ChargingAnswer,
    FinalUnit,
    FinalUnitAction,
    ServiceOutcome,
    ServiceStatus,
    Usage,
)
from protocols.diameter.codec import Decoded, Header
from protocols.diameter.constants import (
    APP_CREDIT_CONTROL,
    FLAG_PROXYABLE,
    VENDOR_3GPP,
    VERSION,
    AvpCode,
    CcRequestType,
    Command,
    TgppAvpCode,
)
from protocols.diameter.fastpath import FastCcr
from protocols.diameter.local import LocalNode
from protocols.diameter.result_codes import SERVICE_STATUS

_HDR = struct.Struct(">II")
_VHDR = struct.Struct(">III")
_MSG = struct.Struct(">IIIII")
_U32_MAX = 0xFFFFFFFF
_U64_MAX = 0xFFFFFFFFFFFFFFFF
_I32 = (-(1 << 31), (1 << 31) - 1)
_I64 = (-(1 << 63), (1 << 63) - 1)
_REDIRECT_URL = 2
_MICRO_EXPONENT = -6
# python-diameter's AvpTime: NTP seconds, wrapping at the 2036 era boundary.
_NTP_1900 = ((70 * 365) + 17) * 86400
_NTP_OVERFLOW = 2085974896

_STATUS = {status: int(code) for status, code in SERVICE_STATUS.items()}


class _Unsure(Exception):
    """The reference builder decides (and raises where python-diameter refuses a value)."""


_UNSURE = _Unsure()


def _flags(code: int, vendor: int = 0) -> int:
    """The flags python-diameter's ``Avp.new`` gives this AVP (its dictionary's M bit)."""
    return int(Avp.new(code, vendor).flags)


class _Codec:
    """Pre-packed AVP headers: one per code we write."""

    __slots__ = ("flags",)

    def __init__(self) -> None:
        self.flags: dict[tuple[int, int], int] = {}

    def avp(self, code: int, payload: bytes, vendor: int = 0) -> bytes:
        key = (code, vendor)
        flags = self.flags.get(key)
        if flags is None:
            flags = self.flags[key] = _flags(code, vendor)
        if vendor:
            n = 12 + len(payload)
            head = _VHDR.pack(code, flags << 24 | n, vendor)
        else:
            n = 8 + len(payload)
            head = _HDR.pack(code, flags << 24 | n)
        return head + payload + bytes(-n % 4)

    def u32(self, code: int, value: int, vendor: int = 0) -> bytes:
        if not 0 <= value <= _U32_MAX:
            raise _UNSURE
        return self.avp(code, value.to_bytes(4, "big"), vendor)

    def u64(self, code: int, value: int) -> bytes:
        if not 0 <= value <= _U64_MAX:
            raise _UNSURE
        return self.avp(code, value.to_bytes(8, "big"))

    def i32(self, code: int, value: int) -> bytes:
        if not _I32[0] <= value <= _I32[1]:
            raise _UNSURE
        return self.avp(code, value.to_bytes(4, "big", signed=True))

    def i64(self, code: int, value: int) -> bytes:
        if not _I64[0] <= value <= _I64[1]:
            raise _UNSURE
        return self.avp(code, value.to_bytes(8, "big", signed=True))

    def text(self, code: int, value: str) -> bytes:
        try:
            return self.avp(code, value.encode("utf-8"))
        except UnicodeEncodeError:
            raise _UNSURE from None


_C = _Codec()
_UNITS = (
    ("seconds", AvpCode.CC_TIME, _U32_MAX),
    ("total_octets", AvpCode.CC_TOTAL_OCTETS, _U64_MAX),
    ("input_octets", AvpCode.CC_INPUT_OCTETS, _U64_MAX),
    ("output_octets", AvpCode.CC_OUTPUT_OCTETS, _U64_MAX),
    ("events", AvpCode.CC_SERVICE_SPECIFIC_UNITS, _U64_MAX),
)
_THRESHOLDS = (
    ("time_threshold", TgppAvpCode.TIME_QUOTA_THRESHOLD),
    ("volume_threshold", TgppAvpCode.VOLUME_QUOTA_THRESHOLD),
    ("quota_holding_time", TgppAvpCode.QUOTA_HOLDING_TIME),
)


def _gsu(granted: Usage, tariff_time_change: int | None) -> bytes:
    parts: list[bytes] = []
    for name, code, high in _UNITS:
        value = getattr(granted, name)
        if value is not None:
            clamped = min(max(value, 0), high)
            if code == AvpCode.CC_TIME:
                parts.append(_C.u32(code, clamped))
            else:
                parts.append(_C.u64(code, clamped))
    if granted.money is not None:
        unit_value = _C.avp(
            AvpCode.UNIT_VALUE,
            _C.i64(AvpCode.VALUE_DIGITS, granted.money) + _C.i32(AvpCode.EXPONENT, _MICRO_EXPONENT),
        )
        parts.append(_C.avp(AvpCode.CC_MONEY, unit_value))
    if tariff_time_change is not None:
        seconds = tariff_time_change
        ntp = seconds + _NTP_1900 if seconds < _NTP_OVERFLOW else seconds - _NTP_OVERFLOW
        parts.append(_C.u32(AvpCode.TARIFF_TIME_CHANGE, ntp))
    return _C.avp(AvpCode.GRANTED_SERVICE_UNIT, b"".join(parts))


def _fui(fu: FinalUnit) -> bytes:
    parts = [_C.i32(AvpCode.FINAL_UNIT_ACTION, fu.action.value)]
    if fu.action is FinalUnitAction.RESTRICT_ACCESS:
        parts += [_C.text(AvpCode.RESTRICTION_FILTER_RULE, r) for r in fu.restriction_rules]
        parts += [_C.text(AvpCode.FILTER_ID, f) for f in fu.filter_ids]
    if fu.action is FinalUnitAction.REDIRECT and fu.redirect_url:
        server = _C.i32(AvpCode.REDIRECT_ADDRESS_TYPE, _REDIRECT_URL) + _C.text(
            AvpCode.REDIRECT_SERVER_ADDRESS, fu.redirect_url
        )
        parts.append(_C.avp(AvpCode.REDIRECT_SERVER, server))
    return _C.avp(AvpCode.FINAL_UNIT_INDICATION, b"".join(parts))


def _quota(outcome: ServiceOutcome, tgpp: bool) -> bytes:
    """As ``gy_answer.quota_avps``."""
    parts: list[bytes] = []
    if outcome.granted is not None:
        parts.append(_gsu(outcome.granted, outcome.tariff_time_change))
    if outcome.validity_time is not None:
        parts.append(_C.u32(AvpCode.VALIDITY_TIME, outcome.validity_time))
    if outcome.final_unit is not None:
        parts.append(_fui(outcome.final_unit))
    if tgpp:
        for name, code in _THRESHOLDS:
            value = getattr(outcome, name)
            if value is not None:
                parts.append(_C.u32(code, min(value, _U32_MAX), VENDOR_3GPP))
    return b"".join(parts)


def _mscc(outcome: ServiceOutcome, tgpp: bool) -> bytes:
    """As ``gy_answer.mscc``: quota, Service-Identifier, Rating-Group, Result-Code."""
    parts = [_quota(outcome, tgpp)]
    service = outcome.service
    if service.service_id is not None:
        parts.append(_C.u32(AvpCode.SERVICE_IDENTIFIER, service.service_id))
    if service.rating_group is not None:
        parts.append(_C.u32(AvpCode.RATING_GROUP, service.rating_group))
    parts.append(_C.i32(AvpCode.RESULT_CODE, _STATUS[outcome.status]))
    return _C.avp(AvpCode.MULTIPLE_SERVICES_CREDIT_CONTROL, b"".join(parts))


class CcaEncoder:
    """CCA bytes for one local identity (its Origin-Host/Realm AVPs packed once)."""

    __slots__ = ("_after_code", "_success")

    def __init__(self, local: LocalNode) -> None:
        self._after_code = (
            _C.avp(AvpCode.ORIGIN_HOST, local.origin_host.encode())
            + _C.avp(AvpCode.ORIGIN_REALM, local.origin_realm.encode())
            + _C.u32(AvpCode.AUTH_APPLICATION_ID, APP_CREDIT_CONTROL)
        )
        self._success = _C.i32(AvpCode.RESULT_CODE, 2001)

    def session_cca(
        self,
        msg: Decoded,
        answer: ChargingAnswer,
        tgpp: bool,
        failure_handling: int | None = None,
    ) -> bytes | None:
        """The CCA of a fast-path CCR-I/U/T, or None when the reference builder must make it."""
        if msg.fast is None:
            return None
        try:
            return self._session_cca(msg.header, msg.fast, answer, tgpp, failure_handling)
        except _Unsure:
            return None

    def _session_cca(
        self,
        header: Header,
        fast: FastCcr,
        answer: ChargingAnswer,
        tgpp: bool,
        failure_handling: int | None,
    ) -> bytes:
        req = fast.request
        services = answer.services
        code = self._success
        if req.multiple_services:
            if any(o.status is ServiceStatus.RATING_FAILED for o in services):
                raise _UNSURE  # 5031 MSCCs are named in Failed-AVP: the reference does it
            body = b"".join(_mscc(o, tgpp) for o in services)
        elif services:
            outcome = services[0]
            if outcome.status is ServiceStatus.RATING_FAILED:
                raise _UNSURE
            if outcome.status is not ServiceStatus.GRANTED:
                code = _C.i32(AvpCode.RESULT_CODE, _STATUS[outcome.status])
            body = _quota(outcome, tgpp)
        else:
            body = b""
        if req.request_type is CcRequestType.INITIAL and failure_handling is not None:
            body += _C.i32(AvpCode.CREDIT_CONTROL_FAILURE_HANDLING, failure_handling)
        avps = b"".join((fast.session_avp, code, self._after_code, fast.echo_avps, body))
        return (
            _MSG.pack(
                VERSION << 24 | (20 + len(avps)),
                (header.flags & FLAG_PROXYABLE) << 24 | Command.CREDIT_CONTROL,
                APP_CREDIT_CONTROL,
                header.hop_by_hop,
                header.end_to_end,
            )
            + avps
        )
