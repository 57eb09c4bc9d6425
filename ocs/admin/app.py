"""The admin API application (FastAPI on Starlette; served by uvicorn, ocs/admin/server.py).

Routes: :mod:`ocs.admin.routes_accounts`, ``routes_balance``,
``routes_history``, ``routes_batch``. Every request passes the front door
(:mod:`ocs.admin.auth`: request id, body limit, 401); each operation names
the role it needs (403). The OpenAPI document is served at ``/openapi.json``
(a token is needed there too) and kept in the repository as
``ocs/admin/openapi.json`` (``ocs admin openapi > ocs/admin/openapi.json``;
a test fails when they differ).
"""

from __future__ import annotations

from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import HTTPBearer
from starlette.exceptions import HTTPException as StarletteHTTPException

from ocs import __version__
from ocs.accounts import AccountError, Conflict
from ocs.admin import routes_accounts, routes_balance, routes_batch, routes_history
from ocs.admin.auth import FrontDoor
from ocs.admin.context import AdminContext, ApiError, problem
from ocs.vocabulary.errors import ChargingError, StorageUnavailable, UserUnknown

TITLE = "ocs admin API"
DESCRIPTION = (
    "Operator API of ocs: accounts, identities, buckets, plans, live sessions, "
    "charged records, the audit trail, statements, bulk import and price enquiry. "
    "Every request needs `Authorization: Bearer <token>`; money is shown as integer "
    "micro-units, ISO 4217 minor units and a decimal string with its currency. "
    "Mutating calls take an `Idempotency-Key` header."
)

# Shows the bearer scheme on every operation of the document; the check
# itself is the front door's (it answers 401 before any route runs).
_bearer = HTTPBearer(auto_error=False, bearerFormat="ocs token")


def _rid(request: Request) -> str:
    return str(getattr(request.state, "request_id", ""))


def _validation_message(exc: RequestValidationError) -> str:
    parts = []
    for err in exc.errors()[:3]:
        loc = ".".join(str(p) for p in err.get("loc", ()) if p != "body")
        parts.append(f"{loc}: {err.get('msg', 'invalid')}" if loc else str(err.get("msg")))
    return "; ".join(parts) or "invalid request"


def _install_errors(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> JSONResponse:
        return problem(exc.status, exc.code, exc.message, _rid(request))

    @app.exception_handler(RequestValidationError)
    async def bad_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        return problem(400, "bad_request", _validation_message(exc), _rid(request))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        codes = {403: "forbidden", 404: "not_found", 405: "method_not_allowed", 413: "too_large"}
        return problem(
            exc.status_code, codes.get(exc.status_code, "error"), str(exc.detail), _rid(request)
        )

    @app.exception_handler(UserUnknown)
    async def unknown(request: Request, exc: UserUnknown) -> JSONResponse:
        return problem(404, "not_found", str(exc), _rid(request))

    @app.exception_handler(Conflict)
    async def conflict(request: Request, exc: Conflict) -> JSONResponse:
        return problem(409, "conflict", str(exc), _rid(request))

    @app.exception_handler(AccountError)
    async def refused(request: Request, exc: AccountError) -> JSONResponse:
        return problem(422, "refused", str(exc), _rid(request))

    @app.exception_handler(StorageUnavailable)
    async def storage(request: Request, exc: StorageUnavailable) -> JSONResponse:
        return problem(503, "storage_unavailable", str(exc) or "store unreachable", _rid(request))

    @app.exception_handler(ChargingError)
    async def charging(request: Request, exc: ChargingError) -> JSONResponse:
        return problem(422, "refused", str(exc) or type(exc).__name__, _rid(request))


def build_app(ctx: AdminContext | None = None) -> FastAPI:
    """The FastAPI application (without the front door: for the OpenAPI document)."""
    app = FastAPI(
        title=TITLE,
        version=__version__,
        description=DESCRIPTION,
        docs_url=None,
        redoc_url=None,
        openapi_url="/openapi.json",
        dependencies=[Depends(_bearer)],
    )
    app.state.ctx = ctx
    for module in (routes_accounts, routes_balance, routes_history, routes_batch):
        app.include_router(module.router)
    _install_errors(app)

    return app


def create_app(ctx: AdminContext) -> FrontDoor:
    """The ASGI application ``ocs serve`` runs: the API behind its front door."""
    return FrontDoor(build_app(ctx), ctx.tokens, ctx.config.max_body)


def openapi_document() -> dict[str, Any]:
    """The OpenAPI document (what /openapi.json serves)."""
    return build_app().openapi()
