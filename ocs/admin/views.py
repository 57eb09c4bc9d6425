"""JSON views of accounts, money and times for the admin API.

Money is shown exact and twice over: ``micro`` (integer micro-units, what
the store holds), ``minor`` (integer ISO 4217 minor units: cents for EUR,
none for JPY, rounded half away from zero), ``amount`` (the exact decimal
string, at least the currency's minor digits) and ``currency``. Times are
unix seconds with an ISO 8601 twin in the policy time zone.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from ocs import rules
from ocs.export.money import Currencies, decimal_string, to_minor

CURRENCIES = Currencies()


def money(micro: int, currency: str) -> dict[str, Any]:
    exponent = CURRENCIES.exponent(currency) if currency else 2
    return {
        "micro": micro,
        "minor": to_minor(micro, exponent),
        "amount": decimal_string(micro, exponent),
        "currency": currency,
    }


def iso(ts: int | None, zone: ZoneInfo) -> str | None:
    if not ts:
        return None
    return datetime.fromtimestamp(ts, zone).isoformat()


def iso_ms(ms: int, zone: ZoneInfo) -> str:
    return datetime.fromtimestamp(ms / 1000, zone).isoformat(timespec="milliseconds")


def parse_amount(amount: str | None, minor: int | None, micro: int | None, currency: str) -> int:
    """Micro-units from exactly one of a decimal string, minor units or micro-units."""
    return rules.money(amount, minor, micro, currency)


def bucket_view(b: dict[str, Any], currency: str, zone: ZoneInfo) -> dict[str, Any]:
    out = dict(b)
    out["expires_at"] = iso(b.get("expires"), zone)
    if b.get("unit") == "money":
        for name in ("amount", "reserved", "available", "floor"):
            out[f"{name}_money"] = money(int(b.get(name) or 0), currency)
    return out


def account_view(view: dict[str, Any], zone: ZoneInfo) -> dict[str, Any]:
    """Accounts.show() made an API answer: money objects and ISO times added."""
    currency = str(view.get("currency", ""))
    buckets = [bucket_view(b, currency, zone) for b in view.get("buckets", [])]
    total = sum(int(b["amount"]) for b in view.get("buckets", []) if b.get("unit") == "money")
    available = sum(
        max(int(b["available"]), 0) for b in view.get("buckets", []) if b.get("unit") == "money"
    )
    return {
        "account": view["account"],
        "status": view.get("status"),
        "plan": view.get("plan"),
        "currency": currency,
        "test": view.get("test") == "1",
        "created": int(view.get("created") or 0),
        "created_at": iso(int(view.get("created") or 0), zone),
        "updated": int(view.get("updated") or 0),
        "identities": view.get("identities", []),
        "money": money(total, currency),
        "money_available": money(available, currency),
        "buckets": buckets,
        "reserved": view.get("reserved", {}),
        "sessions": view.get("sessions", []),
    }
