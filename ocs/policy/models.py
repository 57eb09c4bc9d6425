"""Policy models: services, tariffs, quota rules and plans, as ops write them.

Parsed from YAML into frozen pydantic models with unknown keys rejected
(STYLE.md 10); :mod:`ocs.policy.loader` turns validation failures into
messages naming the file, the key path and what was expected. The schema is
documented key by key in ``policies/README.md``.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from ocs.policy.quantities import parse_money, parse_octets, parse_seconds
from ocs.vocabulary.types import FinalUnitAction, UnitType

Money = Annotated[int, BeforeValidator(parse_money)]
Seconds = Annotated[int, BeforeValidator(parse_seconds)]
# A grant or block size is in the service's own unit; octets accept "10MB",
# seconds "15m"; both accept plain integers.
Quantity = Annotated[int, BeforeValidator(lambda v: _parse_quantity(v))]


def _parse_quantity(value: object) -> int:
    """A grant or block size: plain integer, octets ('10MB') or seconds ('15m')."""
    for parse in (parse_octets, parse_seconds):
        try:
            return parse(value)
        except ValueError:
            continue
    raise ValueError(
        f"expected a whole number, octets like '10MB' or seconds like '15m', got {value!r}"
    )


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Service(_Strict):
    """A service the gateways name by rating group and/or service identifier."""

    rating_group: int | None = Field(default=None, ge=0, le=2**32 - 1)
    service_id: int | None = Field(default=None, ge=0, le=2**32 - 1)
    unit: UnitType = UnitType.TOTAL_OCTETS
    # False: the service is not credit-controlled (Gy 4011, no quota needed).
    credit_control: bool = True
    description: str = ""

    @model_validator(mode="after")
    def _unit_is_usage(self) -> Service:
        if self.unit is UnitType.MONEY:
            raise ValueError("unit: a service is rated in octets, seconds or events, not money")
        return self


class Block(_Strict):
    """``units`` of usage cost ``price``."""

    units: Quantity = Field(gt=0)
    price: Money


class Price(_Strict):
    """Price of one service: an optional first block (a minimum charge, e.g.
    the first 60 s), then per block of ``per.units``, rounded per ``rounding``
    (up: every started block; down: completed blocks; nearest)."""

    free: bool = False
    first: Block | None = None
    per: Block | None = None
    rounding: Literal["up", "down", "nearest"] = "up"

    @model_validator(mode="after")
    def _has_a_price(self) -> Price:
        if not self.free and self.per is None:
            raise ValueError(
                "per: required unless free is true (e.g. per: {units: 1MB, price: '0.01'})"
            )
        return self


Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
HHMM = Annotated[str, Field(pattern=r"^([01]?[0-9]|2[0-3]):[0-5][0-9]$")]


class DateRange(_Strict):
    """Inclusive local dates, e.g. ``{start: 2026-12-24, end: 2026-12-26}``."""

    start: date
    end: date


class Band(_Strict):
    """Prices that apply on some days, hours or dates (local time of the policy
    ``timezone``). ``start`` == ``end`` means all day; ``start`` > ``end``
    wraps midnight (the hours after midnight belong to the day they began)."""

    name: str = ""
    days: tuple[Weekday, ...] = ()  # empty: every day
    start: HHMM = "00:00"
    end: HHMM = "00:00"
    dates: DateRange | None = None
    prices: dict[str, Price]


class Tariff(_Strict):
    """Prices per service name, with tax; ``bands`` override them by time."""

    prices: dict[str, Price]
    bands: tuple[Band, ...] = ()
    # VAT/GST in percent as a decimal string ("20", "8.5"); prices are gross.
    tax_percent: str = "0"

    @property
    def tax_ppm(self) -> int:
        return parse_money(self.tax_percent) // 100  # percent -> parts per million


class FinalUnit(_Strict):
    action: Literal["terminate", "redirect", "restrict"] = "terminate"
    redirect_url: str | None = None
    filter_ids: tuple[str, ...] = ()
    restriction_rules: tuple[str, ...] = ()

    @model_validator(mode="after")
    def _redirect_has_url(self) -> FinalUnit:
        if self.action == "redirect" and not self.redirect_url:
            raise ValueError("redirect_url: required when action is redirect")
        return self

    @property
    def final_unit_action(self) -> FinalUnitAction:
        return {
            "terminate": FinalUnitAction.TERMINATE,
            "redirect": FinalUnitAction.REDIRECT,
            "restrict": FinalUnitAction.RESTRICT_ACCESS,
        }[self.action]


class Quota(_Strict):
    """How much to grant per request, and the timers that go with it
    (RFC 4006 §8.33 Validity-Time; TS 32.299 thresholds and QHT)."""

    default_grant: Quantity = Field(gt=0)
    max_grant: Quantity | None = None
    # Dynamic sizing: grant this share of what the balance can pay for,
    # never less than min_grant (unless the balance pays less), never more
    # than max_grant or the request.
    balance_share_percent: int | None = Field(default=None, ge=1, le=100)
    min_grant: Quantity | None = None
    validity_time: Seconds = 3600
    # The gateway reports when this share (percent) of the grant is left.
    threshold_percent: int = Field(default=0, ge=0, le=100)
    quota_holding_time: Seconds = 0
    # Tcc: the session is abandoned after this long without a request.
    supervision_time: Seconds | None = None
    final_unit: FinalUnit = FinalUnit()

    @property
    def supervision(self) -> int:
        return (
            self.supervision_time if self.supervision_time is not None else 2 * self.validity_time
        )


class Allowance(_Strict):
    """A recurring bundle renewed every period (e.g. 5 GB of data a month).

    Renewal replaces the bundle's bucket with a fresh one expiring at the end
    of the period; ``rollover_percent`` of what was left is carried over,
    capped at ``rollover_max``.
    """

    unit: UnitType
    amount: Quantity = Field(gt=0)
    services: tuple[str, ...] = ()  # service names; empty: every service rated in `unit`
    period: Literal["daily", "weekly", "monthly"] = "monthly"
    cycle_day: int = Field(default=1, ge=1, le=28)  # monthly: day of month; weekly: 1 = Monday
    rollover_percent: int = Field(default=0, ge=0, le=100)
    rollover_max: Quantity | None = None
    priority: int = 10


class Plan(_Strict):
    """What an account subscribes to: its currency, tariff and bundles."""

    currency: str = Field(pattern=r"^[A-Z]{3}$")
    tariff: str
    description: str = ""
    allowances: dict[str, Allowance] = {}


class Notifications(_Strict):
    """Balance events for integrations (the notifications stream)."""

    # Money left (available) below which a low_balance event is written,
    # once per crossing, e.g. ["5.00", "1.00"].
    low_balance: tuple[Money, ...] = ()


class Defaults(_Strict):
    """Fallbacks: the service for command-level (no MSCC) requests and RADIUS."""

    service: str
    quota: Quota | None = None


class PolicyDocument(_Strict):
    """One policy file: any subset of the top-level sections."""

    services: dict[str, Service] = {}
    tariffs: dict[str, Tariff] = {}
    quotas: dict[str, Quota] = {}
    plans: dict[str, Plan] = {}
    defaults: Defaults | None = None
    timezone: str | None = None
    notifications: Notifications | None = None

    @classmethod
    def keys(cls) -> list[str]:
        return list(cls.model_fields)
