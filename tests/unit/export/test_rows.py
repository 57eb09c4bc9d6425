"""Invoice rows of a record: amounts, tax split, masking, time zone, formats."""

from __future__ import annotations

from pathlib import Path
from zoneinfo import ZoneInfo

from hypothesis import given
from hypothesis import strategies as st

from ocs.export.formats import read_rows, write_file
from ocs.export.money import Currencies
from ocs.export.rows import COLUMNS, RowStyle, mask_identity, record_rows
from tests.unit.export.records import record

STYLE = RowStyle(ZoneInfo("Europe/Paris"), Currencies())


def test_rows_of_two_service_record() -> None:
    """Gross 1.80 EUR at 20% VAT over two services: 1.50 net + 0.30 tax, split 2:1."""
    rec = record(charged=(1_200_000, 600_000), ppm=200_000)
    rows = record_rows("1764201600000-0", 3, rec, STYLE)
    assert [r["service"] for r in rows] == ["10/", "20/"]
    first, second = rows
    assert (second["charged_micro"], second["tax_micro"]) == (600_000, 100_000)
    expected = {
        "charged_micro": 1_200_000,
        "tax_micro": 200_000,
        "net_micro": 1_000_000,
        "charged": "1.20",
        "tax": "0.20",
        "net": "1.00",
        "charged_minor": 120,
        "tax_minor": 20,
        "net_minor": 100,
        "tax_rate": "20",
        "currency": "EUR",
        "used_total_octets": 1000,
        "used_seconds": 60,
        "used_events": 0,
        "identity": "e164:*******5678",
        "end": "2025-11-27T01:00:00+01:00",
        "entry_id": "1764201600000-0",
        "partition": 3,
        "rating_group": "10",
        "service_id": "",
    }
    assert {k: first[k] for k in expected} == expected
    assert list(first) == list(COLUMNS)


def test_record_without_services_is_one_row() -> None:
    rec = record(charged=())
    rec = type(rec)(
        **{
            **{f: getattr(rec, f) for f in rec.__dataclass_fields__},
            "charged": 500_000,
            "net": 500_000,
            "tax": 0,
            "tax_rate_ppm": 0,
        }
    )
    (row,) = record_rows("1-0", 0, rec, STYLE)
    assert (row["service"], row["charged_micro"], row["tax_micro"]) == ("", 500_000, 0)


def test_unmasked_identities() -> None:
    style = RowStyle(ZoneInfo("UTC"), Currencies(), mask_identities=False)
    (row, _) = record_rows("1-0", 0, record(), style)
    assert row["identity"] == "e164:33612345678"


def test_mask_identity_shapes() -> None:
    assert mask_identity("nai:bob@example.net", 4) == "nai:***********.net"
    assert mask_identity("imsi:12", 4) == "imsi:*2"
    assert mask_identity("plain", 0) == "*****"


@given(
    st.lists(st.integers(-(10**9), 10**10), min_size=1, max_size=5),
    st.sampled_from([0, 50_000, 200_000, 210_000]),
    st.sampled_from(["EUR", "JPY", "BHD"]),
)
def test_rows_add_up_to_the_record(amounts: list[int], ppm: int, currency: str) -> None:
    """Per record: sum of rows = charged, tax and net exactly; each row net = gross - tax."""
    rec = record(charged=tuple(amounts), ppm=ppm, currency=currency)
    rows = record_rows("5-1", 1, rec, STYLE)
    assert sum(r["charged_micro"] for r in rows) == rec.charged
    assert sum(r["tax_micro"] for r in rows) == rec.tax
    assert sum(r["net_micro"] for r in rows) == rec.net
    for r in rows:
        assert r["net_minor"] == r["charged_minor"] - r["tax_minor"]


def test_csv_and_jsonl_round_trip(tmp_path: Path) -> None:
    """Both formats read back to the same typed rows (commas and quotes included)."""
    rec = record()
    rec = type(rec)(
        **{
            **{f: getattr(rec, f) for f in rec.__dataclass_fields__},
            "cause": 'odd, "quoted"\ncause',
        }
    )
    rows = record_rows("9-9", 2, rec, STYLE)
    for fmt in ("csv", "jsonl"):
        path = tmp_path / f"rows.{fmt}"
        info = write_file(path, fmt, COLUMNS, rows)
        assert info["rows"] == 2
        assert info["bytes"] == path.stat().st_size
        assert read_rows(path) == rows
