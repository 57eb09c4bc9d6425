"""Money in export rows: micro-units to ISO 4217 minor units, exact decimals.

Records carry integer micro-units (10^-6 of the currency). Invoice rows show:

* ``*_micro``: the exact integer from the record;
* ``*_minor``: minor units (cents for EUR, yen for JPY, fils for BHD) using the
  ISO 4217 exponent of the currency. Rounding rule: **half away from zero**,
  applied once per row to ``charged`` and ``tax``; ``net_minor`` is defined as
  ``charged_minor - tax_minor`` so the three always add up, and a refund
  mirrors the charge it refunds;
* the decimal string: the exact micro-unit amount written in major units,
  never rounded, with at least the currency's exponent of decimals
  (``1234567`` EUR -> ``"1.234567"``, ``1500000`` EUR -> ``"1.50"``).

A record's amounts are split over its services with :func:`allocate` (largest
remainder), so the rows of one record add up exactly to the record.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

MICRO_DIGITS = 6

# ISO 4217 minor-unit exponents that differ from 2 (the default), for
# currencies in common use; the config can add or override codes.
ISO4217_EXPONENTS: dict[str, int] = {
    # 0 decimals
    "BIF": 0,
    "CLP": 0,
    "DJF": 0,
    "GNF": 0,
    "ISK": 0,
    "JPY": 0,
    "KMF": 0,
    "KRW": 0,
    "PYG": 0,
    "RWF": 0,
    "UGX": 0,
    "UYI": 0,
    "VND": 0,
    "VUV": 0,
    "XAF": 0,
    "XOF": 0,
    "XPF": 0,
    # 3 decimals
    "BHD": 3,
    "IQD": 3,
    "JOD": 3,
    "KWD": 3,
    "LYD": 3,
    "OMR": 3,
    "TND": 3,
    # 4 decimals
    "CLF": 4,
    "UYW": 4,
}


class Currencies:
    """Exponent lookup: config overrides, then ISO 4217, then the default."""

    __slots__ = ("_default", "_table")

    def __init__(self, overrides: Mapping[str, int] | None = None, default: int = 2) -> None:
        self._table: dict[str, int] = {**ISO4217_EXPONENTS, **(overrides or {})}
        self._default = default

    def exponent(self, currency: str) -> int:
        return self._table.get(currency.upper(), self._default)


def to_minor(micro: int, exponent: int) -> int:
    """Micro-units -> minor units, rounding half away from zero."""
    step = int(10 ** (MICRO_DIGITS - exponent))
    quotient, remainder = divmod(abs(micro), step)
    if 2 * remainder >= step:
        quotient += 1
    return -quotient if micro < 0 else quotient


def decimal_string(micro: int, exponent: int) -> str:
    """Exact major-unit decimal of a micro-unit amount (no rounding)."""
    sign = "-" if micro < 0 else ""
    whole, frac = divmod(abs(micro), 10**MICRO_DIGITS)
    digits = f"{frac:06d}".rstrip("0")
    if len(digits) < exponent:
        digits = digits.ljust(exponent, "0")
    return f"{sign}{whole}.{digits}" if digits else f"{sign}{whole}"


def ppm_percent(ppm: int) -> str:
    """Parts per million as an exact percentage string (200000 -> "20")."""
    whole, frac = divmod(abs(ppm), 10_000)
    digits = f"{frac:04d}".rstrip("0")
    sign = "-" if ppm < 0 else ""
    return f"{sign}{whole}.{digits}" if digits else f"{sign}{whole}"


def allocate(total: int, weights: Sequence[int]) -> list[int]:
    """Split ``total`` over ``weights`` proportionally; parts sum to ``total``.

    Largest-remainder method on absolute weights; ties go to the earlier
    position. All-zero weights put everything on the first part.
    """
    if not weights:
        raise ValueError("allocate needs at least one weight")
    sizes = [abs(w) for w in weights]
    whole = sum(sizes)
    if whole == 0:
        return [total] + [0] * (len(weights) - 1)
    magnitude = abs(total)
    parts = [magnitude * s // whole for s in sizes]
    remainders = [magnitude * s % whole for s in sizes]
    short = magnitude - sum(parts)
    order = sorted(range(len(sizes)), key=lambda i: (-remainders[i], i))
    for i in order[:short]:
        parts[i] += 1
    return [-p for p in parts] if total < 0 else parts
