"""CCR -> :class:`GyRequest` through python-diameter: the reference mapping (RFC 4006 §3.1,
§5.1.1, §8; 3GPP TS 32.299 §6.3, §7.2).

Reads a CCR the guarded decoder accepted: identities from Subscription-Id (else
User-Name as an NAI), one ServiceRequest per MSCC (keyed by Rating-Group and
the first Service-Identifier) or one command-level service from RSU/USU when
MSCC is absent, Reporting-Reason and Tariff-Change-Usage kept with each USU. A
request this server does not serve (:meth:`Served.refusal`, the check the fast
path makes too) or a value it refuses raises :class:`GyReject` carrying the
Problem to answer, with its Failed-AVP.
"""

from __future__ import annotations

from collections.abc import Sequence

from diameter.message.avp import Avp

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
from protocols.diameter import avps as A
from protocols.diameter.codec import Decoded, Problem, sample_avp
from protocols.diameter.constants import (
    VENDOR_3GPP,
    AvpCode,
    CcRequestType,
    ResultCode,
    TgppAvpCode,
)
from protocols.diameter.gy_request import (
    IDENTITY_TYPES,
    MAX_MONEY_EXPONENT,
    GyRequest,
    Refusal,
    Served,
    money_micro,
    termination_cause,
)

_UNIT_AVPS = (
    (AvpCode.CC_TIME, "seconds"),
    (AvpCode.CC_TOTAL_OCTETS, "total_octets"),
    (AvpCode.CC_INPUT_OCTETS, "input_octets"),
    (AvpCode.CC_OUTPUT_OCTETS, "output_octets"),
    (AvpCode.CC_SERVICE_SPECIFIC_UNITS, "events"),
)


class GyReject(Exception):
    def __init__(self, problem: Problem) -> None:
        super().__init__(problem.detail)
        self.problem = problem


def parse_ccr(msg: Decoded, served: Served) -> GyRequest:
    """The request of a CCR without a decoding problem, or GyReject with its answer."""
    avps = msg.avps
    request_type = CcRequestType(A.get_int(avps, AvpCode.CC_REQUEST_TYPE) or 0)
    subscribers = tuple(_identities(avps))
    refusal = served.refusal(
        A.get_str(avps, AvpCode.DESTINATION_HOST),
        A.get_str(avps, AvpCode.DESTINATION_REALM),
        A.get_str(avps, AvpCode.SERVICE_CONTEXT_ID),
        request_type,
        bool(subscribers),
    )
    if refusal is not None:
        raise GyReject(problem_of(refusal, avps))
    mscc = A.find_all(avps, AvpCode.MULTIPLE_SERVICES_CREDIT_CONTROL)
    services = [_mscc_service(m) for m in mscc] if mscc else _command_level(avps, request_type)
    action = A.get_int(avps, AvpCode.REQUESTED_ACTION)
    return GyRequest(
        session_id=A.get_str(avps, AvpCode.SESSION_ID) or "",
        request_type=request_type,
        request_number=A.get_int(avps, AvpCode.CC_REQUEST_NUMBER) or 0,
        subscribers=subscribers,
        services=tuple(services),
        multiple_services=bool(mscc),
        requested_action=EventAction(action) if action is not None else EventAction.DIRECT_DEBIT,
        termination_cause=termination_cause(A.get_int(avps, AvpCode.TERMINATION_CAUSE)),
        origin_state_id=A.get_int(avps, AvpCode.ORIGIN_STATE_ID),
    )


def problem_of(refusal: Refusal, avps: Sequence[Avp]) -> Problem:
    """The answer to a refused CCR: its Result-Code and the AVP that says why."""
    if refusal is Refusal.DESTINATION_HOST:
        host = A.get_str(avps, AvpCode.DESTINATION_HOST)
        return Problem(ResultCode.UNABLE_TO_DELIVER, detail=f"Destination-Host {host} is not us")
    if refusal is Refusal.DESTINATION_REALM:
        realm = A.get_str(avps, AvpCode.DESTINATION_REALM)
        return Problem(ResultCode.REALM_NOT_SERVED, detail=f"realm {realm} not served")
    if refusal is Refusal.SERVICE_CONTEXT:
        avp = A.find(avps, AvpCode.SERVICE_CONTEXT_ID)
        text = A.get_str(avps, AvpCode.SERVICE_CONTEXT_ID)
        failed = (avp,) if avp is not None else ()
        return Problem(ResultCode.RATING_FAILED, failed, f"unknown Service-Context-Id {text}")
    sample = sample_avp(AvpCode.SUBSCRIPTION_ID)
    return Problem(ResultCode.MISSING_AVP, (sample,), "no Subscription-Id")


def _identities(avps: Sequence[Avp]) -> list[Identity]:
    out = []
    for sub in A.find_all(avps, AvpCode.SUBSCRIPTION_ID):
        inner = A.children(sub)
        kind = IDENTITY_TYPES[A.get_int(inner, AvpCode.SUBSCRIPTION_ID_TYPE) or 0]
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
        values["money"] = money_of(A.children(money))
    return Usage(**{k: v for k, v in values.items() if v is not None})


def money_of(members: Sequence[Avp]) -> int | None:
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
