"""Batch staging and publishing, period close, and `verify` on files alone."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from ocs.export.formats import read_rows
from ocs.export.layout import BatchExists, Layout, LayoutMismatch, batch_rows
from ocs.export.manifest import close_period
from ocs.export.money import Currencies, to_minor
from ocs.export.periods import PeriodSpec
from ocs.export.rows import Row, RowStyle, record_rows
from ocs.export.summary import TOTAL_SERVICE
from ocs.export.verify import verify
from tests.unit.export.records import record

UTC = ZoneInfo("UTC")
SPEC = PeriodSpec("daily", UTC, 0)
STYLE = RowStyle(UTC, Currencies())
DAY = SPEC.of(1_764_201_600)


def rows_for(ids: list[str], partition: int, account: str = "acct-1") -> list[Row]:
    return [row for i in ids for row in record_rows(i, partition, record(account=account), STYLE)]


def publish(layout: Layout, partition: int, ids: list[str], account: str = "acct-1") -> Path:
    staged = layout.stage("host+1+aa", DAY.label, partition, ids, rows_for(ids, partition, account))
    layout.publish(staged)
    return staged.final


@pytest.fixture
def layout(tmp_path: Path) -> Layout:
    lay = Layout(tmp_path / "out", ("csv", "jsonl"))
    lay.ensure({"period": "daily"}, "host+1+aa")
    return lay


def test_publish_is_one_directory_named_by_ids(layout: Layout) -> None:
    final = publish(layout, 3, ["1764201600000-1", "1764201600000-0", "1764201600500-0"])
    assert final.name == "p03_1764201600000-0_1764201600500-0"
    assert sorted(p.name for p in final.iterdir()) == ["batch.json", "rows.csv", "rows.jsonl"]
    assert list(layout.tmp.iterdir()) == []
    assert layout.committed(DAY.label, 3, ["1764201600000-1", "1764201600000-9"]) == {
        "1764201600000-1"
    }
    assert layout.committed(DAY.label, 4, ["1764201600000-1"]) == set()
    assert len(batch_rows(final)) == 6


def test_publishing_the_same_batch_twice_is_refused(layout: Layout) -> None:
    """A second batch of the same name never overwrites the first."""
    publish(layout, 1, ["10-0", "20-0"])
    with pytest.raises(BatchExists):
        publish(layout, 1, ["10-0", "20-0"])


def test_layout_change_is_refused(layout: Layout) -> None:
    with pytest.raises(LayoutMismatch, match="daily"):
        layout.ensure({"period": "monthly"}, "host+1+aa")


def test_cleanup_removes_only_stale_staging(layout: Layout) -> None:
    (layout.tmp / "dead+1+aa~3").mkdir()
    (layout.tmp / "live+2+bb~1").mkdir()
    assert layout.cleanup_staging(lambda token: token.startswith("dead")) == 1
    assert [p.name for p in layout.tmp.iterdir()] == ["live+2+bb~1"]


def test_close_then_verify(layout: Layout) -> None:
    """Close merges the batches into one rows file per format; summary = sums of rows."""
    publish(layout, 1, ["10-0", "11-0"], account="a")
    publish(layout, 2, ["12-0"], account="b")
    batch_view = [r for b in layout.batches(DAY.label) for r in batch_rows(b)]
    manifest = close_period(layout, SPEC, DAY, Currencies().exponent, "host+1+aa")
    assert manifest is not None
    pdir = layout.period_dir(DAY.label)
    assert layout.batches(DAY.label) == []
    assert sorted(p.name for p in pdir.iterdir() if not p.name.startswith(".")) == [
        "manifest.json",
        "rows.csv",
        "rows.jsonl",
        "summary.csv",
        "summary.jsonl",
    ]
    rows = read_rows(pdir / "rows.csv")
    assert rows == read_rows(pdir / "rows.jsonl") == batch_view
    assert manifest["totals"]["rows"] == manifest["files"]["rows.csv"]["rows"] == 6
    assert manifest["totals"]["currencies"]["EUR"]["charged_micro"] == sum(
        r["charged_micro"] for r in rows
    )
    summary = [json.loads(line) for line in (pdir / "summary.jsonl").read_text().splitlines()]
    totals = {s["account"]: s for s in summary if s["service"] == TOTAL_SERVICE}
    for account in ("a", "b"):
        mine = [r for r in rows if r["account"] == account]
        for col in ("charged_micro", "tax_micro", "net_micro", "used_total_octets"):
            assert totals[account][col] == sum(r[col] for r in mine)
        assert totals[account]["charged_minor"] == to_minor(totals[account]["charged_micro"], 2)
        assert totals[account]["sessions"] == len({r["record_id"] for r in mine})
    assert close_period(layout, SPEC, DAY, Currencies().exponent, "host+2+bb") is None
    report = verify(layout.root)
    assert report.ok, report.problems
    assert (report.periods, report.closed, report.rows, report.records) == (1, 1, 6, 3)


def test_verify_detects_a_changed_row(layout: Layout) -> None:
    """One altered amount in a closed period fails the checksum and the comparison."""
    publish(layout, 1, ["10-0"])
    close_period(layout, SPEC, DAY, Currencies().exponent, "host+1+aa")
    csv_path = layout.period_dir(DAY.label) / "rows.csv"
    csv_path.write_text(csv_path.read_text().replace("1200000", "1200001", 1))
    report = verify(layout.root)
    assert not report.ok
    assert any("sha256" in p for p in report.problems)
    assert any("rows files differ at row 1" in p for p in report.problems)


def test_verify_detects_a_changed_batch(layout: Layout) -> None:
    """One altered amount in an open period's batch fails checksum and totals."""
    final = publish(layout, 1, ["10-0"])
    jsonl = final / "rows.jsonl"
    jsonl.write_text(jsonl.read_text().replace("1200000", "1200001", 1))
    report = verify(layout.root)
    assert any("sha256" in p for p in report.problems)
    assert any("different rows" in p for p in report.problems)


