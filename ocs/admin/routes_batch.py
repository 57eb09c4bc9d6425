"""Bulk import: ``POST /accounts:batch`` (the rows of ``ocs account import``)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from ocs.admin.context import ApiError, actor, ctx_of, require
from ocs.admin.models import Batch
from ocs.audit import Actor
from ocs.bulk_import import Importer

router = APIRouter(tags=["accounts"])
ADMIN = require("admin")


@router.post("/accounts:batch", dependencies=[Depends(ADMIN)])
async def batch(body: Batch, request: Request) -> JSONResponse:
    """Create many accounts at once, pipelined. Idempotent per row (a row's ``ref``, or a
    digest of the row): sending the same rows again creates nothing and counts them as
    ``already``. 200 with a report: rows, created, already, refused (line = position in
    the list, from 1, and the reason)."""
    ctx = ctx_of(request)
    if len(body.accounts) > ctx.config.batch_max_rows:
        raise ApiError(
            413, "too_large", f"{len(body.accounts)} rows; at most {ctx.config.batch_max_rows}"
        )
    who = actor(request)
    importer = Importer(ctx.accounts, ctx.policies, Actor(who.who, "import", who.request_id))
    report = await importer.run(enumerate(body.accounts, start=1))
    return JSONResponse(report.view(), headers={"X-Request-Id": who.request_id})
