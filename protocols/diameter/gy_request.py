"""CCR -> protocol-neutral charging request (RFC 4006 §3.1, §8; 3GPP TS 32.299 §6.3, §7.2).

Reads a CCR the guarded decoder accepted and produces a :class:`GyRequest` of
``ocs.charging`` values: identities from Subscription-Id, one ServiceRequest per
MSCC (keyed by Rating-Group / Service-Identifier) or one command-level service
from RSU/USU when MSCC is absent, Reporting-Reason and Tariff-Change-Usage
kept with each USU. Requests that are well-formed but not servable raise
:class:`GyReject` carrying the Problem to answer (5031 unknown
Service-Context-Id, 5005 no subscriber on CCR-I/EVENT).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from diameter.message.avp import Avp

from ocs.vocabulary.types import (
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
from protocols.diameter import avps as A
from protocols.diameter.codec import Decoded, Problem, sample_avp
from protocols.diameter.constants import (
    VENDOR_3GPP,
    AvpCode,
    CcRequestType,
    ResultCode,
    TgppAvpCode,
)

DEFAULT_CONTEXTS = ("32251@3gpp.org",)

_IDENTITY_TYPES = {
    0: IdentityType.E164,
    1: IdentityType.IMSI,
    2: IdentityType.SIP_URI,
    3: IdentityType.NAI,
    4: IdentityType.PRIVATE,
}

_TERMINATION_CAUSES = {4: TerminationCause.ADMIN}  # RFC 6733 §8.15 ADMINISTRATIVE

_UNIT_AVPS = (
    (AvpCode.CC_TIME, "seconds"),
    (AvpCode.CC_TOTAL_OCTETS, "total_octets"),
    (AvpCode.CC_INPUT_OCTETS, "input_octets"),
    (AvpCode.CC_OUTPUT_OCTETS, "output_octets"),
    (AvpCode.CC_SERVICE_SPECIFIC_UNITS, "events"),
)


MAX_MONEY_EXPONENT = 24  # 10^24: far beyond any currency amount, cheap to compute


def money_micro(digits: int, exponent: int) -> int:
    """Value-Digits x 10^Exponent in micro-units, truncated toward zero, exactly
    (integers only; callers bound ``exponent`` by MAX_MONEY_EXPONENT first)."""
    shift = exponent + 6
    scale: int = 10 ** abs(shift)
    if shift >= 0:
        return digits * scale
    return digits // scale if digits >= 0 else -(-digits // scale)


class GyReject(Exception):
    def __init__(self, problem: Problem) -> None:
        super().__init__(problem.detail)
        self.problem = problem


@dataclass(slots=True)
class GyRequest:
    """One CCR in ``ocs.charging`` values (read-only; not frozen only because a frozen
    dataclass costs four times as much to build, once per CCR on the hot path)."""

    session_id: str
    request_type: CcRequestType
    request_number: int
    subscribers: tuple[Identity, ...]
    services: tuple[ServiceRequest, ...]
    multiple_services: bool  # the CCR used MSCC: answer per MSCC
    requested_action: EventAction = EventAction.DIRECT_DEBIT
    termination_cause: TerminationCause = TerminationCause.NORMAL
    origin_state_id: int | None = None

    @property
    def request_key(self) -> str:
        return str(self.request_number)

    @property
    def event_id(self) -> str:
        return f"{self.session_id};{self.request_number}"


def parse_ccr(msg: Decoded, contexts: Sequence[str] = DEFAULT_CONTEXTS) -> GyRequest:
    avps = msg.avps
    _check_context(avps, contexts)
    request_type = CcRequestType(A.get_int(avps, AvpCode.CC_REQUEST_TYPE) or 0)
    subscribers = tuple(_identities(avps))
    if not subscribers and request_type in (CcRequestType.INITIAL, CcRequestType.EVENT):
        sample = sample_avp(AvpCode.SUBSCRIPTION_ID)
        raise GyReject(Problem(ResultCode.MISSING_AVP, (sample,), "no Subscription-Id"))
    mscc = A.find_all(avps, AvpCode.MULTIPLE_SERVICES_CREDIT_CONTROL)
    services = [_mscc_service(m) for m in mscc] if mscc else _command_level(avps, request_type)
    action = A.get_int(avps, AvpCode.REQUESTED_ACTION)
    cause = A.get_int(avps, AvpCode.TERMINATION_CAUSE)
    return GyRequest(
        session_id=A.get_str(avps, AvpCode.SESSION_ID) or "",
        request_type=request_type,
        request_number=A.get_int(avps, AvpCode.CC_REQUEST_NUMBER) or 0,
        subscribers=subscribers,
        services=tuple(services),
        multiple_services=bool(mscc),
        requested_action=EventAction(action) if action is not None else EventAction.DIRECT_DEBIT,
        termination_cause=_TERMINATION_CAUSES.get(cause or 1, TerminationCause.NORMAL),
        origin_state_id=A.get_int(avps, AvpCode.ORIGIN_STATE_ID),
    )


def _check_context(avps: Sequence[Avp], contexts: Sequence[str]) -> None:
    """PS charging may prefix ``ext.MNC.MCC.release.``: match on the suffix (standards §2.5)."""
    avp = A.find(avps, AvpCode.SERVICE_CONTEXT_ID)
    text = A.get_str(avps, AvpCode.SERVICE_CONTEXT_ID) or ""
    if avp is not None and not any(text.endswith(c) for c in contexts):
        raise GyReject(
            Problem(ResultCode.RATING_FAILED, (avp,), f"unknown Service-Context-Id {text}")
        )


def _identities(avps: Sequence[Avp]) -> list[Identity]:
    out = []
    for sub in A.find_all(avps, AvpCode.SUBSCRIPTION_ID):
        inner = A.children(sub)
        kind = _IDENTITY_TYPES[A.get_int(inner, AvpCode.SUBSCRIPTION_ID_TYPE) or 0]
        out.append(Identity(kind, A.get_str(inner, AvpCode.SUBSCRIPTION_ID_DATA) or ""))
    if not out:
        user = A.get_str(avps, AvpCode.USER_NAME)
        if user:
            out.append(Identity(IdentityType.NAI, user))
    return out


def usage_of(units: Sequence[Avp]) -> Usage:
    values = {name: A.get_int(units, code) for code, name in _UNIT_AVPS}
    money = A.find(units, AvpCode.CC_MONEY)
    if money is not None:
        values["money"] = _money(A.children(money))
    return Usage(**{k: v for k, v in values.items() if v is not None})


def _money(members: Sequence[Avp]) -> int | None:
    """CC-Money in micro-units: Value-Digits x 10^(Exponent + 6), truncated toward zero."""
    unit_value = A.find(members, AvpCode.UNIT_VALUE)
    if unit_value is None:
        return None
    inner = A.children(unit_value)
    digits = A.get_int(inner, AvpCode.VALUE_DIGITS) or 0
    exponent = A.get_int(inner, AvpCode.EXPONENT) or 0
    if abs(exponent) > MAX_MONEY_EXPONENT:
        # 10**(2**31) would take the process down for seconds: refuse the value
        # (5004 with the AVP) instead of computing it (never stop answering).
        bad = A.find(inner, AvpCode.EXPONENT)
        raise GyReject(
            Problem(
                ResultCode.INVALID_AVP_VALUE,
                (bad,) if bad is not None else (),
                f"CC-Money Exponent {exponent} out of range",
            )
        )
    return money_micro(digits, exponent)


def _used(usu: Avp, extra_reasons: tuple[int, ...]) -> UsedUnits:
    members = A.children(usu)
    change = A.get_int(members, AvpCode.TARIFF_CHANGE_USAGE)
    reasons = tuple(A.get_ints(members, TgppAvpCode.REPORTING_REASON, VENDOR_3GPP))
    return UsedUnits(
        usage=usage_of(members),
        tariff_change=TariffChange(change) if change is not None else None,
        reporting_reasons=reasons + extra_reasons,
    )


def _mscc_service(mscc: Avp) -> ServiceRequest:
    members = A.children(mscc)
    reasons = tuple(A.get_ints(members, TgppAvpCode.REPORTING_REASON, VENDOR_3GPP))
    service_ids = A.get_ints(members, AvpCode.SERVICE_IDENTIFIER)
    key = ServiceKey(
        A.get_int(members, AvpCode.RATING_GROUP), service_ids[0] if service_ids else None
    )
    rsu = A.find(members, AvpCode.REQUESTED_SERVICE_UNIT)
    used = tuple(_used(u, reasons) for u in A.find_all(members, AvpCode.USED_SERVICE_UNIT))
    return ServiceRequest(key, usage_of(A.children(rsu)) if rsu is not None else None, used)


def _command_level(avps: Sequence[Avp], request_type: CcRequestType) -> list[ServiceRequest]:
    """No MSCC: one service from command-level RSU/USU (RFC 4006 §5.1.1)."""
    key = ServiceKey(None, A.get_int(avps, AvpCode.SERVICE_IDENTIFIER))
    rsu = A.find(avps, AvpCode.REQUESTED_SERVICE_UNIT)
    used = tuple(_used(u, ()) for u in A.find_all(avps, AvpCode.USED_SERVICE_UNIT))
    requested = usage_of(A.children(rsu)) if rsu is not None else None
    if requested is None and request_type is CcRequestType.INITIAL:
        requested = Usage()  # a CCR-I asks for quota even when it names no units
    if requested is None and not used and request_type is CcRequestType.TERMINATION:
        return []
    return [ServiceRequest(key, requested, used)]
