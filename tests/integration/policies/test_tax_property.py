"""Property: tax is rounded once, and the export's rows and totals add up to the records.

The gross of a record is split into net + tax by the closing script (Lua
``split_tax``: net rounded half up, exact for every gross below 2^53); the
exporter spreads a record over its service rows and sums rows into period
totals. Whatever the amounts and rate: every row has net + tax = gross, the
rows of a record add up to the record, and the totals to the records.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal
from zoneinfo import ZoneInfo

import msgpack
from hypothesis import given, settings
from hypothesis import strategies as st

from ocs.charging.api import ChargingService
from ocs.charging.records import ChargedRecord, ServiceCharge
from ocs.export.money import Currencies
from ocs.export.rows import RowStyle, record_rows
from ocs.export.summary import PeriodTotals
from ocs.store.scripts import script_source

PROBE = "\nbind()\nlocal a = cmsgpack.unpack(ARGV[1])\nreturn {split_tax(a.g, a.p)}\n"
STYLE = RowStyle(zone=ZoneInfo("UTC"), currencies=Currencies())


def reference_net(gross: int, ppm: int) -> int:
    """net = gross / (1 + rate), rounded half up, in exact decimal arithmetic."""
    net = Decimal(gross) * 1_000_000 / Decimal(1_000_000 + ppm)
    return int(net.quantize(Decimal(1), rounding=ROUND_HALF_UP))


@settings(max_examples=300, deadline=None)
@given(
    records=st.lists(
        st.tuples(
            st.lists(st.integers(0, 10**9), min_size=1, max_size=4),
            st.sampled_from([0, 50_000, 55_000, 196_000, 200_000, 210_000, 250_000]),
        ),
        min_size=1,
        max_size=8,
    ),
)
async def test_tax_rounded_once_and_export_totals_match(
    charging: ChargingService, records: list[tuple[list[int], int]]
) -> None:
    """Rows and totals of the export equal the records' gross, net and tax to the micro-unit."""
    lib = script_source("abandon").split("-- abandon.lua")[0]
    totals = PeriodTotals()
    expected_gross = expected_tax = 0
    for n, (charges, ppm) in enumerate(records):
        gross = sum(charges)
        net, tax = await charging.redis.eval(lib + PROBE, 0, msgpack.packb({"g": gross, "p": ppm}))
        assert net == reference_net(gross, ppm) and net + tax == gross
        rec = ChargedRecord(
            record_id=f"r{n}",
            kind="session",
            account="acct",
            identities=("e164:1",),
            session=f"s{n}",
            owner="",
            start=0,
            end=1,
            cause="normal",
            policy_version="v",
            currency="EUR",
            charged=gross,
            net=net,
            tax=tax,
            tax_rate_ppm=ppm,
            shortfall=0,
            services=tuple(
                ServiceCharge(f"{i}/", f"svc{i}", i, None, {"events": 1}, c)
                for i, c in enumerate(charges)
            ),
        )
        rows = record_rows(f"{n}-0", 0, rec, STYLE)
        assert sum(r["charged_micro"] for r in rows) == gross
        assert sum(r["tax_micro"] for r in rows) == tax
        assert all(r["net_micro"] + r["tax_micro"] == r["charged_micro"] for r in rows)
        for row in rows:
            totals.add(row)
        expected_gross += gross
        expected_tax += tax
    eur = totals.totals({"EUR": 2})["currencies"]["EUR"]
    assert eur["charged_micro"] == expected_gross
    assert eur["tax_micro"] == expected_tax
    assert eur["net_micro"] == expected_gross - expected_tax
