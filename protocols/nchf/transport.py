"""HTTP/2 (RFC 9113) and HTTP/1.1 (RFC 9112) on one port: bytes in, requests out, answers back.

The protocol state machines are the h2 and h11 libraries (sans-IO); this
module only moves bytes between them and the socket and runs one handler
call per request. Which protocol a connection speaks: over TLS, the one ALPN
selected (``h2``, else HTTP/1.1); in clear text, HTTP/2 when the first bytes
are the connection preface (prior knowledge, RFC 9113 §3.3; the ``Upgrade:
h2c`` dance is obsolete, RFC 9113 §3.1), HTTP/1.1 otherwise (curl, scripts).

Limits: a body larger than ``max_body`` is answered 413 at once (HTTP/2: and
the stream reset with NO_ERROR, RFC 9113 §8.1); HTTP/2 concurrent streams
and header list size are advertised in SETTINGS and enforced by h2; HTTP/1.1
header size is bounded by h11. A protocol error closes that connection only
(HTTP/2 with a GOAWAY); the server keeps serving the others. Responses of
one event-loop pass leave in one write per connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Awaitable, Callable
from http import HTTPStatus
from typing import Any, NamedTuple

import h11
import structlog
from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.errors import ErrorCodes
from h2.events import (
    ConnectionTerminated,
    DataReceived,
    RequestReceived,
    StreamEnded,
    StreamReset,
    WindowUpdated,
)
from h2.exceptions import ProtocolError, StreamClosedError
from h2.settings import SettingCodes, Settings

from ocs.frontend import bound_addresses

log = structlog.get_logger("ocs.nchf.transport")

NO_CONTENT = 204
_REASONS = {s.value: s.phrase.encode() for s in HTTPStatus}  # HTTP/1.1 status lines
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
CONNECTION_WINDOW = 1 << 20  # bytes the peer may send before our WINDOW_UPDATE


class Request(NamedTuple):
    method: str
    path: str
    authority: str
    scheme: str
    content_type: str
    body: bytes
    peer: str  # the client's address
    http2: bool


class Response(NamedTuple):
    status: int
    body: bytes = b""
    content_type: str = "application/json"
    headers: tuple[tuple[str, str], ...] = ()


Handler = Callable[[Request], Awaitable[Response]]


class Limits(NamedTuple):
    max_body: int = 65_536
    max_streams: int = 256
    max_header_bytes: int = 16_384


TOO_LARGE = Response(413, b'{"title":"Payload too large","status":413}', "application/problem+json")
INTERNAL = Response(500, b'{"title":"Internal error","status":500}', "application/problem+json")


class _Stream:
    __slots__ = ("authority", "body", "content_type", "method", "path", "scheme")

    def __init__(self) -> None:
        self.method = self.path = self.authority = self.scheme = self.content_type = ""
        self.body = bytearray()


class HttpConnection(asyncio.Protocol):
    """One client connection, HTTP/2 or HTTP/1.1."""

    def __init__(self, server: HttpServer) -> None:
        self.server = server
        self.limits = server.limits
        self.transport: Any = None
        self.peer = ""
        self.scheme = "http"
        self.sniff = b""
        self.h2: H2Connection | None = None
        self.h11: h11.Connection | None = None
        self.streams: dict[int, _Stream] = {}
        self.unsent: dict[int, memoryview] = {}  # HTTP/2 bodies waiting for window
        self.h11_stream: _Stream | None = None
        self.h11_busy = False
        self.closed = False
        self.flush_scheduled = False

    # -- asyncio.Protocol -------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        self.server.connections.add(self)
        peer = transport.get_extra_info("peername")
        self.peer = str(peer[0]) if peer else ""
        tls = transport.get_extra_info("ssl_object")
        if tls is not None:
            self.scheme = "https"
            if tls.selected_alpn_protocol() == "h2":
                self._start_h2()
            else:
                self._start_h11()

    def data_received(self, data: bytes) -> None:
        if self.h2 is None and self.h11 is None:
            data = self._sniff(data)
            if not data:
                return
        if self.h2 is not None:
            self._h2_receive(data)
        elif self.h11 is not None:
            self.h11.receive_data(data)
            self._h11_step()

    def eof_received(self) -> bool:
        if self.h11 is not None:
            self.h11.receive_data(b"")
            self._h11_step()
            # Keep the write side until the answer is out (TLS cannot half-close).
            return self.h11_busy and self.scheme == "http"
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.server.connections.discard(self)

    # -- which protocol ------------------------------------------------------------

    def _sniff(self, data: bytes) -> bytes:
        buffered = self.sniff + data
        if len(buffered) < len(PREFACE) and PREFACE.startswith(buffered):
            self.sniff = buffered
            return b""
        self.sniff = b""
        if buffered.startswith(PREFACE):
            self._start_h2()
        else:
            self._start_h11()
        return buffered

    def _start_h2(self) -> None:
        # Our own headers are built right: h2's checks of them cost ~10 µs per answer.
        config = H2Configuration(
            client_side=False,
            header_encoding=None,
            validate_outbound_headers=False,
            normalize_outbound_headers=False,
        )
        conn = H2Connection(config)
        conn.local_settings = Settings(
            client=False,
            initial_values={
                SettingCodes.MAX_CONCURRENT_STREAMS: self.limits.max_streams,
                SettingCodes.MAX_HEADER_LIST_SIZE: self.limits.max_header_bytes,
            },
        )
        conn.initiate_connection()
        conn.increment_flow_control_window(CONNECTION_WINDOW)
        self.h2 = conn
        self._flush()

    def _start_h11(self) -> None:
        self.h11 = h11.Connection(
            h11.SERVER, max_incomplete_event_size=self.limits.max_header_bytes
        )

    # -- HTTP/2 --------------------------------------------------------------------

    def _h2_receive(self, data: bytes) -> None:
        conn = self.h2
        assert conn is not None
        try:
            events = conn.receive_data(data)
        except ProtocolError as exc:
            log.info("nchf_http2_protocol_error", peer=self.peer, error=repr(exc))
            self._flush()
            self.transport.close()
            return
        for ev in events:
            kind = type(ev)
            if kind is RequestReceived:
                self._h2_headers(ev)  # type: ignore[arg-type]
            elif kind is DataReceived:
                self._h2_data(ev)  # type: ignore[arg-type]
            elif kind is StreamEnded:
                stream = self.streams.pop(ev.stream_id, None)  # type: ignore[attr-defined]
                if stream is not None:
                    self._dispatch(stream, ev.stream_id)  # type: ignore[attr-defined]
            elif kind is StreamReset:
                self.streams.pop(ev.stream_id, None)  # type: ignore[attr-defined]
                self.unsent.pop(ev.stream_id, None)  # type: ignore[attr-defined]
            elif kind is WindowUpdated:
                self._h2_resume()
            elif kind is ConnectionTerminated:
                self._flush()
                self.transport.close()
                return
        self._flush_soon()

    def _h2_headers(self, ev: RequestReceived) -> None:
        stream = _Stream()
        length = 0
        for name, value in ev.headers or ():
            if name == b":method":
                stream.method = value.decode("latin-1")
            elif name == b":path":
                stream.path = value.decode("latin-1")
            elif name == b":authority":
                stream.authority = value.decode("latin-1")
            elif name == b":scheme":
                stream.scheme = value.decode("latin-1")
            elif name == b"content-type":
                stream.content_type = value.decode("latin-1")
            elif name == b"content-length" and value.isdigit():
                length = int(value)
        sid = ev.stream_id
        if length > self.limits.max_body:
            self._h2_refuse(sid)
        else:  # dispatched on StreamEnded (h2 emits it after the headers when they end it)
            self.streams[sid] = stream

    def _h2_data(self, ev: DataReceived) -> None:
        conn = self.h2
        assert conn is not None
        sid = ev.stream_id
        with contextlib.suppress(StreamClosedError, ProtocolError):
            conn.acknowledge_received_data(ev.flow_controlled_length, sid)
        stream = self.streams.get(sid)
        if stream is None:
            return
        stream.body += ev.data or b""
        if len(stream.body) > self.limits.max_body:
            del self.streams[sid]
            self._h2_refuse(sid)

    def _h2_refuse(self, sid: int) -> None:
        """413 before the body is in, then RST_STREAM NO_ERROR (RFC 9113 §8.1)."""
        self._h2_respond(sid, TOO_LARGE)
        conn = self.h2
        assert conn is not None
        with contextlib.suppress(StreamClosedError, ProtocolError):
            conn.reset_stream(sid, ErrorCodes.NO_ERROR)

    def _h2_respond(self, sid: int, resp: Response) -> None:
        conn = self.h2
        if conn is None or self.closed:
            return
        headers = [(b":status", str(resp.status).encode())]
        if resp.status != NO_CONTENT:  # RFC 9110 §8.6: no Content-Length in a 204
            headers += [
                (b"content-type", resp.content_type.encode()),
                (b"content-length", str(len(resp.body)).encode()),
            ]
        headers += [(k.encode(), v.encode()) for k, v in resp.headers]
        try:
            conn.send_headers(sid, headers, end_stream=not resp.body)
            if resp.body:
                self._h2_send(sid, memoryview(resp.body))
        except (StreamClosedError, ProtocolError):
            self.unsent.pop(sid, None)  # the client reset it: nothing to answer
        self._flush_soon()

    def _h2_send(self, sid: int, body: memoryview) -> None:
        conn = self.h2
        assert conn is not None
        while body:
            room = min(conn.local_flow_control_window(sid), conn.max_outbound_frame_size)
            if room <= 0:
                self.unsent[sid] = body
                return
            chunk, body = body[:room], body[room:]
            conn.send_data(sid, chunk.tobytes(), end_stream=not body)
        self.unsent.pop(sid, None)

    def _h2_resume(self) -> None:
        for sid, body in list(self.unsent.items()):
            try:
                self._h2_send(sid, body)
            except (StreamClosedError, ProtocolError):
                self.unsent.pop(sid, None)

    # -- HTTP/1.1 ------------------------------------------------------------------

    def _h11_step(self) -> None:
        conn = self.h11
        assert conn is not None
        while not self.h11_busy and not self.closed:
            try:
                ev = conn.next_event()
            except h11.RemoteProtocolError as exc:
                self._h11_error(exc)
                return
            if ev is h11.NEED_DATA or ev is h11.PAUSED:
                return
            if isinstance(ev, h11.Request):
                self.h11_stream = self._h11_request(ev)
                if self.h11_stream is None:
                    return
                if conn.they_are_waiting_for_100_continue:  # curl, for bodies over 1 KiB
                    self.transport.write(
                        conn.send(h11.InformationalResponse(status_code=100, headers=[]))
                    )
            elif isinstance(ev, h11.Data):
                stream = self.h11_stream
                if stream is not None:
                    stream.body += ev.data
                    if len(stream.body) > self.limits.max_body:
                        self._h11_send(TOO_LARGE, close=True)
                        return
            elif isinstance(ev, h11.EndOfMessage):
                stream, self.h11_stream = self.h11_stream, None
                if stream is not None:
                    self.h11_busy = True
                    self.transport.pause_reading()
                    self._dispatch(stream, 0)
            elif isinstance(ev, h11.ConnectionClosed):
                self.transport.close()
                return

    def _h11_request(self, ev: h11.Request) -> _Stream | None:
        stream = _Stream()
        stream.method = ev.method.decode("latin-1")
        stream.path = ev.target.decode("latin-1")
        stream.scheme = self.scheme
        for name, value in ev.headers:
            if name == b"host":
                stream.authority = value.decode("latin-1")
            elif name == b"content-type":
                stream.content_type = value.decode("latin-1")
            elif name == b"content-length" and int(value) > self.limits.max_body:
                self._h11_send(TOO_LARGE, close=True)
                return None
        return stream

    def _h11_error(self, exc: h11.RemoteProtocolError) -> None:
        conn = self.h11
        assert conn is not None
        if conn.our_state in (h11.IDLE, h11.SEND_RESPONSE):
            status = exc.error_status_hint
            body = f'{{"title":"Bad request","status":{status}}}'.encode()
            self._h11_send(Response(status, body, "application/problem+json"), close=True)
        else:
            self.transport.close()

    def _h11_send(self, resp: Response, close: bool = False) -> None:
        conn = self.h11
        if conn is None or self.closed:
            return
        headers = list(resp.headers)
        if resp.status != NO_CONTENT:  # RFC 9110 §8.6: no Content-Length in a 204
            headers += [
                ("content-type", resp.content_type),
                ("content-length", str(len(resp.body))),
            ]
        if close:
            headers.append(("connection", "close"))
        reason = _REASONS.get(resp.status, b"")
        try:
            out = conn.send(h11.Response(status_code=resp.status, headers=headers, reason=reason))
            out += conn.send(h11.Data(data=resp.body)) if resp.body else b""
            out += conn.send(h11.EndOfMessage())
        except h11.LocalProtocolError:
            self.transport.close()
            return
        self.transport.write(out)
        if close or conn.our_state is h11.MUST_CLOSE:
            self.transport.close()
            return
        self.h11_busy = False
        if conn.our_state is h11.DONE and conn.their_state is h11.DONE:
            conn.start_next_cycle()
            self.transport.resume_reading()
            self._h11_step()

    # -- requests --------------------------------------------------------------------

    def _dispatch(self, stream: _Stream, sid: int) -> None:
        request = Request(
            stream.method,
            stream.path,
            stream.authority,
            stream.scheme or self.scheme,
            stream.content_type,
            bytes(stream.body),
            self.peer,
            self.h2 is not None,
        )
        self.server.spawn(self._serve(request, sid))

    async def _serve(self, request: Request, sid: int) -> None:
        try:
            resp = await self.server.handler(request)
        except Exception as exc:  # a bug must cost one answer, never the connection
            log.error("nchf_handler_failed", error=repr(exc), path=request.path)
            resp = INTERNAL
        if self.h2 is not None:
            self._h2_respond(sid, resp)
        else:
            self._h11_send(resp)

    # -- writing ---------------------------------------------------------------------

    def _flush_soon(self) -> None:
        if not self.flush_scheduled:
            self.flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        self.flush_scheduled = False
        if self.h2 is None or self.closed:
            return
        data = self.h2.data_to_send()
        if data:
            self.transport.write(data)

    def shutdown(self) -> None:
        """GOAWAY (HTTP/2) and close: the server is stopping."""
        if self.closed:
            return
        if self.h2 is not None:
            with contextlib.suppress(ProtocolError):
                self.h2.close_connection()
            self._flush()
        self.transport.close()


class HttpServer:
    """The listening sockets, their connections and the requests in progress."""

    def __init__(
        self, handler: Handler, limits: Limits | None = None, tls: ssl.SSLContext | None = None
    ) -> None:
        self.handler = handler
        self.limits = limits or Limits()
        self.tls = tls
        self.servers: list[asyncio.Server] = []
        self.connections: set[HttpConnection] = set()
        self.tasks: set[asyncio.Task[None]] = set()

    async def listen(self, hosts: list[str], port: int, reuse_port: bool = True) -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(
            lambda: HttpConnection(self),
            host=hosts,
            port=port,
            ssl=self.tls,
            reuse_port=reuse_port or None,
        )
        self.servers.append(server)

    @property
    def addresses(self) -> list[tuple[str, int]]:
        return bound_addresses(self.servers)

    def spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def stop(self, drain_timeout: float) -> None:
        """Stop accepting, let requests in progress finish, then GOAWAY and close."""
        for server in self.servers:
            server.close()
        if self.tasks and drain_timeout > 0:
            await asyncio.wait(set(self.tasks), timeout=drain_timeout)
        for task in list(self.tasks):
            task.cancel()
        for conn in list(self.connections):
            conn.shutdown()
        for server in self.servers:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(server.wait_closed(), max(drain_timeout, 0.1))
        self.servers.clear()


def tls_context(cert_file: str, key_file: str, client_ca: str | None = None) -> ssl.SSLContext:
    """Server TLS with ALPN h2 then http/1.1 (RFC 7301; TS 29.500 §5.2.2: TLS 1.2 or later)."""
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(cert_file, key_file)
    ctx.set_alpn_protocols(["h2", "http/1.1"])
    if client_ca is not None:
        ctx.load_verify_locations(client_ca)
        ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx
