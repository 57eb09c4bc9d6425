"""Request and answer bodies of the admin API (they also make its OpenAPI document).

Amounts: a money amount is given as exactly one of ``amount`` (a decimal
string in the currency, ``"15.00"``), ``amount_minor`` (integer ISO 4217
minor units, ``1500``) or ``amount_micro`` (integer micro-units,
``15000000``); an amount of another unit as ``amount`` in its notation
(``"1GB"``, ``"1h"``, ``"3"``) or ``quantity`` (an integer of octets,
seconds or events). Money in answers: :class:`Money`.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from ocs.rules import MAX_REASON, MAX_U32

Unit = Literal["money", "total_octets", "input_octets", "output_octets", "seconds", "events"]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Money(BaseModel):
    """An amount of money, exact (micro), in minor units, as a decimal string, and its currency."""

    micro: int
    minor: int
    amount: str
    currency: str


class CreateAccount(_Body):
    id: str | None = Field(default=None, description="account id (default: generated)")
    identities: list[str] = Field(min_length=1, max_length=16, examples=[["e164:33612345678"]])
    plan: str
    money: str | None = Field(default=None, description="opening money, decimal string")
    money_minor: int | None = None
    money_micro: int | None = None
    test: bool = Field(default=False, description="a load-test account (left out of exports)")


class AmountFields(_Body):
    unit: Unit = "money"
    amount: str | None = None
    amount_minor: int | None = None
    amount_micro: int | None = None
    quantity: int | None = None
    bucket: str | None = Field(default=None, description="bucket id (default: main money bucket)")


class TopUp(AmountFields):
    expires: str | None = Field(
        default=None, description="ISO 8601 time, unix seconds, or +30d (in the future)"
    )
    rating_groups: list[int] = Field(default_factory=list, max_length=64)
    priority: int = Field(default=100, ge=0, le=MAX_U32)
    reason: str = Field(default="", max_length=MAX_REASON)


class Adjustment(AmountFields):
    """A correction (negative or positive); never below the bucket's floor."""

    reason: str = Field(min_length=1, max_length=MAX_REASON)


class Expire(_Body):
    at: str = Field(default="now", description="ISO 8601 time, unix seconds, now, +1d")
    reason: str = Field(default="", max_length=MAX_REASON)


class StatusChange(_Body):
    reason: str = Field(default="", max_length=MAX_REASON)


class PlanChange(_Body):
    plan: str
    renew: bool = Field(default=True, description="renew the new plan's allowances now")
    reason: str = Field(default="", max_length=MAX_REASON)


class IdentityAdd(_Body):
    identity: str
    reason: str = Field(default="", max_length=MAX_REASON)


class Terminate(_Body):
    session: str = Field(min_length=1, max_length=1024)
    reason: str = Field(default="", max_length=MAX_REASON)


class Units(_Body):
    total_octets: int = Field(default=0, ge=0)
    input_octets: int = Field(default=0, ge=0)
    output_octets: int = Field(default=0, ge=0)
    seconds: int = Field(default=0, ge=0)
    events: int = Field(default=0, ge=0)


class PriceEnquiry(_Body):
    """What would these units of this service cost this subscriber (nothing is charged)."""

    subscriber: str = Field(description="account id or identity (e164:..., imsi:...)")
    rating_group: int | None = Field(default=None, ge=0, le=MAX_U32)
    service_id: int | None = Field(default=None, ge=0, le=MAX_U32)
    units: Units


class Batch(_Body):
    accounts: list[dict[str, Any]] = Field(
        description="rows as in POST /accounts (id, identities, plan, money, test, ref)"
    )


class Problem(BaseModel):
    """Every answer that is not a success."""

    error: str
    message: str
    request_id: str
