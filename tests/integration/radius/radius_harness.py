"""Test peers for the RADIUS front end: a NAS (pyrad packets over a real UDP socket)
and a NAS-side DAE listener (RFC 5176 server, pyrad) that answers ACK, NAK, NAK
with an Error-Cause, or nothing."""

from __future__ import annotations

import asyncio
import contextlib
import enum
from dataclasses import dataclass, field
from typing import Any, cast

from pyrad import packet as rp

from protocols.radius.dictionary import load_dictionary


class _Recv(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.queue: asyncio.Queue[tuple[bytes, tuple[Any, ...]]] = asyncio.Queue()

    def datagram_received(self, data: bytes, addr: tuple[Any, ...]) -> None:
        self.queue.put_nowait((data, addr))


class Nas:
    """A NAS sending requests from one UDP socket (fixed source port)."""

    def __init__(self, transport: asyncio.DatagramTransport, proto: _Recv) -> None:
        self._tr = transport
        self._proto = proto

    @classmethod
    async def open(cls, host: str = "127.0.0.1") -> Nas:
        loop = asyncio.get_running_loop()
        tr, proto = await loop.create_datagram_endpoint(_Recv, local_addr=(host, 0))
        return cls(tr, proto)

    async def send(self, raw: bytes, dest: tuple[str, int], within: float = 5.0) -> bytes | None:
        """Send one datagram; the first answer within ``within`` seconds, else None."""
        while not self._proto.queue.empty():
            self._proto.queue.get_nowait()
        self._tr.sendto(raw, dest)
        try:
            data, _ = await asyncio.wait_for(self._proto.queue.get(), within)
        except TimeoutError:
            return None
        return data

    def close(self) -> None:
        self._tr.close()


class DaeMode(enum.Enum):
    ACK = "ack"
    NAK = "nak"
    NAK_503 = "nak503"
    SILENT = "silent"


@dataclass
class DaeListener(asyncio.DatagramProtocol):
    """The NAS side of RFC 5176: verifies each request, records it, answers per mode."""

    secret: bytes
    mode: DaeMode = DaeMode.ACK
    received: list[rp.CoAPacket] = field(default_factory=list)
    raw: list[bytes] = field(default_factory=list)
    bad: int = 0
    transport: asyncio.DatagramTransport | None = None
    event: asyncio.Event = field(default_factory=asyncio.Event)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    @property
    def port(self) -> int:
        assert self.transport is not None
        return int(self.transport.get_extra_info("sockname")[1])

    def datagram_received(self, data: bytes, addr: tuple[Any, ...]) -> None:
        pkt = rp.CoAPacket(packet=data, secret=self.secret, dict=load_dictionary())
        if not pkt.VerifyCoARequest() or not pkt.verify_message_authenticator():
            self.bad += 1
            return
        self.received.append(pkt)
        self.raw.append(data)
        self.event.set()
        if self.mode is DaeMode.SILENT:
            return
        reply = pkt.CreateReply()
        if self.mode is not DaeMode.ACK:
            reply.code = rp.DisconnectNAK if pkt.code == rp.DisconnectRequest else rp.CoANAK
        if self.mode is DaeMode.NAK_503:
            reply.AddAttribute("Error-Cause", 503)
        elif self.mode is DaeMode.NAK:
            reply.AddAttribute("Error-Cause", 504)
        assert self.transport is not None
        self.transport.sendto(bytes(reply.ReplyPacket()), addr)

    async def wait(self, count: int = 1, within: float = 5.0) -> list[rp.CoAPacket]:
        async def until() -> None:
            while len(self.received) < count:
                self.event.clear()
                await self.event.wait()

        await asyncio.wait_for(until(), within)
        return self.received

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


async def open_dae_listener(
    secret: bytes, mode: DaeMode = DaeMode.ACK, host: str = "127.0.0.1", port: int = 0
) -> DaeListener:
    loop = asyncio.get_running_loop()
    listener = DaeListener(secret, mode)
    await loop.create_datagram_endpoint(lambda: listener, local_addr=(host, port))
    return listener


class Volley(asyncio.DatagramProtocol):
    """A NAS that sends many requests at once from one socket (up to 256: one Identifier
    each) and records which Identifiers were answered."""

    def __init__(self) -> None:
        self.answered: set[int] = set()
        self.transport: asyncio.DatagramTransport | None = None
        self._event = asyncio.Event()

    @classmethod
    async def open(cls, host: str = "127.0.0.1") -> Volley:
        loop = asyncio.get_running_loop()
        _, proto = await loop.create_datagram_endpoint(cls, local_addr=(host, 0))
        return proto

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[Any, ...]) -> None:
        if len(data) >= 20:
            self.answered.add(data[1])
            self._event.set()

    def send(self, raw: bytes, dest: tuple[str, int]) -> None:
        assert self.transport is not None
        self.transport.sendto(raw, dest)

    async def wait(self, count: int, within: float) -> int:
        """Until ``count`` Identifiers are answered or ``within`` seconds pass: how many."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while len(self.answered) < count and loop.time() < deadline:
            self._event.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._event.wait(), deadline - loop.time())
        return len(self.answered)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()
