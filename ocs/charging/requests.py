"""Rating a request into the script's argument, and the script's reply into outcomes.

Python decides everything that depends on policy (which service a rating
group is, its price, its grant size and timers); the Lua script decides
everything that depends on the balance (how much of that is affordable, what
is debited). Services the policy does not know (5031) or does not
credit-control (4011) never reach the script: their outcomes are made here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ocs.charging.rating import grant_size, rated_amount, saturate, tariff_params, threshold
from ocs.policy.loader import PolicySet
from ocs.policy.models import Price, Quota
from ocs.policy.quantities import MAX_QUANTITY
from ocs.policy.timebands import Schedule
from ocs.store.calls import ReportArg, ServiceArg, ServiceReply, SessionReply, TariffInts
from ocs.vocabulary.types import (
    FinalUnit,
    FinalUnitAction,
    ServiceKey,
    ServiceOutcome,
    ServiceRequest,
    ServiceStatus,
    TariffChange,
    UnitType,
    Usage,
    UsedUnits,
)

_FUA = {"terminate": 0, "redirect": 1, "restrict": 2}


@dataclass(slots=True)
class RatedRequest:
    """The services of one request, split into scripted and decided-here."""

    services: list[ServiceArg] = field(default_factory=list)
    fixed: dict[int, ServiceOutcome] = field(default_factory=dict)  # index -> outcome
    units: dict[str, UnitType] = field(default_factory=dict)  # service key -> rated unit
    supervision: int = 0
    order: list[ServiceKey] = field(default_factory=list)
    # Grant attributes from policy (validity, thresholds, final-unit action,
    # tariff switch) by service key: added to the script's per-service
    # answer here, so the script's request and stored answers stay small.
    extras: dict[str, dict[str, Any]] = field(default_factory=dict)


def usage_map(usage: Usage, unit: UnitType) -> dict[str, int]:
    """Saturated usage by unit name, with the rated unit filled in."""
    out = {k: (v if 0 <= v <= MAX_QUANTITY else saturate(v)) for k, v in usage.as_dict().items()}
    if unit._value_ not in out:
        rated = rated_amount(usage, unit)  # total octets from input + output
        if rated is not None:
            out[unit._value_] = rated
    return out


@dataclass(frozen=True, slots=True)
class _Rated:
    """What a plan's policy says of one service: the same for every request
    under one policy set (memoised there), so a request only adds its own
    asks and reports. ``fixed`` is the status when the script is not asked."""

    fixed: ServiceStatus | None
    name: str = ""
    unit: UnitType = UnitType.TOTAL_OCTETS
    quota: Quota | None = None
    extras: dict[str, Any] = field(default_factory=dict)
    banded: bool = False
    params: TariffInts | None = None  # the unbanded tariff's integers


_RATED_KEPT = 4096  # (plan, service) pairs: bounded, the service key comes off the wire


def _rated(policies: PolicySet, plan: str, service: ServiceKey) -> _Rated:
    cache: dict[tuple[str, ServiceKey], _Rated] = policies.memo("rated", dict)
    found = cache.get((plan, service))
    if found is None:
        if len(cache) >= _RATED_KEPT:
            cache.clear()
        found = cache[(plan, service)] = _make_rated(policies, plan, service)
    return found


def _make_rated(policies: PolicySet, plan: str, service: ServiceKey) -> _Rated:
    name = policies.service_name(service)
    if name is None:
        return _Rated(ServiceStatus.RATING_FAILED)
    svc = policies.services[name]
    if not svc.credit_control:
        return _Rated(ServiceStatus.NOT_APPLICABLE)
    schedule = policies.schedule(plan)
    banded = bool(schedule.tariff.bands)
    price = None if banded else schedule.price_at(name, 0)
    if not banded and price is None:
        # The plan's tariff has no price for it: rating is impossible.
        return _Rated(ServiceStatus.RATING_FAILED)
    return _Rated(
        None,
        name,
        svc.unit,
        policies.quota(name),
        _make_extras(name, policies),
        banded,
        None if banded else script_tariff(price),
    )


def rate_request(
    policies: PolicySet, plan: str, services: Sequence[ServiceRequest], now: int
) -> RatedRequest:
    """Turn the gateway's per-service asks into the script's service entries,
    priced at ``now`` in the plan's tariff (time-of-day bands included)."""
    rated = RatedRequest()
    for index, req in enumerate(services):
        service = req.service
        rated.order.append(service)
        known = _rated(policies, plan, service)
        if known.fixed is not None:
            rated.fixed[index] = ServiceOutcome(service, known.fixed)
            continue
        name, unit, quota = known.name, known.unit, known.quota
        assert quota is not None
        extras, params = known.extras, known.params
        schedule = None
        if known.banded:
            schedule = policies.schedule(plan)
            price = schedule.price_at(name, now)
            if price is None:
                rated.fixed[index] = ServiceOutcome(service, ServiceStatus.RATING_FAILED)
                continue
            params = script_tariff(price)
            extras = dict(extras)  # this request's own copy: the switch depends on `now`
            _announce_switch(schedule, name, now, extras)
        reports = tuple(_report(u, unit, schedule, name, now, quota.supervision) for u in req.used)
        if reports and _unratable(reports, unit):
            rated.fixed[index] = ServiceOutcome(service, ServiceStatus.RATING_FAILED)
            continue
        assert params is not None  # unbanded: made with the memo; banded: just above
        key = service._key
        rated.supervision = max(rated.supervision, quota.supervision)
        rated.units[key] = unit
        share = quota.balance_share_percent
        rated.extras[key] = extras
        rated.services.append(
            ServiceArg(
                key,
                name,
                service.rating_group,
                service.service_id,
                unit._value_,
                grant_size(req.requested, unit, quota),
                params,
                reports,
                None if share is None else (share, quota.min_grant or 0),
            )
        )
    return rated


