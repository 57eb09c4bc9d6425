"""asyncio UDP listeners for RADIUS authorisation (1812) and accounting (1813).

The protocol objects only move bytes: :class:`~protocols.radius.pipeline.Pipeline`
decides, and each accepted request is charged in its own task so one slow
Redis call never blocks the socket. IPv6 sockets are IPv6-only (so ``::`` and
``0.0.0.0`` can both be bound) and every socket sets SO_REUSEPORT so several
worker processes share the ports (DESIGN.md "Scale"). Runs on whatever loop the
runtime installed (uvloop in ``ocs serve``).
"""

from __future__ import annotations

import asyncio
import socket
from ipaddress import IPv4Address, IPv6Address
from typing import Any, cast

from protocols.radius import metrics as m
from protocols.radius.codec import PortKind
from protocols.radius.drops import DropReason
from protocols.radius.pipeline import Pipeline, Prepared


class RadiusListener(asyncio.DatagramProtocol):
    def __init__(self, pipeline: Pipeline, kind: PortKind, max_inflight: int) -> None:
        self._pipeline = pipeline
        self._kind = kind
        self._max = max_inflight
        self._transport: asyncio.DatagramTransport | None = None
        self.tasks: set[asyncio.Task[None]] = set()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's and asyncio's UDP transports are not all DatagramTransport subclasses
        self._transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[Any, ...]) -> None:
        host, port = str(addr[0]), int(addr[1])
        if len(self.tasks) >= self._max:
            self._pipeline.drop(host, m.UNKNOWN_NAS, DropReason.OVERLOAD)
            return
        result = self._pipeline.prepare(data, host, port, self._kind)
        if isinstance(result, bytes):
            self._send(result, addr)
        elif isinstance(result, Prepared):
            task = asyncio.get_running_loop().create_task(self._process(result, addr))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

    async def _process(self, prep: Prepared, addr: tuple[Any, ...]) -> None:
        answer = await self._pipeline.process(prep)
        if answer is not None:
            self._send(answer, addr)

    def _send(self, data: bytes, addr: tuple[Any, ...]) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.sendto(data, addr)

    def error_received(self, exc: Exception) -> None:
        pass  # ICMP errors for one NAS must not stop the listener

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()

    @property
    def address(self) -> tuple[str, int]:
        assert self._transport is not None
        sockname = self._transport.get_extra_info("sockname")
        return str(sockname[0]), int(sockname[1])


def bind_udp(host: IPv4Address | IPv6Address, port: int) -> socket.socket:
    family = socket.AF_INET6 if host.version == 6 else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if hasattr(socket, "SO_REUSEPORT"):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind((str(host), port))
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


async def listen(
    pipeline: Pipeline,
    kind: PortKind,
    host: IPv4Address | IPv6Address,
    port: int,
    max_inflight: int,
) -> RadiusListener:
    loop = asyncio.get_running_loop()
    proto = RadiusListener(pipeline, kind, max_inflight)
    await loop.create_datagram_endpoint(lambda: proto, sock=bind_udp(host, port))
    return proto
