"""The operations endpoint: Prometheus ``/metrics`` and ``/health`` over HTTP.

A deliberately tiny asyncio HTTP/1.0 responder (GET only, one request per
connection): two read-only pages do not justify a web framework. Health is
the merge of registered providers; any provider reporting ``ok: false``
turns the answer into 503 so an orchestrator can act on it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

HealthProvider = Callable[[], dict[str, Any]]
_providers: dict[str, HealthProvider] = {}


def register_health(name: str, provider: HealthProvider) -> None:
    """Add a component to ``/health``; its dict should carry ``ok: bool``."""
    _providers[name] = provider


def unregister_health(name: str) -> None:
    _providers.pop(name, None)


def health() -> tuple[bool, dict[str, Any]]:
    """Overall status and each component's report (a failing provider counts as not ok)."""
    report: dict[str, Any] = {}
    ok = True
    for name, provider in list(_providers.items()):
        try:
            part = provider()
        except Exception as exc:
            part = {"ok": False, "error": repr(exc)}
        report[name] = part
        ok = ok and bool(part.get("ok", True))
    return ok, {"ok": ok, "components": report}


MAX_HEADER_LINES = 100


async def _read_request(reader: asyncio.StreamReader) -> tuple[str, str]:
    """Method and path of one request; its headers are read and ignored.

    Reading them matters: closing a socket with unread request bytes makes
    the kernel send a reset, which can destroy the answer before the client
    (a Prometheus scraper) reads it.
    """
    parts = (await reader.readline()).decode("latin-1").split()
    for _ in range(MAX_HEADER_LINES):
        if (await reader.readline()).strip() == b"":
            break
    if len(parts) < 2:
        return "", ""
    return parts[0], parts[1].split("?", 1)[0]


def _answer(method: str, path: str) -> tuple[str, str, bytes]:
    if not method:
        return "400 Bad Request", "text/plain", b"bad request\n"
    if method != "GET":
        return "405 Method Not Allowed", "text/plain", b"GET only\n"
    if path == "/metrics":
        return "200 OK", CONTENT_TYPE_LATEST, generate_latest()
    if path == "/health":
        ok, report = health()
        body = json.dumps(report, default=str).encode() + b"\n"
        return ("200 OK" if ok else "503 Service Unavailable"), "application/json", body
    return "404 Not Found", "text/plain", b"try /metrics or /health\n"


async def _handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        method, path = await asyncio.wait_for(_read_request(reader), timeout=5)
        status, ctype, body = _answer(method, path)
        head = (
            f"HTTP/1.0 {status}\r\nContent-Type: {ctype}\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        )
        writer.write(head.encode() + body)
        await writer.drain()
    except (TimeoutError, ConnectionError, OSError, ValueError):
        pass  # slow, vanished or oversized (ValueError: line over the reader's limit) client
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError, OSError):
            await writer.wait_closed()


async def serve_http(host: str, port: int) -> asyncio.Server:
    """Start the endpoint; the caller closes the returned server."""
    return await asyncio.start_server(_handle, host, port)