def test_verify_detects_an_entry_exported_twice(layout: Layout) -> None:
    """The same stream entry in two batches is reported (exactly once)."""
    first = publish(layout, 1, ["10-0", "11-0"])
    shutil.copytree(first, first.parent / "p01_10-0_12-0")
    report = verify(layout.root)
    assert any("also in" in p for p in report.problems)


def test_interrupted_close_is_reported_then_finished(layout: Layout) -> None:
    """Batches left beside a manifest are flagged by verify; the next close removes them."""
    final = publish(layout, 1, ["10-0"])
    saved = final.parent / "saved"
    shutil.copytree(final, saved)
    close_period(layout, SPEC, DAY, Currencies().exponent, "host+1+aa")
    saved.rename(final)  # as if the process died between the manifest and the clean-up
    report = verify(layout.period_dir(DAY.label))
    assert any("batch directories remain" in p for p in report.problems)
    assert close_period(layout, SPEC, DAY, Currencies().exponent, "host+1+aa") is None
    assert verify(layout.root).ok


def test_two_closers_at_once_close_once(layout: Layout) -> None:
    """Two exporters closing the same period together: one writes, the other finds it done."""
    import threading

    for p in range(8):
        publish(layout, p, [f"{10 + p}-0", f"{20 + p}-0"], account=f"acct-{p % 3}")
    results: list[object] = []

    def close(token: str) -> None:
        results.append(close_period(layout, SPEC, DAY, Currencies().exponent, token))

    threads = [threading.Thread(target=close, args=(f"host+{i}+cc",)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(r is None for r in results) == [False, True]
    report = verify(layout.root)
    assert report.ok, report.problems
    assert report.rows == 32


def test_close_interrupted_before_its_manifest_is_reported(layout: Layout) -> None:
    """Merged files without a manifest (crash mid-close) are flagged; a new close fixes it."""
    publish(layout, 1, ["10-0"])
    close_period(layout, SPEC, DAY, Currencies().exponent, "host+1+aa")
    pdir = layout.period_dir(DAY.label)
    (pdir / "manifest.json").unlink()  # as if killed just before the manifest's rename
    publish(layout, 1, ["10-0"])
    report = verify(layout.root)
    assert any("without a manifest" in p for p in report.problems)
    assert close_period(layout, SPEC, DAY, Currencies().exponent, "host+1+aa") is not None
    assert verify(layout.root).ok
