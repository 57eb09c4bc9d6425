"""Billing periods (hourly / daily / monthly) in a configured IANA time zone.

A row belongs to the period containing its record's ``end`` time, in the
configured zone, unless the record reached the stream more than the close
grace after that period ended: then it belongs to the period containing its
stream entry time (a late record never reopens a closed period). The rule
uses only the record and its stream id, so every exporter, before or after a
crash, puts an entry in the same directory.

Directory labels: ``2026-11-27T13+0100`` (hourly: the UTC offset keeps the
repeated hour of a DST fold distinct), ``2026-11-27`` (daily), ``2026-11``
(monthly). A day or month starts at local midnight; a zone whose clocks skip
midnight starts it at the first instant after the gap.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

_HOURLY = re.compile(r"^(\d{4})-(\d{2})-(\d{2})T(\d{2})([+-])(\d{2})(\d{2})$")
_DAILY = re.compile(r"^(\d{4})-(\d{2})-(\d{2})$")
_MONTHLY = re.compile(r"^(\d{4})-(\d{2})$")


@dataclass(frozen=True, slots=True)
class Period:
    """One billing period: [start, end) in unix seconds, and its directory label."""

    label: str
    start: int
    end: int


@dataclass(frozen=True, slots=True)
class PeriodSpec:
    kind: str  # "hourly" | "daily" | "monthly"
    zone: ZoneInfo
    grace: int  # seconds after a period's end before it may close

    def of(self, ts: int) -> Period:
        """The period containing unix time ``ts``."""
        local = datetime.fromtimestamp(ts, self.zone)
        if self.kind == "hourly":
            start = local.replace(minute=0, second=0, microsecond=0)
            start_ts = int(start.timestamp())
            return Period(_hour_label(start), start_ts, start_ts + 3600)
        if self.kind == "daily":
            first = datetime(local.year, local.month, local.day, tzinfo=self.zone)
            nxt = first.date() + timedelta(days=1)
            after = datetime(nxt.year, nxt.month, nxt.day, tzinfo=self.zone)
            return Period(first.strftime("%Y-%m-%d"), _ts(first), _ts(after))
        if self.kind == "monthly":
            first = datetime(local.year, local.month, 1, tzinfo=self.zone)
            year, month = (
                (local.year + 1, 1) if local.month == 12 else (local.year, local.month + 1)
            )
            after = datetime(year, month, 1, tzinfo=self.zone)
            return Period(first.strftime("%Y-%m"), _ts(first), _ts(after))
        raise ValueError(f"unknown period kind {self.kind!r}")

    def assign(self, end_ts: int, entry_ms: int) -> Period:
        """The period a record goes to (see module docstring)."""
        period = self.of(end_ts)
        if entry_ms < (period.end + self.grace) * 1000:
            return period
        return self.of(entry_ms // 1000)

    def close_watermark_ms(self, period: Period) -> int:
        """Every entry below this stream time must be acknowledged to close."""
        return (period.end + self.grace) * 1000

    def parse(self, label: str) -> Period | None:
        """The period named by a directory label, or None if not one of ours."""
        try:
            start = self._label_start(label)
        except ValueError:
            return None
        if start is None:
            return None
        period = self.of(_ts(start))
        return period if period.label == label else None

    def _label_start(self, label: str) -> datetime | None:
        if self.kind == "hourly" and (m := _HOURLY.match(label)):
            y, mo, d, h, sign, oh, om = m.groups()
            offset = timedelta(hours=int(oh), minutes=int(om)) * (-1 if sign == "-" else 1)
            naive = datetime(int(y), int(mo), int(d), int(h))
            return (naive - offset).replace(tzinfo=UTC)
        if self.kind == "daily" and (m := _DAILY.match(label)):
            y, mo, d = m.groups()
            return datetime(int(y), int(mo), int(d), tzinfo=self.zone)
        if self.kind == "monthly" and (m := _MONTHLY.match(label)):
            y, mo = m.groups()
            return datetime(int(y), int(mo), 1, tzinfo=self.zone)
        return None


def _ts(dt: datetime) -> int:
    return int(dt.timestamp())


def _hour_label(start: datetime) -> str:
    offset = start.utcoffset() or timedelta(0)
    minutes = int(offset.total_seconds()) // 60
    sign = "-" if minutes < 0 else "+"
    hh, mm = divmod(abs(minutes), 60)
    return f"{start:%Y-%m-%dT%H}{sign}{hh:02d}{mm:02d}"


def iso_local(ts: int, zone: ZoneInfo) -> str:
    """ISO 8601 of unix time ``ts`` in ``zone``, with its UTC offset."""
    return datetime.fromtimestamp(ts, zone).isoformat()
