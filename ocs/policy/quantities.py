"""Quantities as ops write them in policy files, parsed exactly into integers.

Money: a decimal string in currency units (``"0.015"``) or an integer of
micro-units; never a YAML float (``0.1`` is not exact in binary), and never
finer than one micro-unit. Octets: an integer or ``"10MB"`` / ``"1GiB"``.
Seconds: an integer or ``"90s"`` / ``"15m"`` / ``"1h"`` / ``"1d"``.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

MICRO = 1_000_000
MAX_QUANTITY = 2**53 - 1  # exact in the Lua scripts' doubles

_OCTET_UNITS = {
    "": 1,
    "b": 1,
    "kb": 10**3,
    "mb": 10**6,
    "gb": 10**9,
    "tb": 10**12,
    "kib": 2**10,
    "mib": 2**20,
    "gib": 2**30,
    "tib": 2**40,
}
_SECOND_UNITS = {"": 1, "s": 1, "m": 60, "min": 60, "h": 3600, "d": 86400}
_QUANTITY = re.compile(r"^\s*([0-9]+)\s*([a-zA-Z]*)\s*$")
# Plain decimal notation only: Decimal() would also take "1e3" (1,000.00),
# "NaN", "1_000" and other scripts' digits.
_DECIMAL = re.compile(r"-?[0-9]+(?:\.[0-9]+)?")  # a sign, to say "non-negative" below


def parse_money(value: object) -> int:
    """Micro-units from ``"1.25"`` (currency units) or an int (micro-units)."""
    if isinstance(value, (bool, float)):
        raise ValueError(
            f"expected a decimal string like '0.01' or an integer of micro-units, got {value!r}"
        )
    if isinstance(value, int):
        return _bounded(value)
    if not isinstance(value, str) or not _DECIMAL.fullmatch(value.strip()):
        raise ValueError(f"expected a decimal string like '0.01', got {value!r}")
    try:
        amount = Decimal(value.strip())
    except InvalidOperation:
        raise ValueError(f"expected a decimal string like '0.01', got {value!r}") from None
    micro = amount * MICRO
    if not amount.is_finite() or micro != micro.to_integral_value():
        raise ValueError(f"{value!r} is finer than one micro-unit (6 decimals)")
    return _bounded(int(micro))


def parse_octets(value: object) -> int:
    return _parse_with_units(value, _OCTET_UNITS, "octets like 1048576, '10MB' or '1GiB'")


def parse_seconds(value: object) -> int:
    return _parse_with_units(value, _SECOND_UNITS, "seconds like 60, '90s', '15m' or '1h'")


def _parse_with_units(value: object, units: dict[str, int], expected: str) -> int:
    if isinstance(value, (bool, float)):
        raise ValueError(f"expected {expected}, got {value!r}")
    if isinstance(value, int):
        return _bounded(value)
    if isinstance(value, str):
        m = _QUANTITY.match(value)
        if m and m.group(2).lower() in units:
            return _bounded(int(m.group(1)) * units[m.group(2).lower()])
    raise ValueError(f"expected {expected}, got {value!r}")


def _bounded(n: int) -> int:
    if n < 0:
        raise ValueError(f"expected a non-negative quantity, got {n}")
    if n > MAX_QUANTITY:
        raise ValueError(f"{n} exceeds the largest supported quantity {MAX_QUANTITY}")
    return n


def format_money(micro: int, currency: str = "") -> str:
    """Exact decimal text of a micro-unit amount, e.g. ``1500000 -> '1.500000 EUR'``."""
    sign = "-" if micro < 0 else ""
    whole, frac = divmod(abs(micro), MICRO)
    text = f"{sign}{whole}.{frac:06d}"
    return f"{text} {currency}".strip()
