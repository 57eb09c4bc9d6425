"""Buckets: top-up, adjustment, expiry; price enquiry (nothing charged)."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from ocs.accounts import BucketSpec
from ocs.admin.context import ApiError, actor, ctx_of, mutate, require, resolve
from ocs.admin.models import Adjustment, AmountFields, Expire, PriceEnquiry, TopUp
from ocs.admin.views import money, parse_amount
from ocs.rules import account_ref, bucket_id, expiry, instant
from ocs.rules import amount as unit_amount
from ocs.vocabulary.types import (
    EventAction,
    Identity,
    NotificationKind,
    ServiceKey,
    ServiceStatus,
    UnitType,
    Usage,
)

router = APIRouter(tags=["balances"])
READ, OPERATOR = require("read"), require("operator")


def _amount(body: AmountFields, currency: str, negative: bool) -> int:
    """Micro-units or units from the body's one amount field (400 otherwise)."""
    unit = UnitType(body.unit)
    try:
        if unit is UnitType.MONEY:
            if body.quantity is not None:
                raise ValueError("quantity is for octets, seconds and events; money takes amount")
            if body.amount is not None:
                value = unit_amount(body.amount, unit, negative=negative)
                if body.amount_minor is not None or body.amount_micro is not None:
                    raise ValueError("give exactly one of amount, amount_minor, amount_micro")
            else:
                value = parse_amount(None, body.amount_minor, body.amount_micro, currency)
        else:
            if body.amount_minor is not None or body.amount_micro is not None:
                raise ValueError(f"{unit.value} takes amount ('1GB', '1h', '3') or quantity")
            if (body.amount is None) == (body.quantity is None):
                raise ValueError("give exactly one of amount and quantity")
            if body.quantity is not None:
                value = body.quantity
            else:
                assert body.amount is not None
                value = unit_amount(body.amount, unit, negative=negative)
        if body.bucket is not None:
            bucket_id(body.bucket)
    except ValueError as exc:
        raise ApiError(400, "bad_request", str(exc)) from None
    if value == 0 or (value < 0 and not negative):
        raise ApiError(400, "bad_request", "amount: must be positive" if not negative else "zero")
    return value


async def _currency(request: Request, acct: str) -> str:
    view = await ctx_of(request).accounts.show(acct)
    return str(view.get("currency", ""))


def _result(acct: str, reply: dict[str, Any], unit: str, currency: str) -> dict[str, Any]:
    out: dict[str, Any] = {
        "account": acct,
        "bucket": reply.get("bucket"),
        "unit": unit,
        "before": reply.get("before"),
        "after": reply.get("amt"),
        "sessions_notified": int(reply.get("sessions", 0)),
        "already_applied": bool(reply.get("dup")),
    }
    if unit == "money" and reply.get("amt") is not None:
        out["after_money"] = money(int(reply["amt"]), currency)
    return out


@router.post("/accounts/{ref}/topups", dependencies=[Depends(OPERATOR)])
async def topup(ref: str, body: TopUp, request: Request) -> JSONResponse:
    """Add to a bucket (money or a bundle); live sessions re-authorised (audit: topup)."""
    ctx = ctx_of(request)
    _amount(body, "", negative=False)  # its shape, before the account is looked up
    try:
        expires = expiry(body.expires) if body.expires else 0
    except ValueError as exc:
        raise ApiError(400, "bad_request", f"expires: {exc}") from None

    async def call(key: str) -> tuple[int, Any]:
        acct = await resolve(ctx, ref)
        currency = await _currency(request, acct)
        delta = _amount(body, currency, negative=False)
        unit = UnitType(body.unit)
        spec = BucketSpec(
            unit,
            0,
            bucket_id=body.bucket,
            expires=expires,
            rating_groups=tuple(body.rating_groups),
            priority=body.priority,
        )
        reply = await ctx.accounts.credit(
            acct, spec, delta, NotificationKind.TOPUP, key, actor=actor(request, body.reason)
        )
        return 200, _result(acct, reply, unit.value, currency)

    return await mutate(request, call)


@router.post("/accounts/{ref}/adjustments", dependencies=[Depends(OPERATOR)])
async def adjust(ref: str, body: Adjustment, request: Request) -> JSONResponse:
    """Correct a bucket up or down, with a reason (required); never below its floor."""
    ctx = ctx_of(request)
    if not body.reason.strip():
        raise ApiError(400, "bad_request", "reason: an adjustment needs a reason")
    _amount(body, "", negative=True)  # its shape, before the account is looked up

    async def call(key: str) -> tuple[int, Any]:
        acct = await resolve(ctx, ref)
        currency = await _currency(request, acct)
        delta = _amount(body, currency, negative=True)
        unit = UnitType(body.unit)
        spec = BucketSpec(unit, 0, bucket_id=body.bucket)
        reply = await ctx.accounts.credit(
            acct, spec, delta, NotificationKind.ADJUST, key, actor=actor(request, body.reason)
        )
        return 200, _result(acct, reply, unit.value, currency)

    return await mutate(request, call)


@router.post("/accounts/{ref}/buckets/{bucket}/expire", dependencies=[Depends(OPERATOR)])
async def expire(ref: str, bucket: str, body: Expire, request: Request) -> JSONResponse:
    """Give a bucket a new expiry; now (the default) forfeits what it holds."""
    ctx = ctx_of(request)
    try:
        bucket_id(bucket)
        at = instant(body.at)
    except ValueError as exc:
        raise ApiError(400, "bad_request", str(exc)) from None

    async def call(key: str) -> tuple[int, Any]:
        acct = await resolve(ctx, ref)
        reply = await ctx.accounts.expire_bucket(
            acct, bucket, at, actor=actor(request, body.reason), ref=key
        )
        return 200, {
            "account": acct,
            "bucket": bucket,
            "expires": reply.get("exp"),
            "before": reply.get("before"),
            "after": reply.get("amt"),
            "sessions_notified": int(reply.get("sessions", 0)),
            "already_applied": bool(reply.get("dup")),
        }

    return await mutate(request, call)


@router.post("/price", dependencies=[Depends(READ)])
async def price(body: PriceEnquiry, request: Request) -> dict[str, Any]:
    """The price of these units of this service for this subscriber, at its plan's
    tariff now (RFC 4006 §5.4 PRICE_ENQUIRY: nothing is reserved or charged)."""
    ctx = ctx_of(request)
    try:
        ref = account_ref(body.subscriber)
    except ValueError as exc:
        raise ApiError(400, "bad_request", f"subscriber: {exc}") from None
    if ":" in ref:
        subscriber = Identity.parse(ref)
    else:
        view = await ctx.accounts.show(await resolve(ctx, ref))
        if not view["identities"]:
            raise ApiError(404, "not_found", f"account {ref} has no identity")
        subscriber = Identity.parse(view["identities"][0])
    units = Usage(**{k: v for k, v in body.units.model_dump().items() if v})
    answer = await ctx.charging.event(
        f"price-{uuid.uuid4().hex}",
        subscriber,
        ServiceKey(body.rating_group, body.service_id),
        EventAction.PRICE_ENQUIRY,
        units,
    )
    if answer.status is not ServiceStatus.GRANTED:
        raise ApiError(422, "refused", f"cannot price: {answer.status.value}")
    return {
        "account": answer.account_id,
        "rating_group": body.rating_group,
        "service_id": body.service_id,
        "units": body.units.model_dump(),
        "price": money(answer.cost, answer.currency),
    }
