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


async def _handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        line = await asyncio.wait_for(reader.readline(), timeout=5)
        parts = line.decode("latin-1").split()
        path = parts[1] if len(parts) >= 2 else ""
        if parts and parts[0] != "GET":
            status, ctype, body = "405 Method Not Allowed", "text/plain", b"GET only\n"
        elif path.split("?")[0] == "/metrics":
            status, ctype, body = "200 OK", CONTENT_TYPE_LATEST, generate_latest()
        elif path.split("?")[0] == "/health":
            ok, report = health()
            status = "200 OK" if ok else "503 Service Unavailable"
            ctype, body = "application/json", json.dumps(report, default=str).encode() + b"\n"
        else:
            status, ctype, body = "404 Not Found", "text/plain", b"try /metrics or /health\n"
        head = f"HTTP/1.0 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {len(body)}\r\n\r\n"
        writer.write(head.encode() + body)
        await writer.drain()
    except (TimeoutError, ConnectionError, OSError):
        pass
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError, OSError):
            await writer.wait_closed()


async def serve_http(host: str, port: int) -> asyncio.Server:
    """Start the endpoint; the caller closes the returned server."""
    return await asyncio.start_server(_handle, host, port)
