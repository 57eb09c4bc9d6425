"""One-shot events: direct debit, refund and balance check in one script call.

RFC 4006 §5.4 and §6.3-6.4 (CC-Request-Type EVENT, Requested-Action). Python
rates the units (the policy's service, unit and price at the event's time,
:func:`event_charge`); one script call debits, refunds or checks, and
records. A price enquiry needs no balance and never reaches the store.
Events are idempotent by event id: the script keeps its answer for a week.

What an event charges and what its record states are one value: the
quantity in the service's rated unit, or for a refund in money that money.
Units the service is not rated in are refused (RATING_FAILED) rather than
charged as some other amount.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

from ocs.charging.rating import cost, rated_amount, saturate, tariff_params
from ocs.charging.resolver import Resolver, Target
from ocs.policy.loader import PolicySet
from ocs.store.calls import EventArgs, EventReply, ReportArg, ServiceArg, Stale
from ocs.store.gateway import ScriptGateway
from ocs.vocabulary.errors import PlanUnknown, UserUnknown
from ocs.vocabulary.types import (
    EventAction,
    EventAnswer,
    Identity,
    ServiceKey,
    ServiceStatus,
    UnitType,
    Usage,
)

EVENT_TTL = 7 * 86400  # an event id is answered identically for a week

_OPS = {EventAction.REFUND: "refund", EventAction.CHECK_BALANCE: "check"}


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


class EventRequest(NamedTuple):
    """One one-shot request as the API received it (``now`` resolved)."""

    event_id: str
    ids: Sequence[Identity]
    service: ServiceKey
    action: EventAction
    units: Usage | None
    owner: str
    now: int


async def charge_event(
    store: ScriptGateway, resolver: Resolver, policies: PolicySet, request: EventRequest
) -> EventAnswer:
    """Rate and run one event; a service unknown to the policy answers
    RATING_FAILED, changing nothing."""
    for attempt in (0, 1):
        target = await resolver.by_identity(request.ids)
        answer = await _charge(store, policies, target, request)
        if answer is not None:
            return answer
        if attempt == 0:
            resolver.forget(request.ids)
    raise UserUnknown(request.event_id)  # stale twice: the data keeps moving


async def _charge(
    store: ScriptGateway, policies: PolicySet, target: Target, request: EventRequest
) -> EventAnswer | None:
    """The answer, or None when the script found the resolved target stale."""
    event_id, ids, service, action, units, owner, now = request
    account = target.account_id
    plan = policies.plans.get(target.plan)
    if plan is None:
        raise plan_unknown(target, policies)
    name = policies.service_name(service)
    price = policies.price(target.plan, name, now) if name else None
    if name is None or price is None:
        return EventAnswer(event_id, account, action, ServiceStatus.RATING_FAILED, service)
    unit = policies.services[name].unit
    charge = event_charge(action, units, unit)
    if charge is None:  # units the service is not rated in: never guessed
        return EventAnswer(event_id, account, action, ServiceStatus.RATING_FAILED, service)
    amount, used = charge
    params = tariff_params(price)
    if action is EventAction.PRICE_ENQUIRY:
        return EventAnswer(
            event_id,
            account,
            action,
            ServiceStatus.GRANTED,
            service,
            Usage.of(unit, amount),
            cost(params, amount),
            plan.currency,
        )
    money = used.money
    args = EventArgs(
        event_id=event_id,
        op=_OPS.get(action, "debit"),
        cause=action.name.lower(),
        now=now,
        account_id=account,
        identity_key=target.identity_key,
        plan=target.plan,
        ids=tuple(i.key() for i in ids),
        owner=owner,
        policy_version=policies.version,
        ttl=EVENT_TTL,
        tax_ppm=policies.tax_ppm(target.plan),
        service=ServiceArg(
            service.key(),
            name,
            service.rating_group,
            service.service_id,
            unit.value,
            amount,
            params.ints(),
            (ReportArg(used.as_dict()),),
        ),
        # A refund of money is that money; a refund of units is their price.
        amount=money if money is not None else cost(params, amount),
    )
    try:
        reply = await store.event(args)
    except Stale:
        return None
    return event_answer(args, action, service, unit, reply)


def event_answer(
    args: EventArgs, action: EventAction, service: ServiceKey, unit: UnitType, reply: EventReply
) -> EventAnswer:
    """The protocol-neutral answer from the script's reply."""
    if action is EventAction.CHECK_BALANCE:
        return EventAnswer(
            args.event_id,
            args.account_id,
            action,
            ServiceStatus.GRANTED,
            service,
            cost=reply.cost,
            currency=reply.currency,
            enough_credit=reply.enough,
        )
    return EventAnswer(
        args.event_id,
        args.account_id,
        action,
        ServiceStatus(reply.status),
        service,
        units=Usage.of(unit, reply.units) if reply.units else None,
        cost=reply.cost,
        currency=reply.currency,
        replayed=reply.replayed,
    )


def plan_unknown(target: Target, policies: PolicySet) -> PlanUnknown:
    """The account's plan is not in the policy set in force (Gy 5030)."""
    return PlanUnknown(
        f"account {target.account_id}: plan {target.plan!r} is not in policy set {policies.version}"
    )
