"""Fast path for Gy CCA encode: struct bytes equal to the reference builder's.

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
from collections.abc import Callable
from functools import partial

from diameter.message.avp import Avp

from ocs.vocabulary.types import (
    ChargingAnswer,
    FinalUnit,
    FinalUnitAction,
    ServiceOutcome,
    ServiceStatus,
    Usage,
)
from protocols.diameter.constants import (
    APP_CREDIT_CONTROL,
    FLAG_PROXYABLE,
    MICRO_EXPONENT,
    REDIRECT_ADDRESS_URL,
    VENDOR_3GPP,
    VERSION,
    AvpCode,
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
# python-diameter's AvpTime: NTP seconds, wrapping at the 2036 era boundary.
_NTP_1900 = ((70 * 365) + 17) * 86400
_NTP_OVERFLOW = 2085974896

_STATUS = {status: int(code) for status, code in SERVICE_STATUS.items()}


class _Unsure(Exception):
    """The reference builder decides (and raises where python-diameter refuses a value).
    Raised as a new instance each time: see ``fastpath_walk.Decline``."""


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
            raise _Unsure
        return self.avp(code, value.to_bytes(4, "big"), vendor)

    def i32(self, code: int, value: int) -> bytes:
        if not _I32[0] <= value <= _I32[1]:
            raise _Unsure
        return self.avp(code, value.to_bytes(4, "big", signed=True))

    def i64(self, code: int, value: int) -> bytes:
        if not _I64[0] <= value <= _I64[1]:
            raise _Unsure
        return self.avp(code, value.to_bytes(8, "big", signed=True))

    def text(self, code: int, value: str) -> bytes:
        try:
            return self.avp(code, value.encode("utf-8"))
        except UnicodeEncodeError:
            raise _Unsure from None


_C = _Codec()


def _fixed(code: int, fmt: str, vendor: int = 0) -> Callable[[int], bytes]:
    """The writer of one fixed-size AVP (Unsigned32/64, Integer32): header and value in one
    ``pack`` call. ``struct`` refuses a value out of the type's range, as python-diameter
    does: ``struct.error`` then sends the CCA to the reference builder."""
    flags = _flags(code, vendor)
    if vendor:
        packer = struct.Struct(">III" + fmt)
        return partial(packer.pack, code, flags << 24 | packer.size, vendor)
    packer = struct.Struct(">II" + fmt)
    return partial(packer.pack, code, flags << 24 | packer.size)


_TIME = _fixed(AvpCode.CC_TIME, "I")
_TOTAL = _fixed(AvpCode.CC_TOTAL_OCTETS, "Q")
_INPUT = _fixed(AvpCode.CC_INPUT_OCTETS, "Q")
_OUTPUT = _fixed(AvpCode.CC_OUTPUT_OCTETS, "Q")
_EVENTS = _fixed(AvpCode.CC_SERVICE_SPECIFIC_UNITS, "Q")
_TARIFF_TIME = _fixed(AvpCode.TARIFF_TIME_CHANGE, "I")
_VALIDITY = _fixed(AvpCode.VALIDITY_TIME, "I")
_RATING_GROUP = _fixed(AvpCode.RATING_GROUP, "I")
_SERVICE_ID = _fixed(AvpCode.SERVICE_IDENTIFIER, "I")
_RESULT = _fixed(AvpCode.RESULT_CODE, "i")
_TIME_THRESHOLD = _fixed(TgppAvpCode.TIME_QUOTA_THRESHOLD, "I", VENDOR_3GPP)
_VOLUME_THRESHOLD = _fixed(TgppAvpCode.VOLUME_QUOTA_THRESHOLD, "I", VENDOR_3GPP)
_HOLDING_TIME = _fixed(TgppAvpCode.QUOTA_HOLDING_TIME, "I", VENDOR_3GPP)
_MSCC = int(AvpCode.MULTIPLE_SERVICES_CREDIT_CONTROL)
_GSU = int(AvpCode.GRANTED_SERVICE_UNIT)
_RESULTS = {status: _RESULT(code) for status, code in _STATUS.items()}


def _clamp(value: int, high: int) -> int:
    return value if 0 <= value <= high else min(max(value, 0), high)


def _gsu(granted: Usage, tariff_time_change: int | None) -> bytes:
    """As ``gy_answer.gsu``: units clamped to their type, then CC-Money, Tariff-Time-Change."""
    parts: list[bytes] = []
    if granted.seconds is not None:
        parts.append(_TIME(_clamp(granted.seconds, _U32_MAX)))
    if granted.total_octets is not None:
        parts.append(_TOTAL(_clamp(granted.total_octets, _U64_MAX)))
    if granted.input_octets is not None:
        parts.append(_INPUT(_clamp(granted.input_octets, _U64_MAX)))
    if granted.output_octets is not None:
        parts.append(_OUTPUT(_clamp(granted.output_octets, _U64_MAX)))
    if granted.events is not None:
        parts.append(_EVENTS(_clamp(granted.events, _U64_MAX)))
    if granted.money is not None:
        unit_value = _C.avp(
            AvpCode.UNIT_VALUE,
            _C.i64(AvpCode.VALUE_DIGITS, granted.money) + _C.i32(AvpCode.EXPONENT, MICRO_EXPONENT),
        )
        parts.append(_C.avp(AvpCode.CC_MONEY, unit_value))
    if tariff_time_change is not None:
        seconds = tariff_time_change
        ntp = seconds + _NTP_1900 if seconds < _NTP_OVERFLOW else seconds - _NTP_OVERFLOW
        parts.append(_TARIFF_TIME(ntp))
    return _C.avp(_GSU, b"".join(parts))


def _fui(fu: FinalUnit) -> bytes:
    parts = [_C.i32(AvpCode.FINAL_UNIT_ACTION, fu.action.value)]
    if fu.action is FinalUnitAction.RESTRICT_ACCESS:
        parts += [_C.text(AvpCode.RESTRICTION_FILTER_RULE, r) for r in fu.restriction_rules]
        parts += [_C.text(AvpCode.FILTER_ID, f) for f in fu.filter_ids]
    if fu.action is FinalUnitAction.REDIRECT and fu.redirect_url:
        server = _C.i32(AvpCode.REDIRECT_ADDRESS_TYPE, REDIRECT_ADDRESS_URL) + _C.text(
            AvpCode.REDIRECT_SERVER_ADDRESS, fu.redirect_url
        )
        parts.append(_C.avp(AvpCode.REDIRECT_SERVER, server))
    return _C.avp(AvpCode.FINAL_UNIT_INDICATION, b"".join(parts))


def _quota(outcome: ServiceOutcome, tgpp: bool, parts: list[bytes]) -> None:
    """As ``gy_answer.quota_avps``, appended to ``parts``."""
    if outcome.granted is not None:
        parts.append(_gsu(outcome.granted, outcome.tariff_time_change))
    if outcome.validity_time is not None:
        parts.append(_VALIDITY(outcome.validity_time))
    if outcome.final_unit is not None:
        parts.append(_fui(outcome.final_unit))
    if tgpp:
        if outcome.time_threshold is not None:
            parts.append(_TIME_THRESHOLD(min(outcome.time_threshold, _U32_MAX)))
        if outcome.volume_threshold is not None:
            parts.append(_VOLUME_THRESHOLD(min(outcome.volume_threshold, _U32_MAX)))
        if outcome.quota_holding_time is not None:
            parts.append(_HOLDING_TIME(min(outcome.quota_holding_time, _U32_MAX)))


def _mscc(outcome: ServiceOutcome, tgpp: bool) -> bytes:
    """As ``gy_answer.mscc``: quota, Service-Identifier, Rating-Group, Result-Code."""
    parts: list[bytes] = []
    _quota(outcome, tgpp, parts)
    service = outcome.service
    if service.service_id is not None:
        parts.append(_SERVICE_ID(service.service_id))
    if service.rating_group is not None:
        parts.append(_RATING_GROUP(service.rating_group))
    parts.append(_RESULTS[outcome.status])
    return _C.avp(_MSCC, b"".join(parts))


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
        fast: FastCcr,
        answer: ChargingAnswer,
        tgpp: bool,
        failure_handling: int | None = None,
    ) -> bytes | None:
        """The CCA of a fast-path CCR-I/U/T, or None when the reference builder must make
        it. ``failure_handling``: the CCFH this answer carries (a CCA-I's, when configured)."""
        try:
            return self._session_cca(fast, answer, tgpp, failure_handling)
        except (_Unsure, struct.error):
            return None

    def _session_cca(
        self,
        fast: FastCcr,
        answer: ChargingAnswer,
        tgpp: bool,
        failure_handling: int | None,
    ) -> bytes:
        req = fast.request
        services = answer.services
        code = self._success
        parts: list[bytes] = []
        if req.multiple_services:
            for outcome in services:
                if outcome.status is ServiceStatus.RATING_FAILED:
                    raise _Unsure  # 5031 MSCCs are named in Failed-AVP: the reference does it
                parts.append(_mscc(outcome, tgpp))
        elif services:
            outcome = services[0]
            if outcome.status is ServiceStatus.RATING_FAILED:
                raise _Unsure
            if outcome.status is not ServiceStatus.GRANTED:
                code = _RESULTS[outcome.status]
            _quota(outcome, tgpp, parts)
        body = b"".join(parts)
        if failure_handling is not None:
            body += _C.i32(AvpCode.CREDIT_CONTROL_FAILURE_HANDLING, failure_handling)
        avps = b"".join((fast.session_avp, code, self._after_code, fast.echo_avps, body))
        header = fast.header
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
