"""Period totals: the per-account summary and the per-currency totals.

Both are plain sums of the rows (micro-units and minor units alike), so an
invoice built from the summary equals one built line by line. Summary rows
are keyed (account, currency, service); the row with service ``*`` is the
account total. ``sessions`` counts distinct records of kind ``session``,
``records`` distinct records of any kind (events, refunds).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from ocs.export.money import decimal_string
from ocs.export.rows import UNIT_COLUMNS, Row

TOTAL_SERVICE = "*"
_AMOUNTS = ("charged_micro", "tax_micro", "net_micro", "charged_minor", "tax_minor", "net_minor")

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
            exp = exponents[currency]
            line: dict[str, Any] = {
                "account": account,
                "currency": currency,
                "service": service,
                "records": len(acc.records),
                "sessions": len(acc.sessions),
                "rows": acc.rows,
                **acc.sums,
                "charged": decimal_string(acc.sums["charged_micro"], exp),
                "tax": decimal_string(acc.sums["tax_micro"], exp),
                "net": decimal_string(acc.sums["net_micro"], exp),
            }
            out.append({c: line[c] for c in SUMMARY_COLUMNS})
        return out

    def currencies(self) -> dict[str, dict[str, int]]:
        """Per currency: rows, records and the six amount sums."""
        return {
            cur: {
                "rows": acc.rows,
                "records": len(acc.records),
                **{k: acc.sums[k] for k in _AMOUNTS},
            }
            for cur, acc in sorted(self._currencies.items())
        }

    def totals(self) -> dict[str, Any]:
        """What a manifest states: rows, records, and the per-currency sums."""
        by_currency = self.currencies()
        return {
            "rows": sum(t["rows"] for t in by_currency.values()),
            "records": sum(t["records"] for t in by_currency.values()),
            "currencies": by_currency,
        }


def _fed(rows: Iterable[Row]) -> PeriodTotals:
    acc = PeriodTotals()
    for row in rows:
        acc.add(row)
    return acc


def summarize(rows: Iterable[Row], exponents: Mapping[str, int]) -> list[dict[str, Any]]:
    return _fed(rows).summary(exponents)


def currency_totals(rows: Iterable[Row]) -> dict[str, dict[str, int]]:
    return _fed(rows).currencies()


def coerce_summary(raw: Mapping[str, Any]) -> dict[str, Any]:
    if set(raw) != set(SUMMARY_COLUMNS):
        raise ValueError("summary columns differ from the expected set")
    return {c: SUMMARY_TYPES[c](raw[c]) for c in SUMMARY_COLUMNS}
