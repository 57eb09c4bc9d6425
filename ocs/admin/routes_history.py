"""Live sessions (list, terminate), charged records, the audit trail and the statement."""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse

from ocs import statement as statements
from ocs.admin.context import AdminContext, ApiError, actor, ctx_of, mutate, require, resolve
from ocs.admin.models import Terminate
from ocs.admin.views import iso_ms, money
from ocs.audit import read_history
from ocs.charging.records import ChargedRecord
from ocs.history import ScanLimit, Trimmed, records_page
from ocs.rules import instant

router = APIRouter(tags=["history"])
READ, OPERATOR = require("read"), require("operator")
WINDOW = "ISO 8601 time, unix seconds, now, or -7d"


def _window(since: str | None, until: str | None, default_days: int = 7) -> tuple[int, int]:
    now = time.time()
    try:
        to_s = instant(until) if until else int(now)
        from_s = instant(since) if since else to_s - default_days * 86400
    except ValueError as exc:
        raise ApiError(400, "bad_request", str(exc)) from None
    if to_s < from_s:
        raise ApiError(400, "bad_request", "to is before from")
    return from_s * 1000, to_s * 1000 + 999


def record_view(entry_id: str, rec: ChargedRecord, ctx: AdminContext) -> dict[str, Any]:
    return {
        "entry_id": entry_id,
        "record_id": rec.record_id,
        "kind": rec.kind,
        "session": rec.session,
        "start": rec.start,
        "end": rec.end,
        "end_at": iso_ms(rec.end * 1000, ctx.zone),
        "cause": rec.cause,
        "charged": money(rec.charged, rec.currency),
        "tax": money(rec.tax, rec.currency),
        "net": money(rec.net, rec.currency),
        "tax_rate_ppm": rec.tax_rate_ppm,
        "shortfall": rec.shortfall,
        "policy_version": rec.policy_version,
        "services": [
            {
                "service": s.service,
                "name": s.name,
                "rating_group": s.rating_group,
                "service_id": s.service_id,
                "used": s.used,
                "charged": money(s.charged, rec.currency),
                "from_buckets": s.from_buckets,
            }
            for s in rec.services
        ],
    }


@router.get("/accounts/{ref}/sessions", dependencies=[Depends(READ)])
async def sessions(ref: str, request: Request) -> dict[str, Any]:
    """The account's live sessions: owner (gateway), start, reservations, charged so far."""
    ctx = ctx_of(request)
    acct = await resolve(ctx, ref)
    view = await ctx.accounts.show(acct)
    return {"account": acct, "sessions": view["sessions"]}


@router.post(
    "/accounts/{ref}/sessions/terminate", status_code=202, dependencies=[Depends(OPERATOR)]
)
async def terminate(ref: str, body: Terminate, request: Request) -> JSONResponse:
    """End one live session: its front end is told (Gy ASR, RADIUS Disconnect, Nchf
    abort) through the notifications stream; the gateway's own termination charges
    and records it. 202: asked, not yet done."""
    ctx = ctx_of(request)

    async def call(key: str) -> tuple[int, Any]:
        acct = await resolve(ctx, ref)
        reply = await ctx.accounts.terminate_session(
            acct, body.session, actor=actor(request, body.reason), ref=key
        )
        return 202, {
            "account": acct,
            "session": body.session,
            "owner": reply.get("owner"),
            "already_applied": bool(reply.get("dup")),
        }

    return await mutate(request, call)


@router.get("/accounts/{ref}/records", dependencies=[Depends(READ)])
async def records(
    ref: str,
    request: Request,
    since: str | None = Query(default=None, alias="from", description=WINDOW),
    until: str | None = Query(default=None, alias="to", description=WINDOW),
    cursor: str | None = Query(default=None, pattern=r"^[0-9]+-[0-9]+$"),
    limit: int = Query(default=100, ge=1, le=1000),
) -> dict[str, Any]:
    """Charged records (sessions, direct debits, refunds) in a time window, oldest first;
    next_cursor set when there may be more."""
    ctx = ctx_of(request)
    acct = await resolve(ctx, ref)
    from_ms, to_ms = _window(since, until)
    try:
        page = await records_page(
            ctx.redis,
            ctx.accounts.partitions,
            acct,
            from_ms,
            to_ms,
            cursor,
            limit,
            ctx.config.scan_limit,
        )
    except Trimmed as exc:
        raise ApiError(422, "trimmed", str(exc)) from None
    return {
        "account": acct,
        "from_ms": from_ms,
        "to_ms": to_ms,
        "records": [record_view(i, r, ctx) for i, r in page.records],
        "next_cursor": page.next_cursor,
    }


@router.get("/accounts/{ref}/history", dependencies=[Depends(READ)])
async def history(
    ref: str,
    request: Request,
    since: str | None = Query(default=None, alias="from", description=WINDOW),
    until: str | None = Query(default=None, alias="to", description=WINDOW),
    limit: int = Query(default=1000, ge=1, le=10_000),
) -> dict[str, Any]:
    """The account's audit trail: who changed what, when, why, before and after."""
    ctx = ctx_of(request)
    acct = await resolve(ctx, ref)
    from_ms, to_ms = _window(since, until, default_days=3650)
    entries = await read_history(
        ctx.redis, ctx.accounts.partitions, acct, from_ms, to_ms, limit=limit
    )
    out = []
    for e in entries:
        view = e.view()
        view["at"] = iso_ms(e.at_ms, ctx.zone)
        view["money_change"] = money(e.money_change, e.currency)
        out.append(view)
    return {"account": acct, "entries": out}


@router.get("/accounts/{ref}/statement", dependencies=[Depends(READ)])
async def statement(
    ref: str,
    request: Request,
    since: str | None = Query(default=None, alias="from", description=WINDOW),
    until: str | None = Query(default=None, alias="to", description=WINDOW),
) -> dict[str, Any]:
    """Opening balance, every charge and operator change in time order, closing balance
    (booked money: opening + the changes = closing, exactly)."""
    ctx = ctx_of(request)
    acct = await resolve(ctx, ref)
    from_ms, to_ms = _window(since, until, default_days=30)
    try:
        st = await statements.build(
            ctx.redis,
            ctx.accounts.partitions,
            acct,
            from_ms,
            to_ms,
            ctx.config.scan_limit,
            ctx.accounts.scripts,
        )
    except Trimmed as exc:
        raise ApiError(422, "trimmed", str(exc)) from None
    except ScanLimit as exc:
        raise ApiError(422, "window_too_large", f"{exc}: ask for a shorter window") from None
    return statement_view(st, ctx)


def statement_view(st: statements.Statement, ctx: AdminContext) -> dict[str, Any]:
    cur = st.currency
    running = st.opening
    lines = []
    for ln in st.lines:
        running += ln.change
        lines.append(
            {
                "at": iso_ms(ln.at_ms, ctx.zone),
                "at_ms": ln.at_ms,
                "entry_id": ln.entry_id,
                "source": ln.source,
                "kind": ln.kind,
                "change": money(ln.change, cur),
                "balance": money(running, cur),
                "detail": ln.detail,
            }
        )
    return {
        "account": st.account,
        "currency": cur,
        "from": iso_ms(st.from_ms, ctx.zone),
        "to": iso_ms(st.to_ms, ctx.zone),
        "opening": money(st.opening, cur),
        "closing": money(st.closing, cur),
        "lines": lines,
        "pending": money(st.pending, cur),
        "open_sessions": st.open_sessions,
    }
