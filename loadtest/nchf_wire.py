"""An HTTP/2 client connection for the load generator: POSTs as streams, answers by callback.

The h2 library is the protocol (client side, prior knowledge: RFC 9113 §3.3);
this class only moves bytes. Requests queued during one event-loop pass leave
in one ``transport.write``; past the server's SETTINGS_MAX_CONCURRENT_STREAMS
a request waits in a FIFO until a stream ends. Received data is acknowledged
at once (flow control never stalls the server), and a body waiting for
window is resumed on WINDOW_UPDATE. Callbacks get the status, the
``location`` header (a created resource) and the body.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Callable
from typing import Any

from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.events import (
    ConnectionTerminated,
    DataReceived,
    ResponseReceived,
    StreamEnded,
    StreamReset,
    WindowUpdated,
)
from h2.exceptions import ProtocolError, StreamClosedError

Answer = Callable[[int, bytes, bytes], None]  # status, location, body; status 0: reset / lost


class _Pending:
    __slots__ = ("answer", "body", "location", "status", "unsent")

    def __init__(self, answer: Answer, unsent: bytes) -> None:
        self.answer = answer
        self.status = 0
        self.location = b""
        self.body = bytearray()
        self.unsent = memoryview(unsent)


class H2Client(asyncio.Protocol):
    """One HTTP/2 connection to the server under test."""

    def __init__(self, authority: str) -> None:
        self.authority = authority.encode()
        self.transport: Any = None
        # A load generator trusts both ends: h2's header checks and normalisation
        # (both directions) would be a good part of its cost per request.
        config = H2Configuration(
            client_side=True,
            header_encoding=None,
            validate_outbound_headers=False,
            normalize_outbound_headers=False,
            validate_inbound_headers=False,
            normalize_inbound_headers=False,
        )
        self.conn = H2Connection(config)
        self.streams: dict[int, _Pending] = {}
        self.waiting: deque[tuple[bytes, bytes, Answer]] = deque()
        self.flush_scheduled = False
        self.lost = False
        self.terminated: Any = None
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    # -- asyncio.Protocol ----------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        self.conn.initiate_connection()
        self.conn.increment_flow_control_window(1 << 20)
        self._flush()

    def data_received(self, data: bytes) -> None:
        try:
            events = self.conn.receive_data(data)
        except ProtocolError:
            self.transport.close()
            return
        for ev in events:
            kind = type(ev)
            if kind is ResponseReceived:
                self._headers(ev)  # type: ignore[arg-type]
            elif kind is DataReceived:
                self._data(ev)  # type: ignore[arg-type]
            elif kind is StreamEnded:
                self._end(ev.stream_id)  # type: ignore[attr-defined]
            elif kind is StreamReset:
                self._end(ev.stream_id, reset=True)  # type: ignore[attr-defined]
            elif kind is WindowUpdated:
                self._resume()
            elif kind is ConnectionTerminated:
                self.terminated = ev  # GOAWAY: no new stream on this connection
                self.lost = True
                self.transport.close()
        if not self.ready.done():
            self.ready.set_result(None)  # the server's SETTINGS are in
        self._flush_soon()

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        if not self.ready.done():
            self.ready.set_exception(ConnectionError(f"connection lost: {exc}"))
        pending, self.streams = self.streams, {}
        waiting, self.waiting = self.waiting, deque()
        for p in pending.values():
            p.answer(0, b"", b"")
        for _, _, answer in waiting:
            answer(0, b"", b"")

    # -- requests -------------------------------------------------------------------

    def post(self, path: bytes, body: bytes, answer: Answer) -> None:
        """POST ``body`` (JSON) to ``path``; ``answer`` is called exactly once."""
        if self.lost:
            answer(0, b"", b"")
            return
        if len(self.streams) >= self.conn.remote_settings.max_concurrent_streams:
            self.waiting.append((path, body, answer))
            return
        self._send(path, body, answer)

    def _send(self, path: bytes, body: bytes, answer: Answer) -> None:
        conn = self.conn
        sid = conn.get_next_available_stream_id()
        conn.send_headers(
            sid,
            [
                (b":method", b"POST"),
                (b":scheme", b"http"),
                (b":authority", self.authority),
                (b":path", path),
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        )
        pending = self.streams[sid] = _Pending(answer, body)
        self._send_body(sid, pending)
        self._flush_soon()

    def _send_body(self, sid: int, pending: _Pending) -> None:
        conn = self.conn
        body = pending.unsent
        while True:
            room = min(conn.local_flow_control_window(sid), conn.max_outbound_frame_size)
            if room <= 0 and body:
                pending.unsent = body
                return
            chunk, body = body[:room], body[room:]
            conn.send_data(sid, chunk.tobytes(), end_stream=not body)
            if not body:
                pending.unsent = memoryview(b"")
                return

    def _resume(self) -> None:
        for sid, pending in list(self.streams.items()):
            if pending.unsent:
                with contextlib.suppress(StreamClosedError, ProtocolError):
                    self._send_body(sid, pending)

    def _headers(self, ev: ResponseReceived) -> None:
        pending = self.streams.get(ev.stream_id)
        if pending is None:
            return
        for name, value in ev.headers or ():
            if name == b":status":
                pending.status = int(value)
            elif name == b"location":
                pending.location = bytes(value)

    def _data(self, ev: DataReceived) -> None:
        with contextlib.suppress(StreamClosedError, ProtocolError):
            self.conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
        pending = self.streams.get(ev.stream_id)
        if pending is not None:
            pending.body += ev.data or b""

    def _end(self, sid: int, reset: bool = False) -> None:
        pending = self.streams.pop(sid, None)
        if pending is not None:
            pending.answer(0 if reset else pending.status, pending.location, bytes(pending.body))
        while self.waiting and len(self.streams) < self.conn.remote_settings.max_concurrent_streams:
            self._send(*self.waiting.popleft())

    def forget(self, answer: Answer) -> None:
        """Drop the stream(s) of a timed-out request: a late answer is not reported."""
        for sid, pending in list(self.streams.items()):
            if pending.answer is answer:
                del self.streams[sid]
                with contextlib.suppress(StreamClosedError, ProtocolError):
                    self.conn.reset_stream(sid)
        self._flush_soon()

    # -- writing ----------------------------------------------------------------------

    def _flush_soon(self) -> None:
        if not self.flush_scheduled:
            self.flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        self.flush_scheduled = False
        if self.transport is None or self.transport.is_closing():
            return
        data = self.conn.data_to_send()
        if data:
            self.transport.write(data)

    def close(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            with contextlib.suppress(ProtocolError):
                self.conn.close_connection()
            self._flush()
            self.transport.close()


async def connect(host: str, port: int) -> H2Client:
    """An HTTP/2 connection (prior knowledge) whose server SETTINGS have arrived."""
    loop = asyncio.get_running_loop()
    _, client = await loop.create_connection(lambda: H2Client(f"{host}:{port}"), host, port)
    await asyncio.wait_for(client.ready, 10.0)
    return client
