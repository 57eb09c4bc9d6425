"""The admin API's front door (an ASGI middleware, before any routing).

Every request gets a request id (the client's ``X-Request-Id`` when it is
one line of at most 128 printable characters, else a new one), echoed in the
answer and written into audit entries. Then:

* a body larger than ``admin.max_body`` is refused with 413 (by its
  Content-Length, or while it arrives when it has none);
* a request without ``Authorization: Bearer <token>`` naming a known token
  is refused with 401 and ``WWW-Authenticate: Bearer``, whatever its path
  (the OpenAPI document included): nothing is answered to strangers.

What a token's role may do is checked per operation
(:func:`ocs.admin.context.require`: 403).
"""

from __future__ import annotations

import json
import re
import uuid
from typing import Any

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ocs.admin.tokens import TokenStore

_REQUEST_ID = re.compile(r"[!-~]{1,128}")


class BodyTooLarge(HTTPException):
    """Raised while a body without Content-Length arrives past the limit (413)."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"body over {limit} bytes")


def _header(scope: Scope, name: bytes) -> str | None:
    for k, v in scope.get("headers", ()):
        if k == name:
            return str(v.decode("latin-1"))
    return None


async def _answer(send: Send, status: int, body: dict[str, Any], headers: list[Any]) -> None:
    data = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(data)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": data})


class FrontDoor:
    """Request id, body limit and bearer authentication for every HTTP request."""

    def __init__(self, app: ASGIApp, tokens: TokenStore, max_body: int) -> None:
        self.app = app
        self.tokens = tokens
        self.max_body = max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = _header(scope, b"x-request-id")
        rid = given if given and _REQUEST_ID.fullmatch(given) else uuid.uuid4().hex
        rid_header = (b"x-request-id", rid.encode())
        length = _header(scope, b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_body):
            await _answer(
                send,
                413,
                {
                    "error": "too_large",
                    "message": f"body over {self.max_body} bytes",
                    "request_id": rid,
                },
                [rid_header, (b"connection", b"close")],
            )
            return
        principal = None
        auth = _header(scope, b"authorization") or ""
        scheme, _, token = auth.partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            principal = self.tokens.lookup(token.strip())
        if principal is None:
            message = "a valid bearer token is needed (Authorization: Bearer <token>)"
            await _answer(
                send,
                401,
                {"error": "unauthorized", "message": message, "request_id": rid},
                [rid_header, (b"www-authenticate", b'Bearer realm="ocs"')],
            )
            return
        state = scope.setdefault("state", {})
        state["principal"] = principal
        state["request_id"] = rid

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", ()))
                if not any(k.lower() == b"x-request-id" for k, _ in headers):
                    headers.append(rid_header)
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, self._limited(receive), send_with_id)

    def _limited(self, receive: Receive) -> Receive:
        seen = 0
        limit = self.max_body

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise BodyTooLarge(limit)
            return message

        return counted