def _unratable(reports: Sequence[ReportArg], unit: UnitType) -> bool:
    """A usage report with positive quantities but none in the service's
    unit: the script would record it and charge nothing, so the service gets
    RATING_FAILED instead (standards §2.8, 5031). One dict lookup per report
    on the normal path (usage_map fills the rated unit whenever the report
    has it)."""
    ru = unit._value_
    return any(ru not in r.used and any(v > 0 for v in r.used.values()) for r in reports)


def _announce_switch(schedule: Schedule, name: str, now: int, extras: dict[str, Any]) -> None:
    """Tariff-Time-Change (RFC 4006 §8.20): the first switch inside the
    grant's validity; the validity is cut at the second, so one grant never
    spans two switches and its BEFORE/AFTER reports are unambiguous."""
    found = schedule.switches(name, now, now + int(extras["vt"]))
    if found:
        extras["ttc"] = found[0]
        if len(found) > 1:
            extras["vt"] = found[1] - now


def _report(
    used: UsedUnits,
    unit: UnitType,
    schedule: Schedule | None,
    name: str,
    now: int,
    lookback: int,
) -> ReportArg:
    """One usage report with the tariff(s) that rate it.

    BEFORE (and INDETERMINATE, rated as before) use the price in force just
    before the last switch; AFTER uses the price now. A report without
    Tariff-Change-Usage whose window (at most the supervision time) spans
    switches carries every segment; the script splits it by time.
    """

    out = ReportArg(usage_map(used.usage, unit), used.cumulative)
    if schedule is None or used.tariff_change is TariffChange.AFTER:
        return out  # the service's own tariff (the script's default): not sent twice

    def params_at(ts: int) -> TariffInts:
        assert schedule is not None
        return script_tariff(schedule.price_at(name, ts))

    if used.tariff_change is not None:  # BEFORE or INDETERMINATE
        last = schedule.last_switch(name, now, lookback)
        return out._replace(tariff=params_at(last - 1 if last is not None else now))
    start = now - lookback
    switches = schedule.switches(name, start, now)
    if switches:
        segments = ((start, params_at(start)), *((ts, params_at(ts)) for ts in switches))
        return out._replace(segments=segments)
    return out


_LUA_TARIFFS: dict[int, tuple[Price | None, TariffInts]] = {}


def script_tariff(price: Price | None) -> TariffInts:
    """The script's integers for a policy price, computed once per price object."""
    hit = _LUA_TARIFFS.get(id(price))
    if hit is not None and hit[0] is price:
        return hit[1]
    params = tariff_params(price).ints()
    if len(_LUA_TARIFFS) > 10_000:  # many reloads: start afresh
        _LUA_TARIFFS.clear()
    _LUA_TARIFFS[id(price)] = (price, params)  # keeps `price` alive, so its id stays unique
    return params


def _make_extras(quota_name: str, policies: PolicySet) -> dict[str, Any]:
    """Grant attributes from policy (made once per plan and service, in ``_Rated``)."""
    q = policies.quota(quota_name)
    fu = q.final_unit
    return {
        "vt": q.validity_time,
        "thr": q.threshold_percent,
        "qht": q.quota_holding_time,
        "fua": _FUA[fu.action],
        "url": fu.redirect_url or "",
        "fid": list(fu.filter_ids),
        "rr": list(fu.restriction_rules),
    }


def outcomes(rated: RatedRequest, reply: SessionReply) -> tuple[ServiceOutcome, ...]:
    """Per-service outcomes in the order the gateway asked."""
    by_key = reply.services
    out: list[ServiceOutcome] = []
    for index, key in enumerate(rated.order):
        if index in rated.fixed:
            out.append(rated.fixed[index])
            continue
        item = by_key.get(key.key())
        if item is None:  # replay of an answer made under another policy
            out.append(ServiceOutcome(key, ServiceStatus.RATING_FAILED))
            continue
        unit = rated.units.get(key.key(), UnitType.TOTAL_OCTETS)
        out.append(_outcome(key, item, unit, rated.extras.get(key.key(), {})))
    return tuple(out)


_STATUS = {s.value: s for s in ServiceStatus}


def _outcome(
    key: ServiceKey, item: ServiceReply, unit: UnitType, x: dict[str, Any]
) -> ServiceOutcome:
    status = _STATUS.get(item.status) or ServiceStatus(item.status)
    granted_units = item.granted
    is_granted = status is ServiceStatus.GRANTED
    granted = Usage.of(unit, granted_units) if is_granted and granted_units > 0 else None
    final = None
    if is_granted and item.final:
        final = FinalUnit(
            action=FinalUnitAction(int(x.get("fua", 0))),
            redirect_url=str(x.get("url")) or None,
            filter_ids=tuple(str(f) for f in x.get("fid") or ()),
            restriction_rules=tuple(str(r) for r in x.get("rr") or ()),
        )
    thr = threshold(granted_units, x.get("thr", 0))
    is_time = unit is UnitType.SECONDS
    vt = x.get("vt")
    return ServiceOutcome(
        service=key,
        status=status,
        granted=granted,
        validity_time=vt if is_granted else None,
        volume_threshold=None if is_time else thr,
        time_threshold=thr if is_time else None,
        quota_holding_time=x.get("qht") or None,
        final_unit=final,
        tariff_time_change=x.get("ttc") if granted is not None else None,
        charged=item.charged,
        shortfall=item.shortfall,
    )


__all__ = ["RatedRequest", "outcomes", "rate_request", "script_tariff", "threshold", "usage_map"]
