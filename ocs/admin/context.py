"""What every admin API request handler shares: the store, the policies, the
principal, the request id, and how a mutating call is made idempotent.

Errors become one JSON shape, ``{"error": code, "message": text,
"request_id": id}``, with the status of their kind: 400 bad input, 401 no
valid token, 403 role too low, 404 no such account / bucket / session, 409
conflict (exists, identity taken, key reused), 413 body too large, 422 the
store refused (below floor, another currency), 503 the store is unreachable.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import HTTPException, Request
from fastapi.responses import JSONResponse

from ocs.accounts import AccountError, Accounts, Conflict
from ocs.admin.config import AdminConfig
from ocs.admin.idempotency import HEADER, BadKey, Idempotency, KeyReused, Outcome, fingerprint
from ocs.admin.tokens import Principal, TokenStore
from ocs.audit import Actor
from ocs.charging.port import ChargingApi
from ocs.policy.loader import PolicySet
from ocs.rules import account_ref
from ocs.store.client import Store
from ocs.vocabulary.errors import ChargingError, StorageUnavailable, UserUnknown


class ApiError(Exception):
    """An answer other than success: status, code, message."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


@dataclass
class AdminContext:
    """The API's view of one ``ocs serve`` worker."""

    config: AdminConfig
    redis: Store
    accounts: Accounts
    charging: ChargingApi  # price enquiry
    tokens: TokenStore
    idem: Idempotency
    policies_in_force: Callable[[], PolicySet]  # the worker's (reloaded on SIGHUP)

    @property
    def policies(self) -> PolicySet:
        return self.policies_in_force()

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.policies.timezone)


def ctx_of(request: Request) -> AdminContext:
    ctx: AdminContext = request.app.state.ctx
    return ctx


def principal_of(request: Request) -> Principal:
    p: Principal = request.state.principal
    return p


def request_id(request: Request) -> str:
    rid: str = request.state.request_id
    return rid


def actor(request: Request, reason: str = "") -> Actor:
    return Actor(principal_of(request).actor_name, "api", request_id(request), reason)


def require(role: str) -> Callable[[Request], Awaitable[Principal]]:
    """A dependency: the request's principal, 403 unless its role grants ``role``."""

    async def check(request: Request) -> Principal:
        p = principal_of(request)
        if not p.may(role):
            raise HTTPException(403, f"token {p.name!r} has role {p.role}; this needs {role}")
        return p

    return check


def problem(status: int, code: str, message: str, rid: str) -> JSONResponse:
    return JSONResponse(
        {"error": code, "message": message, "request_id": rid},
        status_code=status,
        headers={"X-Request-Id": rid},
    )


def error_outcome(exc: Exception) -> Outcome:
    """The answer of a failure the store decided (kept under an idempotency key)."""
    if isinstance(exc, ApiError):
        return Outcome(exc.status, {"error": exc.code, "message": exc.message})
    if isinstance(exc, UserUnknown):
        return Outcome(404, {"error": "not_found", "message": str(exc)})
    if isinstance(exc, Conflict):
        return Outcome(409, {"error": "conflict", "message": str(exc)})
    if isinstance(exc, AccountError):
        return Outcome(422, {"error": "refused", "message": str(exc)})
    raise exc


async def resolve(ctx: AdminContext, ref: str) -> str:
    """An account id from the path's id or identity (400 when malformed, 404 when unknown)."""
    try:
        checked = account_ref(ref)
    except ValueError as exc:
        raise ApiError(400, "bad_request", f"account: {exc}") from None
    return await ctx.accounts.resolve(checked)


async def mutate(
    request: Request, call: Callable[[str], Awaitable[tuple[int, Any]]]
) -> JSONResponse:
    """Run a mutating call under the request's ``Idempotency-Key`` (if any).

    ``call(ref)`` makes the change with ``ref`` as its script reference and
    returns (status, body); the store's refusals become kept answers too.
    """
    ctx = ctx_of(request)
    rid = request_id(request)
    key = request.headers.get(HEADER)
    body = await request.body()
    fp = fingerprint(request.method, request.url.path, body)

    async def run(ref: str) -> Outcome:
        try:
            status, payload = await call(ref)
        except (ApiError, UserUnknown, AccountError) as exc:
            return error_outcome(exc)
        return Outcome(status, payload)

    try:
        outcome = await ctx.idem.run(key, fp, run)
    except BadKey as exc:
        return problem(400, "bad_request", str(exc), rid)
    except KeyReused:
        return problem(
            409,
            "idempotency_key_reused",
            f"{HEADER} {key!r} was used for another request (another path or body)",
            rid,
        )
    headers = {"X-Request-Id": rid}
    if outcome.replayed:
        headers["Idempotent-Replayed"] = "true"
    body_out = outcome.body
    if isinstance(body_out, dict) and "error" in body_out:
        body_out = {**body_out, "request_id": rid}
    return JSONResponse(body_out, status_code=outcome.status, headers=headers)


def storage_problem(exc: Exception, rid: str) -> JSONResponse:
    if isinstance(exc, StorageUnavailable):
        return problem(503, "storage_unavailable", str(exc) or "the store is unreachable", rid)
    if isinstance(exc, ChargingError):
        return problem(422, "refused", str(exc) or type(exc).__name__, rid)
    raise exc
