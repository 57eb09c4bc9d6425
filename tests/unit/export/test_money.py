"""Micro-units to minor units, exact decimals and the largest-remainder split."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from ocs.export.money import Currencies, allocate, decimal_string, ppm_percent, to_minor


def test_iso4217_exponents_and_overrides() -> None:
    """JPY has no minor unit, BHD three, unknown codes the default; config overrides win."""
    cur = Currencies({"XTS": 4, "JPY": 1}, default=2)
    assert cur.exponent("EUR") == 2
    assert cur.exponent("BHD") == 3
    assert cur.exponent("jpy") == 1
    assert cur.exponent("XTS") == 4
    assert Currencies().exponent("JPY") == 0


def test_to_minor_rounds_half_away_from_zero() -> None:
    """0.005 EUR rounds to 1 cent and -0.005 to -1 cent; 0.004999 to 0."""
    assert to_minor(5_000, 2) == 1
    assert to_minor(-5_000, 2) == -1
    assert to_minor(4_999, 2) == 0
    assert to_minor(1_234_567, 2) == 123
    assert to_minor(1_500_000, 0) == 2
    assert to_minor(2_500_000, 0) == 3
    assert to_minor(1_234_567, 6) == 1_234_567


def test_decimal_string_is_exact() -> None:
    """The decimal keeps every micro digit and at least the currency's exponent."""
    assert decimal_string(1_234_567, 2) == "1.234567"
    assert decimal_string(1_500_000, 2) == "1.50"
    assert decimal_string(-1_500_000, 2) == "-1.50"
    assert decimal_string(2_000_000, 0) == "2"
    assert decimal_string(5, 3) == "0.000005"
    assert decimal_string(0, 2) == "0.00"


def test_ppm_percent() -> None:
    assert ppm_percent(200_000) == "20"
    assert ppm_percent(55_000) == "5.5"
    assert ppm_percent(1) == "0.0001"
    assert ppm_percent(0) == "0"


def test_allocate_examples() -> None:
    """Parts follow the weights and add up to the total; ties go to the first."""
    assert allocate(100, [1, 1, 1]) == [34, 33, 33]
    assert allocate(-100, [-1, -1, -1]) == [-34, -33, -33]
    assert allocate(7, [0, 0]) == [7, 0]
    assert allocate(10, [3, 7]) == [3, 7]


@given(
    st.integers(-(10**12), 10**12), st.lists(st.integers(-(10**9), 10**9), min_size=1, max_size=8)
)
def test_allocate_sums_exactly(total: int, weights: list[int]) -> None:
    parts = allocate(total, weights)
    assert sum(parts) == total
    assert all(p * total >= 0 for p in parts)


@given(st.integers(-(10**15), 10**15), st.integers(0, 6))
def test_decimal_string_round_trips(micro: int, exponent: int) -> None:
    from decimal import Decimal

    assert Decimal(decimal_string(micro, exponent)) * 10**6 == micro
    minor = to_minor(micro, exponent)
    assert abs(Decimal(minor) - Decimal(micro) / 10 ** (6 - exponent)) <= Decimal("0.5")
