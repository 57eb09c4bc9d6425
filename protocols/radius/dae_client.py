"""UDP transport of the dynamic-authorisation client (RFC 5176 §2.3, standards §3.5).

Owns one ephemeral UDP socket per address family, the Identifier space per NAS
(256 ids per destination, RFC 2865 §3) and the retransmission timers: a request
is re-sent unchanged (same Identifier and Authenticator) after each delay of
the backoff schedule until an authentic ACK/NAK arrives or the schedule ends.
Answers that fail :func:`protocols.radius.dae.verify_reply` are ignored.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from protocols.radius.clients import normalise_ip
from protocols.radius.dae import (
    DaeKind,
    DaeReply,
    DaeStatus,
    encode_request,
    verify_reply,
)

Dest = tuple[str, int]


@dataclass(slots=True)
class _Pending:
    kind: DaeKind
    raw: bytes
    secret: bytes
    future: asyncio.Future[DaeReply]


class _Endpoint(asyncio.DatagramProtocol):
    def __init__(self, owner: DaeClient) -> None:
        self._owner = owner

    def datagram_received(self, data: bytes, addr: tuple[Any, ...]) -> None:
        self._owner.received(data, str(addr[0]), int(addr[1]))


class DaeClient:
    def __init__(self) -> None:
        self._transports: dict[int, asyncio.DatagramTransport] = {}
        self._pending: dict[tuple[str, int, int], _Pending] = {}
        self._next_id: dict[Dest, int] = {}

    async def _transport(self, family: int) -> asyncio.DatagramTransport:
        tr = self._transports.get(family)
        if tr is None:
            loop = asyncio.get_running_loop()
            local = ("::", 0) if family == socket.AF_INET6 else ("0.0.0.0", 0)
            tr, _ = await loop.create_datagram_endpoint(
                lambda: _Endpoint(self), local_addr=local, family=family
            )
            self._transports[family] = tr
        return tr

    def _allocate_id(self, dest: Dest) -> int:
        start = self._next_id.get(dest, 0)
        for step in range(256):
            ident = (start + step) % 256
            if (dest[0], dest[1], ident) not in self._pending:
                self._next_id[dest] = (ident + 1) % 256
                return ident
        raise RuntimeError(f"256 requests in flight to {dest}")

    def received(self, data: bytes, host: str, port: int) -> None:
        if len(data) < 2:
            return
        key = (str(normalise_ip(host)), port, data[1])
        pending = self._pending.get(key)
        if pending is None or pending.future.done():
            return
        reply = verify_reply(pending.kind, pending.raw, data, pending.secret)
        if reply is not None:
            pending.future.set_result(reply)

    async def send(
        self,
        kind: DaeKind,
        dest: Dest,
        secret: bytes,
        attributes: Sequence[tuple[str, Any]],
        event_timestamp: int,
        delays: Sequence[float],
        on_sent: Callable[[], None] | None = None,
    ) -> DaeReply:
        """Send and retransmit until answered; TIMEOUT when the schedule runs out.
        ``on_sent`` is called once the request is encoded and first sent."""
        host = str(normalise_ip(dest[0]))
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        transport = await self._transport(family)
        ident = self._allocate_id((host, dest[1]))
        raw = encode_request(kind, ident, secret, attributes, event_timestamp)
        future: asyncio.Future[DaeReply] = asyncio.get_running_loop().create_future()
        key = (host, dest[1], ident)
        self._pending[key] = _Pending(kind, raw, secret, future)
        try:
            for attempt, delay in enumerate(delays):
                transport.sendto(raw, (host, dest[1]))
                if attempt == 0 and on_sent is not None:
                    on_sent()
                try:
                    return await asyncio.wait_for(asyncio.shield(future), delay)
                except TimeoutError:
                    continue
            return DaeReply(DaeStatus.TIMEOUT)
        finally:
            del self._pending[key]

    def close(self) -> None:
        for tr in self._transports.values():
            tr.close()
        self._transports.clear()
