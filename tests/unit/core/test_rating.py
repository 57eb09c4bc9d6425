"""Rating and rounding: the tariff function, grant sizing, saturation."""

from __future__ import annotations

import pytest

from ocs.charging.rating import (
    TariffParams,
    cost,
    grant_size,
    rated_amount,
    saturate,
    tariff_params,
)
from ocs.policy.models import Price, Quota
from ocs.policy.quantities import MAX_QUANTITY
from ocs.vocabulary.types import UnitType, Usage

PER_MB = TariffParams(block_units=1_000_000, block_price=10_000)
MINUTE_THEN_SECOND = TariffParams(
    first_units=60, first_price=60_000, block_units=1, block_price=1_000
)


@pytest.mark.parametrize(
    ("tariff", "units", "expected"),
    [
        (PER_MB, 0, 0),
        (PER_MB, 1, 10_000),  # a started megabyte is a megabyte
        (PER_MB, 1_000_000, 10_000),
        (PER_MB, 1_000_001, 20_000),
        (MINUTE_THEN_SECOND, 1, 60_000),  # first minute charged whole
        (MINUTE_THEN_SECOND, 60, 60_000),
        (MINUTE_THEN_SECOND, 61, 61_000),
        (TariffParams(block_units=10, block_price=7, rounding=1), 19, 7),  # completed blocks only
        (TariffParams(block_units=10, block_price=7, rounding=2), 15, 14),  # nearest, half up
        (TariffParams(block_units=10, block_price=7, rounding=2), 14, 7),
        (TariffParams(free=True), 10**12, 0),
    ],
)
def test_cost(tariff: TariffParams, units: int, expected: int) -> None:
    """Price of cumulative usage under each rounding rule."""
    assert cost(tariff, units) == expected


def test_cost_saturates_instead_of_overflowing() -> None:
    """A huge usage at a huge price is capped at the largest exact integer."""
    assert cost(TariffParams(block_units=1, block_price=10**9), 10**12) == MAX_QUANTITY


def test_tariff_params_from_policy_price() -> None:
    """A policy price becomes the integers the scripts use; a missing price is free."""
    price = Price.model_validate(
        {"first": {"units": "60s", "price": "0.06"}, "per": {"units": 1, "price": "0.001"}}
    )
    assert tariff_params(price) == MINUTE_THEN_SECOND
    assert tariff_params(None).free


def test_saturate_clamps_u64_into_exact_range() -> None:
    """U64 values from the wire are clamped, never negative (standards §2.9)."""
    assert saturate(2**64 - 1) == MAX_QUANTITY
    assert saturate(-5) == 0


def test_total_octets_fall_back_to_input_plus_output() -> None:
    """A report with only input/output octets is rated on their sum."""
    assert rated_amount(Usage(input_octets=3, output_octets=4), UnitType.TOTAL_OCTETS) == 7
    assert rated_amount(Usage(seconds=5), UnitType.TOTAL_OCTETS) is None


def test_grant_size_default_cap_and_no_request() -> None:
    """Empty RSU -> default grant; above max -> max; no RSU -> nothing asked (-1)."""
    quota = Quota(default_grant=1000, max_grant=5000)
    assert grant_size(Usage(), UnitType.TOTAL_OCTETS, quota) == 1000
    assert grant_size(Usage(total_octets=9999), UnitType.TOTAL_OCTETS, quota) == 5000
    assert grant_size(Usage(total_octets=10), UnitType.TOTAL_OCTETS, quota) == 10
    assert grant_size(None, UnitType.TOTAL_OCTETS, quota) == -1
