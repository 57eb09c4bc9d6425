"""Parquet rows (optional: only where pyarrow is installed, `pip install pyarrow`)."""

from __future__ import annotations

from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from ocs.export.config import ExportConfig
from ocs.export.formats import read_rows
from ocs.export.layout import Layout, batch_rows
from ocs.export.manifest import close_period
from ocs.export.money import Currencies
from ocs.export.periods import PeriodSpec
from ocs.export.rows import RowStyle, record_rows
from ocs.export.verify import verify
from tests.unit.export.records import record

pytest.importorskip("pyarrow", reason="parquet is an optional format (pip install pyarrow)")


def test_parquet_batch_reads_back_and_verifies(tmp_path: Path) -> None:
    """A batch written as CSV + Parquet holds the same typed rows in both; verify passes."""
    cfg = ExportConfig(formats=("parquet", "csv"))
    layout = Layout(tmp_path, cfg.formats)
    layout.ensure({}, "t")
    rows = record_rows("7-0", 2, record(), RowStyle(ZoneInfo("UTC"), Currencies()))
    staged = layout.stage("t", "2025-11-27", 2, ["7-0"], rows)
    layout.publish(staged)
    assert (staged.final / "rows.parquet").exists()
    assert batch_rows(staged.final) == rows
    assert verify(tmp_path).ok
    spec = PeriodSpec("daily", ZoneInfo("UTC"), 0)
    manifest = close_period(layout, spec, spec.of(1_764_201_600), Currencies().exponent, "t")
    assert manifest is not None
    assert manifest["files"]["rows.parquet"]["rows"] == 2
    assert read_rows(tmp_path / "2025-11-27" / "rows.parquet") == rows
    report = verify(tmp_path)
    assert report.ok, report.problems
