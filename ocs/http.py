"""The operations endpoint: ``/metrics``, ``/livez``, ``/readyz`` and ``/health`` over HTTP/1.1.

HTTP is parsed by h11 (sans-IO, keep-alive, HEAD) on the process's own
event loop; four read-only pages do not need a web framework, and an
answer from the loop itself is what liveness means.

- ``/livez``: 200 while the process and its event loop run. A liveness
  probe (Docker HEALTHCHECK, Kubernetes) restarts on failure, so nothing
  the process cannot repair by restarting turns it red: a bad policy file
  or an unreachable Redis would come back after the restart just the same.
- ``/readyz``: 200 once the listeners are up and every component can serve
  (Redis reachable, a policy set loaded); 503 with the reasons otherwise.
  A load balancer or a readiness probe stops sending traffic; nothing restarts.
- ``/health``: JSON per component for people (200, or 503 while a component
  cannot serve). A failed policy reload is a ``warning`` while the previous
  set serves. Details (store socket and PID, peers' Origin-Hosts, policy
  file paths, error texts) only with ``metrics.health_details: true``: the
  endpoint is not authenticated, and binds to 127.0.0.1 unless configured.
- ``/metrics``: the process's registry, in the Prometheus text format or
  OpenMetrics when the scraper asks for it (``Accept``).

A health provider returns a dict with ``ok`` (can serve), optionally
``warning`` (serving, but someone should look) and any details.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable
from typing import Any

import h11
from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client.exposition import choose_encoder

HealthProvider = Callable[[], dict[str, Any]]
ReadyCheck = Callable[[], str | None]  # None when ready, else why not
_providers: dict[str, HealthProvider] = {}
_ready_checks: dict[str, ReadyCheck] = {}
_state = {"listeners_up": False}

# Keys of a component's report shown without health_details: states and
# counts, nothing that names a host, a path, a process or an error text.
PUBLIC_KEYS = frozenset(
    {
        "ok",
        "warning",
        "status",
        "version",
        "reloads",
        "connections",
        "in_flight",
        "restarts",
        "buffered",
        "lag_seconds",
        "consecutive_failures",
        "embedded",
        "running",
    }
)
READ_TIMEOUT = 10.0  # seconds for a request to arrive (idle keep-alive included)
MAX_REQUEST_HEAD = 16 * 1024


def register_health(name: str, provider: HealthProvider) -> None:
    """Add a component to ``/health`` and ``/readyz``; its dict carries ``ok: bool``."""
    _providers[name] = provider


def unregister_health(name: str) -> None:
    _providers.pop(name, None)


def register_ready(name: str, check: ReadyCheck) -> None:
    """A condition of /readyz only (not of /health's ok): None when met, else the reason."""
    _ready_checks[name] = check


def unregister_ready(name: str) -> None:
    _ready_checks.pop(name, None)


def set_listeners_up(up: bool = True) -> None:
    """The process's listeners are (or are no longer) accepting: a part of readiness."""
    _state["listeners_up"] = up


def _reports() -> dict[str, dict[str, Any]]:
    report: dict[str, dict[str, Any]] = {}
    for name, provider in list(_providers.items()):
        try:
            part = dict(provider())
        except Exception as exc:
            part = {"ok": False, "error": repr(exc)}
        part["ok"] = bool(part.get("ok", True))
        report[name] = part
    return report


def health(details: bool = True) -> tuple[bool, dict[str, Any]]:
    """Overall status and each component's report (a failing provider counts as not ok)."""
    components = _reports()
    ok = all(part["ok"] for part in components.values())
    warned = any(part.get("warning") for part in components.values())
    if not details:
        components = {
            name: {k: v for k, v in part.items() if k in PUBLIC_KEYS}
            for name, part in components.items()
        }
    status = "failing" if not ok else "warning" if warned else "ok"
    return ok, {"ok": ok, "status": status, "components": components}


def readiness() -> tuple[bool, list[str]]:
    """Ready to take traffic, or the reasons why not."""
    reasons = [] if _state["listeners_up"] else ["listeners: not up yet"]
    for name, part in _reports().items():
        if not part["ok"]:
            reasons.append(f"{name}: not ok")
    for name, check in list(_ready_checks.items()):
        try:
            why = check()
        except Exception as exc:
            why = repr(exc)
        if why is not None:
            reasons.append(f"{name}: {why}")
    return not reasons, reasons


# --- pages ---------------------------------------------------------------------

Answer = tuple[int, list[tuple[str, str]], bytes]
_TEXT = "text/plain; charset=utf-8"


def _text(status: int, body: str, *extra: tuple[str, str]) -> Answer:
    return status, [("Content-Type", _TEXT), *extra], body.encode()


class Pages:
    """What each path answers, for one process's registry and details setting."""

    def __init__(self, registry: CollectorRegistry = REGISTRY, details: bool = False) -> None:
        self.registry = registry
        self.details = details

    def answer(self, method: str, path: str, accept: str | None) -> Answer:
        if method not in ("GET", "HEAD"):
            return _text(405, "GET or HEAD only\n", ("Allow", "GET, HEAD"))
        if path == "/metrics":
            encoder, content_type = choose_encoder(accept or "")
            return 200, [("Content-Type", content_type)], encoder(self.registry)
        if path == "/livez":
            return _text(200, "ok\n")
        if path == "/readyz":
            ready, reasons = readiness()
            return _text(200, "ready\n") if ready else _text(503, "\n".join(reasons) + "\n")
        if path == "/health":
            ok, report = health(self.details)
            body = json.dumps(report, default=str).encode() + b"\n"
            return (200 if ok else 503), [("Content-Type", "application/json")], body
        return _text(404, "try /metrics, /livez, /readyz or /health\n")


# --- HTTP/1.1 over asyncio streams (h11) ---------------------------------------


async def _next_event(conn: h11.Connection, reader: asyncio.StreamReader) -> Any:
    while True:
        event = conn.next_event()
        if event is not h11.NEED_DATA:
            return event
        conn.receive_data(await reader.read(8192))


async def _read_request(conn: h11.Connection, reader: asyncio.StreamReader) -> h11.Request | None:
    """The next request, its body (none expected) read and dropped; None when closed."""
    event = await _next_event(conn, reader)
    if not isinstance(event, h11.Request):
        return None
    while not isinstance(await _next_event(conn, reader), h11.EndOfMessage):
        pass
    return event


def _send(conn: h11.Connection, writer: asyncio.StreamWriter, *events: Any) -> None:
    for event in events:
        data = conn.send(event)
        if data:
            writer.write(data)


async def _serve_one(
    pages: Pages, conn: h11.Connection, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> bool:
    """One request and its answer; False when the connection should close."""
    event = await asyncio.wait_for(_read_request(conn, reader), READ_TIMEOUT)
    if event is None:
        return False  # the peer closed
    headers = {k.lower(): v for k, v in event.headers}
    accept = headers.get(b"accept", b"").decode("latin-1") or None
    method = event.method.decode("ascii", "replace")
    path = event.target.decode("ascii", "replace").split("?", 1)[0]
    status, fields, body = pages.answer(method, path, accept)
    fields = [*fields, ("Content-Length", str(len(body)))]
    _send(conn, writer, h11.Response(status_code=status, headers=fields))
    _send(conn, writer, *(() if method == "HEAD" else (h11.Data(data=body),)), h11.EndOfMessage())
    await writer.drain()
    if conn.our_state is not h11.DONE or conn.their_state is not h11.DONE:
        return False
    conn.start_next_cycle()
    return True


async def _handle(pages: Pages, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    conn = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_REQUEST_HEAD)
    try:
        while await _serve_one(pages, conn, reader, writer):
            pass
    except h11.RemoteProtocolError as exc:
        if conn.our_state in (h11.IDLE, h11.SEND_RESPONSE):
            status, fields, body = _text(exc.error_status_hint, "bad request\n")
            fields = [*fields, ("Content-Length", str(len(body)))]
            with contextlib.suppress(h11.LocalProtocolError):
                _send(conn, writer, h11.Response(status_code=status, headers=fields))
                _send(conn, writer, h11.Data(data=body), h11.EndOfMessage())
    except (TimeoutError, ConnectionError, OSError):
        pass  # a slow or vanished client
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError, OSError):
            await writer.wait_closed()


async def serve_http(
    host: str, port: int, registry: CollectorRegistry = REGISTRY, details: bool = False
) -> asyncio.Server:
    """Start the endpoint for ``registry``; the caller closes the returned server."""
    pages = Pages(registry, details)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _handle(pages, reader, writer)

    return await asyncio.start_server(handle, host, port)


async def serve_unix(
    path: str, registry: CollectorRegistry = REGISTRY, details: bool = True
) -> asyncio.Server:
    """The same pages on a unix socket (a leading NUL: Linux's abstract namespace).

    A worker's private endpoint, read by its supervisor (:mod:`ocs.node_ops`).
    """
    pages = Pages(registry, details)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _handle(pages, reader, writer)

    return await asyncio.start_unix_server(handle, path)
