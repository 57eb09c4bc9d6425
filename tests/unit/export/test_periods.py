"""Billing periods in a time zone, DST included, and the late-record rule."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from ocs.export.periods import PeriodSpec

PARIS = ZoneInfo("Europe/Paris")


def ts(text: str) -> int:
    return int(datetime.fromisoformat(text).timestamp())


@pytest.mark.parametrize(
    ("kind", "when", "label", "start", "end"),
    [
        (
            "daily",
            "2026-11-27T00:30:00+01:00",
            "2026-11-27",
            "2026-11-27T00:00:00+01:00",
            "2026-11-28T00:00:00+01:00",
        ),
        (
            "daily",
            "2026-11-26T23:30:00+00:00",
            "2026-11-27",
            "2026-11-27T00:00:00+01:00",
            "2026-11-28T00:00:00+01:00",
        ),
        (
            "monthly",
            "2026-12-31T23:59:59+01:00",
            "2026-12",
            "2026-12-01T00:00:00+01:00",
            "2027-01-01T00:00:00+01:00",
        ),
        (
            "hourly",
            "2026-11-27T13:59:59+01:00",
            "2026-11-27T13+0100",
            "2026-11-27T13:00:00+01:00",
            "2026-11-27T14:00:00+01:00",
        ),
        # DST end: the 23-hour and 25-hour days, and the repeated hour.
        (
            "daily",
            "2026-10-25T12:00:00+01:00",
            "2026-10-25",
            "2026-10-25T00:00:00+02:00",
            "2026-10-26T00:00:00+01:00",
        ),
        (
            "daily",
            "2026-03-29T12:00:00+02:00",
            "2026-03-29",
            "2026-03-29T00:00:00+01:00",
            "2026-03-30T00:00:00+02:00",
        ),
        (
            "hourly",
            "2026-10-25T02:30:00+02:00",
            "2026-10-25T02+0200",
            "2026-10-25T02:00:00+02:00",
            "2026-10-25T03:00:00+02:00",
        ),
        (
            "hourly",
            "2026-10-25T02:30:00+01:00",
            "2026-10-25T02+0100",
            "2026-10-25T02:00:00+01:00",
            "2026-10-25T03:00:00+01:00",
        ),
    ],
)
def test_period_of(kind: str, when: str, label: str, start: str, end: str) -> None:
    spec = PeriodSpec(kind, PARIS, 0)
    period = spec.of(ts(when))
    assert (period.label, period.start, period.end) == (label, ts(start), ts(end))
    assert spec.parse(label) == period


def test_parse_rejects_other_labels() -> None:
    spec = PeriodSpec("daily", PARIS, 0)
    assert spec.parse("2026-11") is None
    assert spec.parse(".tmp") is None
    assert spec.parse("2026-02-30") is None


def test_late_record_goes_to_its_entry_period() -> None:
    """A record written after its period's grace goes where it was written."""
    spec = PeriodSpec("daily", ZoneInfo("UTC"), 300)
    end = ts("2026-11-26T23:59:59+00:00")
    on_time = ts("2026-11-27T00:04:59+00:00") * 1000
    late = ts("2026-11-27T00:05:00+00:00") * 1000
    assert spec.assign(end, on_time).label == "2026-11-26"
    assert spec.assign(end, late).label == "2026-11-27"
    assert spec.close_watermark_ms(spec.of(end)) == late
