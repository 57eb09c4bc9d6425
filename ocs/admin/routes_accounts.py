"""Accounts: create, read, list (cursor paging), block / unblock, delete, identities, plan."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse

from ocs.accounts import BucketSpec
from ocs.admin.context import (
    ApiError,
    actor,
    ctx_of,
    mutate,
    require,
    resolve,
)
from ocs.admin.models import CreateAccount, IdentityAdd, PlanChange, StatusChange
from ocs.admin.views import account_view, parse_amount
from ocs.plans import Renewals
from ocs.rules import account_id, identity
from ocs.vocabulary.types import Identity, UnitType

router = APIRouter(tags=["accounts"])
READ, OPERATOR, ADMIN = require("read"), require("operator"), require("admin")


def _identities(texts: list[str]) -> list[Identity]:
    try:
        ids = [identity(t) for t in texts]
    except ValueError as exc:
        raise ApiError(400, "bad_request", f"identities: {exc}") from None
    if len({i.key() for i in ids}) != len(ids):
        raise ApiError(400, "bad_request", "identities: the same identity twice")
    return ids


@router.post("/accounts", status_code=201, dependencies=[Depends(OPERATOR)])
async def create_account(body: CreateAccount, request: Request) -> JSONResponse:
    """Create an account with its identities, plan and opening money (audit: create)."""
    ctx = ctx_of(request)
    ids = _identities(body.identities)
    plan = ctx.policies.plans.get(body.plan)
    if plan is None:
        names = ", ".join(sorted(ctx.policies.plans))
        raise ApiError(422, "refused", f"plan: unknown plan {body.plan!r} (one of {names})")
    if body.id is not None:
        try:
            account_id(body.id)
        except ValueError as exc:
            raise ApiError(400, "bad_request", f"id: {exc}") from None
    money = 0
    if (body.money, body.money_minor, body.money_micro) != (None, None, None):
        try:
            money = parse_amount(body.money, body.money_minor, body.money_micro, plan.currency)
        except ValueError as exc:
            raise ApiError(400, "bad_request", f"money: {exc}") from None
    if money < 0:
        raise ApiError(400, "bad_request", "money: must not be negative")

    async def call(ref: str) -> tuple[int, Any]:
        made = await ctx.accounts.create_account(
            ids,
            body.plan,
            plan.currency,
            [BucketSpec(UnitType.MONEY, money)],
            body.id,
            actor=actor(request),
            ref=ref,
            test=body.test,
        )
        renewals = Renewals(ctx.redis, ctx.accounts.partitions, ctx.policies)
        await renewals.renew_account(made.account_id)
        view = await ctx.accounts.show(made.account_id)
        return 201, account_view(view, ctx.zone)

    return await mutate(request, call)


@router.get("/accounts", dependencies=[Depends(READ)])
async def list_accounts(
    request: Request,
    cursor: int = Query(default=0, ge=0, description="from the previous page's next_cursor"),
    limit: int = Query(default=100, ge=1, le=10_000),
) -> dict[str, Any]:
    """One page of account ids; next_cursor 0 means the walk is complete."""
    nxt, ids = await ctx_of(request).accounts.page(cursor, limit)
    return {"accounts": ids, "next_cursor": nxt}


@router.get("/accounts/{ref}", dependencies=[Depends(READ)])
async def get_account(ref: str, request: Request) -> dict[str, Any]:
    """An account by id or identity: status, plan, identities, buckets, money, sessions."""
    ctx = ctx_of(request)
    return account_view(await ctx.accounts.show(await resolve(ctx, ref)), ctx.zone)


async def _status(request: Request, ref: str, status: str, reason: str) -> JSONResponse:
    ctx = ctx_of(request)

    async def call(key: str) -> tuple[int, Any]:
        acct = await resolve(ctx, ref)
        reply = await ctx.accounts.change_status(
            acct, status, actor=actor(request, reason), ref=key
        )
        return 200, {
            "account": acct,
            "status": status,
            "sessions_notified": int(reply.get("sessions", 0)),
            "already_applied": bool(reply.get("dup")),
        }

    return await mutate(request, call)


@router.post("/accounts/{ref}/block", dependencies=[Depends(OPERATOR)])
async def block(ref: str, body: StatusChange, request: Request) -> JSONResponse:
    """Block: live sessions are aborted (Gy ASR, RADIUS Disconnect, Nchf abort)."""
    return await _status(request, ref, "blocked", body.reason)


@router.post("/accounts/{ref}/unblock", dependencies=[Depends(OPERATOR)])
async def unblock(ref: str, body: StatusChange, request: Request) -> JSONResponse:
    """Make a blocked account active again."""
    return await _status(request, ref, "active", body.reason)


@router.delete("/accounts/{ref}", dependencies=[Depends(ADMIN)])
async def delete_account(ref: str, request: Request) -> JSONResponse:
    """Delete: live sessions aborted, identities freed (the history stays)."""
    return await _status(request, ref, "deleted", request.headers.get("X-Reason", ""))


@router.post("/accounts/{ref}/identities", status_code=201, dependencies=[Depends(OPERATOR)])
async def add_identity(ref: str, body: IdentityAdd, request: Request) -> JSONResponse:
    """Give the account one more identity (it must be free)."""
    ctx = ctx_of(request)
    (ident,) = _identities([body.identity])

    async def call(key: str) -> tuple[int, Any]:
        acct = await resolve(ctx, ref)
        await ctx.accounts.add_identity(acct, ident, actor=actor(request, body.reason), ref=key)
        return 201, {"account": acct, "identity": ident.key()}

    return await mutate(request, call)


@router.delete("/accounts/{ref}/identities/{ident}", dependencies=[Depends(OPERATOR)])
async def remove_identity(ref: str, ident: str, request: Request) -> JSONResponse:
    """Take an identity from the account (never its last) and free it."""
    ctx = ctx_of(request)
    (parsed,) = _identities([ident])

    async def call(key: str) -> tuple[int, Any]:
        acct = await resolve(ctx, ref)
        await ctx.accounts.remove_identity(acct, parsed, actor=actor(request), ref=key)
        return 200, {"account": acct, "identity": parsed.key(), "removed": True}

    return await mutate(request, call)


@router.put("/accounts/{ref}/plan", dependencies=[Depends(OPERATOR)])
async def assign_plan(ref: str, body: PlanChange, request: Request) -> JSONResponse:
    """Move the account to another plan of its currency; live sessions re-authorised."""
    ctx = ctx_of(request)
    plan = ctx.policies.plans.get(body.plan)
    if plan is None:
        raise ApiError(422, "refused", f"plan: unknown plan {body.plan!r}")

    async def call(key: str) -> tuple[int, Any]:
        acct = await resolve(ctx, ref)
        reply = await ctx.accounts.assign_plan(
            acct, body.plan, plan.currency, actor=actor(request, body.reason), ref=key
        )
        renewed = 0
        if body.renew:
            renewals = Renewals(ctx.redis, ctx.accounts.partitions, ctx.policies)
            renewed = await renewals.renew_account(acct)
        return 200, {
            "account": acct,
            "plan": body.plan,
            "previous_plan": reply.get("from"),
            "sessions_notified": int(reply.get("sessions", 0)),
            "allowances_renewed": renewed,
            "already_applied": bool(reply.get("dup")),
        }

    return await mutate(request, call)


@router.post("/accounts/{ref}/plan/renew", dependencies=[Depends(OPERATOR)])
async def renew_plan(ref: str, request: Request) -> JSONResponse:
    """Renew what is due of the plan's allowances now (once per period, idempotent)."""
    ctx = ctx_of(request)

    async def call(key: str) -> tuple[int, Any]:
        acct = await resolve(ctx, ref)
        renewals = Renewals(ctx.redis, ctx.accounts.partitions, ctx.policies)
        return 200, {"account": acct, "allowances_renewed": await renewals.renew_account(acct)}

    return await mutate(request, call)
