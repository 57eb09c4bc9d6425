"""The export config model and the `ocs export verify` command line."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner
from pydantic import ValidationError

from ocs.cli.export_cmd import export_cli
from ocs.export.config import ExportConfig
from ocs.export.layout import Layout
from ocs.export.money import Currencies
from ocs.export.rows import RowStyle, record_rows
from tests.unit.export.records import record


def test_defaults() -> None:
    cfg = ExportConfig()
    assert (cfg.period, cfg.timezone, cfg.formats) == ("daily", "UTC", ("csv", "jsonl"))
    assert cfg.output_dir == Path("var/export")


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"colour": "blue"}, "Extra inputs are not permitted"),
        ({"timezone": "Mars/Olympus"}, "unknown IANA time zone"),
        ({"period": "weekly"}, "hourly"),
        ({"formats": []}, "at least one format"),
        ({"currency_exponents": {"eur": 2}}, "ISO 4217"),
        ({"currency_exponents": {"EUR": 7}}, "outside 0..6"),
        ({"batch_size": 0}, "greater than or equal to 1"),
    ],
)
def test_bad_config_is_refused(raw: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        ExportConfig.model_validate(raw)


@pytest.mark.skipif(importlib.util.find_spec("pyarrow") is not None, reason="pyarrow present")
def test_parquet_needs_pyarrow() -> None:
    """Parquet is optional: asking for it without pyarrow is a config error, not a crash."""
    with pytest.raises(ValidationError, match="pyarrow"):
        ExportConfig(formats=("csv", "parquet"))


def _one_batch(root: Path) -> Path:
    layout = Layout(root, ("csv", "jsonl"))
    layout.ensure({}, "t")
    style = RowStyle(ZoneInfo("UTC"), Currencies())
    rows = record_rows("10-0", 1, record(), style)
    staged = layout.stage("t", "2025-11-27", 1, ["10-0"], rows)
    layout.publish(staged)
    return staged.final


def test_verify_command_ok(tmp_path: Path) -> None:
    _one_batch(tmp_path)
    result = CliRunner().invoke(export_cli, ["verify", str(tmp_path)])
    assert result.exit_code == 0
    assert result.output.startswith("export verify: ok: 1 periods (0 closed), 1 batches, 2 rows")


def test_verify_command_mismatch_is_one_stderr_line(tmp_path: Path) -> None:
    """A tampered row: exit 1 and exactly one line on stderr naming the file."""
    batch = _one_batch(tmp_path)
    jsonl = batch / "rows.jsonl"
    jsonl.write_text(jsonl.read_text().replace('"net_micro":', '"net_micro":1', 1))
    result = CliRunner().invoke(export_cli, ["verify", str(tmp_path)])
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("export verify: FAILED: 2025-11-27/p01_10-0_10-0/rows.jsonl")
