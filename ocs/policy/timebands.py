"""Time-of-day, weekday and date-range tariffs, in the policy's time zone.

A tariff has default ``prices`` and an ordered list of ``bands``; at an
instant, a service's price is that of the first band that matches the
instant and prices the service, else the default. A *switch* is an instant
where that price changes. Switches can only happen at a band's start or end
time or at a local midnight (weekdays and dates change there), so they are
found by evaluating the price at those candidate instants only: the cost is
bounded by the number of days and bands in the window, never by the
session's length (the CGRateS #397 failure mode is per-second stepping).

Used for Gy Tariff-Time-Change (RFC 4006 §8.20) and to rate usage reported
BEFORE / AFTER a switch (§8.27), and for RADIUS usage that spans a switch
(split in proportion to time, see policies/README.md).
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from ocs.policy.models import Band, Price, Tariff

_WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def _parse_hhmm(text: str) -> time:
    hh, _, mm = text.partition(":")
    return time(int(hh) % 24, int(mm or 0))


def band_matches(band: Band, local: datetime) -> bool:
    """Is the local wall-clock instant inside the band (days, dates, hours)?"""
    start, end = _parse_hhmm(band.start), _parse_hhmm(band.end)
    clock = local.time()
    if start == end:
        in_hours, day = True, local.date()
    elif start < end:
        in_hours, day = start <= clock < end, local.date()
    else:  # wraps midnight: the part after midnight belongs to the day it started
        in_hours = clock >= start or clock < end
        day = local.date() if clock >= start else local.date() - timedelta(days=1)
    if not in_hours:
        return False
    if band.days and _WEEKDAYS[day.weekday()] not in band.days:
        return False
    return band.dates is None or band.dates.start <= day <= band.dates.end


class Schedule:
    """Prices of one tariff over time, in one zone."""

    def __init__(self, tariff: Tariff, zone: str) -> None:
        self.tariff = tariff
        self.zone = ZoneInfo(zone)

    def price_at(self, service: str, ts: int) -> Price | None:
        if not self.tariff.bands:
            return self.tariff.prices.get(service)
        local = datetime.fromtimestamp(ts, self.zone)
        for band in self.tariff.bands:
            if service in band.prices and band_matches(band, local):
                return band.prices[service]
        return self.tariff.prices.get(service)

    def _candidates(self, start: int, end: int) -> list[int]:
        """Instants in (start, end] where a price may change, ascending."""
        first = datetime.fromtimestamp(start, self.zone).date() - timedelta(days=1)
        last = datetime.fromtimestamp(end, self.zone).date()
        times = {time(0, 0)}
        for band in self.tariff.bands:
            times.add(_parse_hhmm(band.start))
            times.add(_parse_hhmm(band.end))
        out: set[int] = set()
        day: date = first
        while day <= last:
            for t in times:
                ts = int(datetime.combine(day, t, self.zone).timestamp())
                if start < ts <= end:
                    out.add(ts)
            day += timedelta(days=1)
        return sorted(out)

    def switches(self, service: str, start: int, end: int) -> list[int]:
        """Every instant in (start, end] where the service's price changes."""
        if not self.tariff.bands:
            return []
        out = []
        current = self.price_at(service, start)
        for ts in self._candidates(start, end):
            price = self.price_at(service, ts)
            if price != current:
                out.append(ts)
                current = price
        return out

    def next_switch(self, service: str, ts: int, horizon: int) -> int | None:
        found = self.switches(service, ts, ts + horizon)
        return found[0] if found else None

    def last_switch(self, service: str, ts: int, lookback: int) -> int | None:
        found = self.switches(service, ts - lookback, ts)
        return found[-1] if found else None
