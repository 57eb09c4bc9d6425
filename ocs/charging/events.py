"""One-shot events: direct debit, refund and balance check in one script call.

RFC 4006 §5.4 and §6.3-6.4 (CC-Request-Type EVENT, Requested-Action). The
facade (:meth:`ocs.charging.api.ChargingService.event`) rates the units
(:func:`event_charge`); this module builds the script's request and reads
its reply. Events are idempotent by event id: the script stores its answer
for a week.

What an event charges and what its record states are one value
(``EventCall.used``): the quantity in the service's rated unit, or for a
refund in money that money. Units the service is not rated in are refused
(RATING_FAILED) rather than charged as some other amount.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import msgpack

from ocs.charging.rating import TariffParams, cost, rated_amount, saturate
from ocs.charging.resolver import Target
from ocs.policy.loader import PolicySet
from ocs.vocabulary.types import (
    EventAction,
    EventAnswer,
    Identity,
    ServiceKey,
    ServiceStatus,
    UnitType,
    Usage,
)

if TYPE_CHECKING:
    from ocs.charging.api import ChargingService

EVENT_TTL = 7 * 86400  # an event id is answered identically for a week


@dataclass(frozen=True, slots=True)
class EventCall:
    """One rated event, ready for its script."""

    event_id: str
    action: EventAction
    target: Target
    ids: list[Identity]
    service: ServiceKey
    name: str  # the policy's service name
    unit: UnitType
    amount: int  # units in the service's rated unit
    used: Usage  # what is charged, as the record states it (event_charge)
    params: TariffParams
    now: int
    owner: str
    policies: PolicySet


def event_charge(
    action: EventAction, units: Usage | None, unit: UnitType
) -> tuple[int, Usage] | None:
    """The quantity an event charges in the service's ``unit`` and the usage
    its record states; None when the units cannot be rated (RATING_FAILED).

    - no units: one unit (the event itself, e.g. one SMS);
    - a refund with money (RFC 4006 §8.21 CC-Money): that money, no units;
    - otherwise the quantity in ``unit`` (total octets from input + output);
      a request in other units only, or with a negative quantity, is refused.
    """
    if units is None or units.is_empty():
        return 1, Usage.of(unit, 1)
    if any(v < 0 for v in units.as_dict().values()):
        return None  # CC-Money Value-Digits is signed: a negative refund would debit
    if action is EventAction.REFUND and units.money is not None:
        return 0, Usage(money=saturate(units.money))
    amount = rated_amount(units, unit)
    if amount is None:
        return None
    return amount, Usage.of(unit, amount)


async def run_event_script(svc: ChargingService, call: EventCall) -> dict[str, Any]:
    """Debit, refund or check in one atomic script call; the script's reply."""
    keys = svc.keys(call.target.account_id)
    money = call.used.money
    request = {
        "eid": call.event_id,
        "now": call.now,
        "acct": call.target.account_id,
        "ik": call.target.identity_key,
        "plan": call.target.plan,
        "ids": [i.key() for i in call.ids],
        "owner": call.owner,
        "pv": call.policies.version,
        "ttl": EVENT_TTL,
        "tax": call.policies.tax_ppm(call.target.plan),
        "cause": call.action.name.lower(),
        "op": "check" if call.action is EventAction.CHECK_BALANCE else "debit",
        "svc": {
            "k": call.service.key(),
            "nm": call.name,
            "rg": call.service.rating_group,
            "sid": call.service.service_id,
            "ru": call.unit.value,
            "u": call.amount,
            "t": call.params.to_lua(),
            "used": call.used.as_dict(),
        },
        # A refund of money is that money; a refund of units is their price.
        "amount": money if money is not None else cost(call.params, call.amount),
    }
    script = "refund" if call.action is EventAction.REFUND else "event"
    event_keys = [
        keys.account,
        keys.balance,
        keys.ids,
        f"{keys.events}:{call.event_id}",
        keys.records,
    ]
    (raw,) = await svc.submit([svc.call(script, event_keys, msgpack.packb(request))])
    value = msgpack.unpackb(raw, raw=False, strict_map_key=False)
    return value if isinstance(value, dict) else {}


def event_answer(call: EventCall, reply: dict[str, Any]) -> EventAnswer:
    """The protocol-neutral answer from the script's reply."""
    account = call.target.account_id
    if call.action is EventAction.CHECK_BALANCE:
        return EventAnswer(
            call.event_id,
            account,
            call.action,
            ServiceStatus.GRANTED,
            call.service,
            cost=int(reply.get("cost", 0)),
            currency=str(reply.get("cur", "")),
            enough_credit=bool(reply.get("enough")),
        )
    u = int(reply.get("u", 0))
    return EventAnswer(
        call.event_id,
        account,
        call.action,
        ServiceStatus(str(reply.get("st", "granted"))),
        call.service,
        units=Usage.of(call.unit, u) if u else None,
        cost=int(reply.get("cost", 0)),
        currency=str(reply.get("cur", "")),
        replayed=bool(reply.get("replay")),
    )
