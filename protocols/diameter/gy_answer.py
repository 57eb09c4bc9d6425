"""Charging outcome -> CCA AVPs (RFC 4006 §3.2, §8.16-§8.17, §8.34-§8.39; TS 32.299 §7.2).

GSU with one AVP per granted unit type (time, total/input/output octets,
service-specific units, money), Tariff-Time-Change inside it, Validity-Time,
Final-Unit-Indication (TERMINATE, REDIRECT with Redirect-Server, RESTRICT_ACCESS),
a Result-Code in every MSCC, and the 3GPP thresholds and Quota-Holding-Time only
for peers that advertised Supported-Vendor-Id 10415.
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence

from diameter.message.avp import Avp

from ocs.vocabulary.types import EventAnswer, FinalUnit, FinalUnitAction, ServiceOutcome, Usage
from protocols.diameter import avps as A
from protocols.diameter.constants import (
    MICRO_EXPONENT,
    REDIRECT_ADDRESS_URL,
    VENDOR_3GPP,
    AvpCode,
    TgppAvpCode,
)
from protocols.diameter.result_codes import for_status

# ISO 4217 numeric codes (Currency-Code is Unsigned32); 999 = "no currency".
_CURRENCIES = {"EUR": 978, "USD": 840, "GBP": 826, "CHF": 756, "JPY": 392, "SEK": 752, "XXX": 999}

_UNITS = (
    ("seconds", AvpCode.CC_TIME),
    ("total_octets", AvpCode.CC_TOTAL_OCTETS),
    ("input_octets", AvpCode.CC_INPUT_OCTETS),
    ("output_octets", AvpCode.CC_OUTPUT_OCTETS),
    ("events", AvpCode.CC_SERVICE_SPECIFIC_UNITS),
)
_MAX = {AvpCode.CC_TIME: 0xFFFFFFFF}
_U64 = 0xFFFFFFFFFFFFFFFF


def unit_value(amount: int) -> Avp:
    return A.group(
        AvpCode.UNIT_VALUE,
        [A.new(AvpCode.VALUE_DIGITS, amount), A.new(AvpCode.EXPONENT, MICRO_EXPONENT)],
    )


def currency_code(currency: str) -> int:
    return _CURRENCIES.get(currency.upper(), 999)


def gsu(granted: Usage, tariff_time_change: int | None = None) -> Avp:
    members: list[Avp] = []
    for name, code in _UNITS:
        value = getattr(granted, name)
        if value is not None:
            members.append(A.new(code, min(max(value, 0), _MAX.get(code, _U64))))
    if granted.money is not None:
        members.append(A.group(AvpCode.CC_MONEY, [unit_value(granted.money)]))
    if tariff_time_change is not None:
        when = datetime.datetime.fromtimestamp(tariff_time_change, tz=datetime.UTC)
        members.append(A.new(AvpCode.TARIFF_TIME_CHANGE, when))
    return A.group(AvpCode.GRANTED_SERVICE_UNIT, members)


def final_unit_indication(fu: FinalUnit) -> Avp:
    members = [A.new(AvpCode.FINAL_UNIT_ACTION, fu.action.value)]
    if fu.action is FinalUnitAction.RESTRICT_ACCESS:
        members += [A.new(AvpCode.RESTRICTION_FILTER_RULE, r) for r in fu.restriction_rules]
        members += [A.new(AvpCode.FILTER_ID, f) for f in fu.filter_ids]
    if fu.action is FinalUnitAction.REDIRECT and fu.redirect_url:
        server = [
            A.new(AvpCode.REDIRECT_ADDRESS_TYPE, REDIRECT_ADDRESS_URL),
            A.new(AvpCode.REDIRECT_SERVER_ADDRESS, fu.redirect_url),
        ]
        members.append(A.group(AvpCode.REDIRECT_SERVER, server))
    return A.group(AvpCode.FINAL_UNIT_INDICATION, members)


def quota_avps(outcome: ServiceOutcome, tgpp: bool) -> list[Avp]:
    """GSU, Validity-Time, FUI and (3GPP peers only) thresholds / QHT of one service."""
    out: list[Avp] = []
    if outcome.granted is not None:
        out.append(gsu(outcome.granted, outcome.tariff_time_change))
    if outcome.validity_time is not None:
        out.append(A.new(AvpCode.VALIDITY_TIME, outcome.validity_time))
    if outcome.final_unit is not None:
        out.append(final_unit_indication(outcome.final_unit))
    if tgpp:
        for code, value in (
            (TgppAvpCode.TIME_QUOTA_THRESHOLD, outcome.time_threshold),
            (TgppAvpCode.VOLUME_QUOTA_THRESHOLD, outcome.volume_threshold),
            (TgppAvpCode.QUOTA_HOLDING_TIME, outcome.quota_holding_time),
        ):
            if value is not None:
                out.append(A.new(code, min(value, 0xFFFFFFFF), vendor=VENDOR_3GPP))
    return out


def mscc(outcome: ServiceOutcome, tgpp: bool) -> Avp:
    """One MSCC of the answer; its Result-Code is always present."""
    members = quota_avps(outcome, tgpp)
    if outcome.service.service_id is not None:
        members.append(A.new(AvpCode.SERVICE_IDENTIFIER, outcome.service.service_id))
    if outcome.service.rating_group is not None:
        members.append(A.new(AvpCode.RATING_GROUP, outcome.service.rating_group))
    members.append(A.new(AvpCode.RESULT_CODE, int(for_status(outcome.status))))
    return A.group(AvpCode.MULTIPLE_SERVICES_CREDIT_CONTROL, members)


def msccs(outcomes: Sequence[ServiceOutcome], tgpp: bool) -> list[Avp]:
    return [mscc(o, tgpp) for o in outcomes]


def cost_information(answer: EventAnswer) -> Avp:
    members = [
        unit_value(answer.cost),
        A.new(AvpCode.CURRENCY_CODE, currency_code(answer.currency)),
    ]
    return A.group(AvpCode.COST_INFORMATION, members)
