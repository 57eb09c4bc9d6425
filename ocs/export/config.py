"""The ``export:`` configuration section of the charged-session exporter.

Validated at load into :class:`ExportConfig` (unknown keys rejected; errors
name the file and key path through :func:`ocs.config.validate_section`).
Period, time zone and close grace decide which directory a row lands in, so
they are fixed for one output directory: the exporter records them in
``layout.json`` at the root and refuses to start if they change.
"""

from __future__ import annotations

import importlib.util
import zoneinfo
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ocs.config import validate_section

Format = Literal["csv", "jsonl", "parquet"]
PeriodKind = Literal["hourly", "daily", "monthly"]


class ExportConfig(BaseModel):
    """Settings of ``ocs export`` (see config/ocs.yaml for a commented example)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    output_dir: Path = Path("var/export")
    period: PeriodKind = "daily"
    timezone: str = "UTC"
    formats: tuple[Format, ...] = ("csv", "jsonl")
    # A batch is written when it holds batch_size entries of one partition or
    # its oldest entry waited max_batch_age seconds. Each batch is a directory
    # until its period closes: larger batches mean fewer of them.
    batch_size: int = Field(default=1000, ge=1, le=10_000)
    max_batch_age: float = Field(default=10.0, gt=0, le=3600)
    poll_interval: float = Field(default=0.2, gt=0, le=60)
    # Stream entries acknowledged and older than this are trimmed (0: never).
    retention_seconds: int = Field(default=7 * 86400, ge=0)
    trim_interval: float = Field(default=60.0, gt=0)
    # A period closes (summary + manifest) this long after its end, once every
    # entry written before that instant is acknowledged; records written
    # later than that for an earlier period go to the period they were written in.
    close_grace_seconds: int = Field(default=300, ge=0, le=7 * 86400)
    mask_identities: bool = True
    mask_keep_last: int = Field(default=4, ge=0, le=64)
    group: str = Field(default="ocs-export", min_length=1)
    # Entries pending this long at another consumer are taken over (that
    # exporter is presumed dead). Must be far longer than one batch commit.
    claim_idle_seconds: float = Field(default=60.0, ge=1)
    claim_interval: float = Field(default=10.0, gt=0)
    currency_exponents: dict[str, int] = Field(default_factory=dict)
    default_currency_exponent: int = Field(default=2, ge=0, le=6)
    backoff_initial: float = Field(default=0.5, gt=0)
    backoff_max: float = Field(default=30.0, gt=0)
    # /metrics and /health of the exporter process (`ocs serve` has its own
    # port); host defaults to metrics.host; null disables, 0 picks a free port.
    metrics_host: str | None = None
    metrics_port: int | None = Field(default=9465, ge=0, le=65535)
    # Leave out the records and audit entries of load-test accounts (created
    # by `ocs loadtest`, flagged in the store): they are acknowledged, never written.
    exclude_test_accounts: bool = True
    # In --once mode, give up (exit 1, nothing acknowledged) after this many
    # failed write attempts in a row.
    once_max_attempts: int = Field(default=5, ge=1)

    @field_validator("timezone")
    @classmethod
    def _zone_exists(cls, v: str) -> str:
        try:
            zoneinfo.ZoneInfo(v)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown IANA time zone {v!r}") from exc
        return v

    @field_validator("formats")
    @classmethod
    def _formats_usable(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        if not v:
            raise ValueError("at least one format is needed")
        if len(set(v)) != len(v):
            raise ValueError("formats listed twice")
        if "parquet" in v and importlib.util.find_spec("pyarrow") is None:
            raise ValueError("parquet needs pyarrow (pip install pyarrow)")
        return v

    @field_validator("currency_exponents")
    @classmethod
    def _exponents_in_range(cls, v: dict[str, int]) -> dict[str, int]:
        for code, exp in v.items():
            if len(code) != 3 or not code.isalpha() or not code.isupper():
                raise ValueError(f"{code!r}: expected an ISO 4217 code such as EUR")
            if not 0 <= exp <= 6:
                raise ValueError(f"{code}: exponent {exp} outside 0..6 (amounts are micro-units)")
        return v

    @property
    def zone(self) -> zoneinfo.ZoneInfo:
        return zoneinfo.ZoneInfo(self.timezone)


def load_export_config(raw: Mapping[str, Any] | None, file: Path | None = None) -> ExportConfig:
    """Validate the raw ``export:`` mapping; ConfigError names file and key path."""
    return validate_section(ExportConfig, raw or {}, file, "export")
