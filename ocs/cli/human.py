"""How the CLI writes quantities for people (``--json`` keeps the integers).

Money: the exact decimal with the currency, as many decimals as the currency's
ISO 4217 minor unit has, more only when the amount is finer (``15000000`` EUR
-> ``15.00 EUR``, ``1234567`` EUR -> ``1.234567 EUR``, JPY ``500 JPY``). Times:
ISO 8601 in the configured zone (the policies' ``timezone``). Octets, seconds
and events: the integer, octets with a decimal-prefixed size beside it.
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from ocs.export.money import Currencies, decimal_string

CURRENCIES = Currencies()
_SIZES = ((10**12, "TB"), (10**9, "GB"), (10**6, "MB"), (10**3, "kB"))


def money(micro: int, currency: str) -> str:
    exponent = CURRENCIES.exponent(currency) if currency else 2
    return f"{decimal_string(micro, exponent)} {currency}".strip()


def signed_money(micro: int, currency: str) -> str:
    return ("+" if micro > 0 else "") + money(micro, currency)


def octets(n: int) -> str:
    for size, name in _SIZES:
        if abs(n) >= size:
            whole, rest = divmod(abs(n), size)
            tenths = rest * 100 // size
            text = f"{whole}.{tenths:02d}".rstrip("0").rstrip(".")
            return f"{n} octets ({'-' if n < 0 else ''}{text} {name})"
    return f"{n} octets"


def amount(n: int, unit: str, currency: str) -> str:
    """A bucket amount in its unit."""
    if unit == "money":
        return money(n, currency)
    if unit.endswith("octets"):
        return octets(n)
    if unit == "seconds":
        return f"{n} s"
    return f"{n} {unit}"


def when(ts: int | None, zone: ZoneInfo) -> str:
    """ISO 8601 of unix seconds in ``zone`` ('never' for none)."""
    if not ts:
        return "never"
    return datetime.fromtimestamp(ts, zone).isoformat()


def when_ms(ms: int, zone: ZoneInfo) -> str:
    return datetime.fromtimestamp(ms / 1000, zone).isoformat(timespec="milliseconds")
