"""Rating: from a policy price to the integers the balance scripts use.

A price is "an optional first block, then per started block" (the shape of
most mobile and ISP tariffs: first 60 s then per second; per started MB).
The balance scripts evaluate it on the session's cumulative money-rated
usage, so a minimum charge applies once per session and per-block rounding
never double-counts across interim reports. :func:`cost` here is the same
function as ``cost`` in ``ocs/store/lua/lib.lua`` (a property test holds
them equal); it serves price enquiries and tests.
"""

from __future__ import annotations

from dataclasses import dataclass

from ocs.policy.models import Price, Quota
from ocs.policy.quantities import MAX_QUANTITY
from ocs.store.calls import TariffInts
from ocs.vocabulary.types import UnitType, Usage

_ROUNDING = {"up": 0, "down": 1, "nearest": 2}


@dataclass(frozen=True, slots=True)
class TariffParams:
    """A price reduced to integers, as the Lua scripts take it."""

    first_units: int = 0
    first_price: int = 0
    block_units: int = 1
    block_price: int = 0
    rounding: int = 0
    free: bool = False

    def ints(self) -> TariffInts:
        """The six integers the scripts take (:data:`ocs.store.calls.TariffInts`)."""
        return (
            self.first_units,
            self.first_price,
            self.block_units,
            self.block_price,
            self.rounding,
            int(self.free),
        )


FREE = TariffParams(free=True)


def tariff_params(price: Price | None) -> TariffParams:
    """Integers of a policy price; a service with no price in the tariff is free."""
    if price is None or price.free:
        return FREE
    assert price.per is not None  # the model requires it unless free
    first = price.first
    return TariffParams(
        first_units=first.units if first else 0,
        first_price=first.price if first else 0,
        block_units=price.per.units,
        block_price=price.per.price,
        rounding=_ROUNDING[price.rounding],
    )


def _blocks(units: int, block: int, rounding: int) -> int:
    if rounding == 1:
        return units // block
    if rounding == 2:
        return (2 * units + block) // (2 * block)
    return -(-units // block)


def cost(t: TariffParams, units: int) -> int:
    """Price in micro-units of ``units`` cumulative money-rated units."""
    if units <= 0 or t.free:
        return 0
    c = t.first_price
    rest = units - t.first_units
    if rest > 0:
        c += _blocks(rest, t.block_units, t.rounding) * t.block_price
    return min(c, MAX_QUANTITY)


def saturate(n: int) -> int:
    """Clamp a wire quantity (a U64 may reach 2^64-1) into [0, 2^53-1]
    (standards §2.9: saturating arithmetic, never a negative debit)."""
    return max(0, min(n, MAX_QUANTITY))


def rated_amount(usage: Usage, unit: UnitType) -> int | None:
    """The quantity of a report in the service's rated unit; total octets
    fall back to input + output when the gateway reports only those."""
    value = usage.get(unit)
    if value is None and unit is UnitType.TOTAL_OCTETS:
        parts = [v for v in (usage.input_octets, usage.output_octets) if v is not None]
        if parts:
            value = sum(parts)
    return None if value is None else saturate(value)


def grant_size(requested: Usage | None, unit: UnitType, quota: Quota) -> int:
    """Units to try to reserve: -1 when nothing is asked (no RSU), the
    policy's default grant for an empty RSU, else the request capped at the
    policy's maximum. The script then grants at most what the balance pays."""
    if requested is None:
        return -1
    want = rated_amount(requested, unit)
    if want is None or want == 0:
        want = quota.default_grant
    if quota.max_grant is not None:
        want = min(want, quota.max_grant)
    return saturate(want)


def threshold(granted: int, percent: int) -> int | None:
    """Units left at which the gateway must report (TS 32.299 §7.2.203/208):
    ``percent`` of the grant, none for an empty grant or a zero share."""
    if percent <= 0 or granted <= 0:
        return None
    return granted * percent // 100
