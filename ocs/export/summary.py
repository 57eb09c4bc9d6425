"""Period totals: the per-account summary and the per-currency totals.

Units and micro-unit amounts are exact sums of the rows. Minor units are
rounded once, on the total, by the rows' rule (:mod:`ocs.export.money`:
charged and tax half away from zero, net = charged - tax), so a summary
line's minor units always agree with its exact decimal; they may differ by
a few minor units from the sum of the rows' own (per-line) rounding.

Summary rows are keyed (account, currency, service); the row with service
``*`` is the account total. ``sessions`` counts distinct records of kind
``session``, ``records`` distinct records of any kind (events, refunds).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from ocs.export.money import decimal_string, to_minor
from ocs.export.rows import UNIT_COLUMNS, Row

TOTAL_SERVICE = "*"
_AMOUNTS = ("charged_micro", "tax_micro", "net_micro")

SUMMARY_COLUMNS: tuple[str, ...] = (
    "account",
    "currency",
    "service",
    "records",
    "sessions",
    "rows",
    *UNIT_COLUMNS,
    "charged_minor",
    "charged",
    "tax_minor",
    "tax",
    "net_minor",
    "net",
    "charged_micro",
    "tax_micro",
    "net_micro",
)
SUMMARY_TYPES: dict[str, type] = {
    c: (str if c in ("account", "currency", "service", "charged", "tax", "net") else int)
    for c in SUMMARY_COLUMNS
}


class _Acc:
    __slots__ = ("records", "rows", "sessions", "sums")

    def __init__(self) -> None:
        self.records: set[str] = set()
        self.sessions: set[str] = set()
        self.rows = 0
        self.sums: dict[str, int] = dict.fromkeys((*UNIT_COLUMNS, *_AMOUNTS), 0)

    def add(self, row: Row) -> None:
        self.rows += 1
        self.records.add(row["record_id"])
        if row["kind"] == "session":
            self.sessions.add(row["record_id"])
        for name in self.sums:
            self.sums[name] += int(row[name])


class PeriodTotals:
    """Accumulates rows one at a time (a period never has to fit in memory)."""

    def __init__(self) -> None:
        self._groups: dict[tuple[str, str, str], _Acc] = {}
        self._currencies: dict[str, _Acc] = {}

    def add(self, row: Row) -> None:
        for service in (TOTAL_SERVICE, row["service"]):
            key = (row["account"], row["currency"], service)
            self._groups.setdefault(key, _Acc()).add(row)
        self._currencies.setdefault(row["currency"], _Acc()).add(row)

    def summary(self, exponents: Mapping[str, int]) -> list[dict[str, Any]]:
        """Summary rows, sorted by account, currency, then service (total first)."""
        out = []
        for (account, currency, service), acc in sorted(
            self._groups.items(),
            key=lambda kv: (kv[0][0], kv[0][1], kv[0][2] != TOTAL_SERVICE, kv[0][2]),
        ):
            line: dict[str, Any] = {
                "account": account,
                "currency": currency,
                "service": service,
                "records": len(acc.records),
                "sessions": len(acc.sessions),
                "rows": acc.rows,
                **acc.sums,
                **money(acc.sums, exponents[currency]),
            }
            out.append({c: line[c] for c in SUMMARY_COLUMNS})
        return out

    def currencies(self, exponents: Mapping[str, int] | None = None) -> dict[str, Any]:
        """Per currency: rows, records, micro-unit sums (and minor units given exponents)."""
        out: dict[str, Any] = {}
        for cur, acc in sorted(self._currencies.items()):
            line: dict[str, Any] = {
                "rows": acc.rows,
                "records": len(acc.records),
                **{k: acc.sums[k] for k in _AMOUNTS},
            }
            if exponents is not None:
                line.update(money(acc.sums, exponents[cur]))
            out[cur] = line
        return out

    def totals(self, exponents: Mapping[str, int]) -> dict[str, Any]:
        """What a manifest states: rows, records, and the per-currency sums."""
        by_currency = self.currencies(exponents)
        return {
            "rows": sum(t["rows"] for t in by_currency.values()),
            "records": sum(t["records"] for t in by_currency.values()),
            "currencies": by_currency,
        }


def money(sums: Mapping[str, int], exponent: int) -> dict[str, Any]:
    """Minor units (rounded once) and exact decimals of summed micro-units."""
    charged_minor = to_minor(sums["charged_micro"], exponent)
    tax_minor = to_minor(sums["tax_micro"], exponent)
    return {
        "charged_minor": charged_minor,
        "tax_minor": tax_minor,
        "net_minor": charged_minor - tax_minor,
        "charged": decimal_string(sums["charged_micro"], exponent),
        "tax": decimal_string(sums["tax_micro"], exponent),
        "net": decimal_string(sums["net_micro"], exponent),
    }


def _fed(rows: Iterable[Row]) -> PeriodTotals:
    acc = PeriodTotals()
    for row in rows:
        acc.add(row)
    return acc


def summarize(rows: Iterable[Row], exponents: Mapping[str, int]) -> list[dict[str, Any]]:
    return _fed(rows).summary(exponents)


def currency_totals(rows: Iterable[Row]) -> dict[str, Any]:
    """Per currency: rows, records and micro-unit sums (a batch's totals)."""
    return _fed(rows).currencies()


def coerce_summary(raw: Mapping[str, Any]) -> dict[str, Any]:
    if set(raw) != set(SUMMARY_COLUMNS):
        raise ValueError("summary columns differ from the expected set")
    return {c: SUMMARY_TYPES[c](raw[c]) for c in SUMMARY_COLUMNS}
