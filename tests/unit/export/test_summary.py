"""Summary totals: exact sums, minor units rounded once on the total."""

from __future__ import annotations

from zoneinfo import ZoneInfo

from ocs.export.money import Currencies
from ocs.export.rows import RowStyle, record_rows
from ocs.export.summary import TOTAL_SERVICE, PeriodTotals, summarize
from tests.unit.export.records import record

STYLE = RowStyle(ZoneInfo("UTC"), Currencies())


def test_minor_units_are_rounded_once_on_the_total() -> None:
    """Two 0.185 EUR lines: rows say 19 + 19 cents, the total says 0.37 = 37 cents."""
    rows = [
        r for i in range(2) for r in record_rows(f"{i}-0", 0, record(charged=(185_000,)), STYLE)
    ]
    assert [r["charged_minor"] for r in rows] == [19, 19]
    (total, service) = summarize(rows, {"EUR": 2})
    assert total["service"] == TOTAL_SERVICE
    assert (total["charged_micro"], total["charged"], total["charged_minor"]) == (
        370_000,
        "0.37",
        37,
    )
    assert total["net_minor"] == total["charged_minor"] - total["tax_minor"]
    assert service["charged_minor"] == 37


def test_totals_by_currency_and_sessions() -> None:
    """Per currency sums; sessions count session records, records count all kinds."""
    acc = PeriodTotals()
    for i, (kind, currency) in enumerate(
        [("session", "EUR"), ("event", "EUR"), ("session", "JPY")]
    ):
        for row in record_rows(f"{i}-0", 0, record(kind=kind, currency=currency), STYLE):
            acc.add(row)
    totals = acc.totals({"EUR": 2, "JPY": 0})
    assert (totals["rows"], totals["records"]) == (6, 3)
    assert totals["currencies"]["JPY"]["charged_minor"] == 2  # 1.8 JPY rounds to 2
    summary = acc.summary({"EUR": 2, "JPY": 0})
    eur_total = next(s for s in summary if s["currency"] == "EUR" and s["service"] == "*")
    assert (eur_total["sessions"], eur_total["records"]) == (1, 2)
