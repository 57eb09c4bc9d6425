"""Time-of-day tariffs: which price is in force, and where it switches."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from ocs.policy.models import Tariff
from ocs.policy.timebands import Schedule

PARIS = ZoneInfo("Europe/Paris")


def ts(text: str, zone: ZoneInfo = PARIS) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=zone).timestamp())


TARIFF = Tariff.model_validate(
    {
        "prices": {"data": {"per": {"units": 1, "price": 10}}},
        "bands": [
            {
                "name": "xmas",
                "dates": {"start": "2026-12-24", "end": "2026-12-26"},
                "prices": {"data": {"free": True}},
            },
            {
                "name": "night",
                "start": "20:00",
                "end": "08:00",
                "prices": {"data": {"per": {"units": 1, "price": 5}}},
            },
            {
                "name": "weekend",
                "days": ["sat", "sun"],
                "prices": {"data": {"per": {"units": 1, "price": 7}}},
            },
        ],
    }
)
S = Schedule(TARIFF, "Europe/Paris")


def price(at: str) -> int | None:
    p = S.price_at("data", ts(at))
    assert p is not None
    return None if p.free else p.per.price  # type: ignore[union-attr]


def test_price_in_force_by_hour_weekday_and_date() -> None:
    """First matching band wins; night wraps midnight; dates and weekdays match locally."""
    assert price("2026-11-25T12:00") == 10  # Wednesday noon: default
    assert price("2026-11-25T21:00") == 5  # Wednesday night
    assert price("2026-11-26T07:59") == 5  # still the night that began Wednesday
    assert price("2026-11-28T12:00") == 7  # Saturday
    assert price("2026-11-28T22:00") == 5  # Saturday night: night is listed first
    assert price("2026-12-25T12:00") is None  # Christmas: free


def test_switches_are_found_exactly() -> None:
    """Switch instants on a weekday: 08:00 and 20:00 local."""
    found = S.switches("data", ts("2026-11-25T00:00"), ts("2026-11-26T00:00"))
    assert found == [ts("2026-11-25T08:00"), ts("2026-11-25T20:00")]
    assert S.next_switch("data", ts("2026-11-25T19:00"), 3600 * 2) == ts("2026-11-25T20:00")
    assert S.last_switch("data", ts("2026-11-25T20:30"), 3600) == ts("2026-11-25T20:00")


def test_daylight_saving_change_keeps_local_times() -> None:
    """On the night clocks go back (2026-10-25), the 08:00 switch is still 08:00 local."""
    found = S.switches("data", ts("2026-10-25T12:00"), ts("2026-10-26T12:00"))
    # Sunday is a weekend day (7) until 20:00 local, then night (5) until Monday 08:00 (10)
    assert found == [ts("2026-10-25T20:00"), ts("2026-10-26T08:00")]


def test_thirty_days_sixty_switches_bounded_work() -> None:
    """A 30-day window with ~60 switches is found by evaluating a bounded set of
    candidate instants (days x band edges), not per second (CGRateS #397)."""
    weekday_only = Schedule(
        Tariff.model_validate(
            {
                "prices": {"data": {"per": {"units": 1, "price": 10}}},
                "bands": [
                    {
                        "start": "20:00",
                        "end": "08:00",
                        "prices": {"data": {"per": {"units": 1, "price": 5}}},
                    }
                ],
            }
        ),
        "UTC",
    )
    calls = 0
    original = weekday_only.price_at

    def counting(service: str, at: int) -> object:
        nonlocal calls
        calls += 1
        return original(service, at)

    weekday_only.price_at = counting  # type: ignore[method-assign,assignment]
    start = ts("2026-11-01T00:00", ZoneInfo("UTC"))
    found = weekday_only.switches("data", start, start + 30 * 86400)
    assert len(found) == 60
    assert calls <= 31 * 3 + 1  # three candidate instants a day at most
