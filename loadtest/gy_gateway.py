"""Simulated Gy gateways: TCP connections that do CER, then stream CCRs (RFC 6733, RFC 4006).

Built for throughput: a request is a template copy with a few fields
patched (:mod:`loadtest.diameter_templates`); requests queued during one
event-loop pass leave in one ``transport.write``; answers are split and
read with ``struct`` (:mod:`loadtest.diameter_wire`), and matched to their
request by Hop-by-Hop identifier. Time-outs are found from a FIFO of send
times (every request has the same time-out, so the oldest expire first).
The server's own requests (DWR, RAR, ASR, DPR) are answered so that the
connection stays up for the whole run.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import random
import struct
import time
from collections import deque
from collections.abc import Sequence

from loadtest import diameter_wire as wire
from loadtest.diameter_templates import (
    COMMAND_NAMES,
    EVENT,
    INITIAL,
    TERMINATION,
    UPDATE,
    GyTemplates,
    cer,
    dwa,
    generic_answer,
)
from loadtest.session import Done, SimSession
from loadtest.stats import DISCONNECTED, TIMEOUT, Stats

SUCCESS = 2001


def _usage(rng: random.Random, mean: int) -> int:
    return rng.randint(mean // 2, mean + mean // 2) if mean > 1 else mean


class GyConnection(asyncio.Protocol):
    """One gateway connection: its own Origin-Host, templates and pending requests."""

    def __init__(
        self,
        templates: GyTemplates,
        stats: Stats,
        epoch: float,
        timeout: float,
        state_id: int,
        rng: random.Random,
    ) -> None:
        self.templates = templates
        self.stats = stats
        self.epoch = epoch
        self.timeout = timeout
        self.state_id = state_id
        self.rng = rng
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.out: list[bytes | bytearray] = []
        self.flush_scheduled = False
        self.pending: dict[int, tuple[int, str, SimSession, Done]] = {}
        self.sent_order: deque[tuple[float, int]] = deque()
        self.hbh = itertools.count(rng.getrandbits(24) << 4)
        self.e2e = itertools.count((int(time.time()) & 0xFFF) << 20)
        self.cea: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self.lost = False
        self.loop = asyncio.get_running_loop()

    # -- asyncio.Protocol ----------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is no asyncio.Transport
        request = bytearray(
            cer(self.templates.origin_host, self.templates.origin_realm, self.state_id)
        )
        struct.pack_into(">II", request, 12, next(self.hbh), next(self.e2e))
        transport.write(bytes(request))  # type: ignore[attr-defined]

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        try:
            frames = wire.split_frames(self.buffer)
        except wire.FrameError:
            if self.transport is not None:
                self.transport.close()
            return
        now = time.perf_counter()
        for frame in frames:
            if frame[4] & wire.FLAG_REQUEST:
                self._server_request(frame)
                continue
            self._answer(frame, now)

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        if not self.cea.done():
            self.cea.set_exception(ConnectionError(f"connection lost before CEA: {exc}"))
        second = int(time.perf_counter() - self.epoch)
        pending, self.pending = self.pending, {}
        for _, command, session, done in pending.values():
            self.stats.failure(command, DISCONNECTED, second)
            done(session, False)

    # -- requests ----------------------------------------------------------

    def send(self, session: SimSession, done: Done) -> None:
        if self.lost:
            self.stats.failure("CCR", DISCONNECTED, int(time.perf_counter() - self.epoch))
            done(session, False)
            return
        request_type = self._request_type(session)
        template = self.templates.get(request_type, session.services)
        hbh = next(self.hbh) & 0xFFFFFFFF
        usage: Sequence[int] = ()
        if request_type in (UPDATE, TERMINATION):
            usage = [_usage(self.rng, svc.mean_usage) for svc in session.services]
        data = template.render(
            session.digits,
            session.step,
            hbh,
            next(self.e2e) & 0xFFFFFFFF,
            session.subscriber,
            usage,
        )
        now = time.perf_counter()
        self.pending[hbh] = (time.perf_counter_ns(), COMMAND_NAMES[request_type], session, done)
        self.sent_order.append((now + self.timeout, hbh))
        self._queue(data)

    @staticmethod
    def _request_type(session: SimSession) -> int:
        if session.event:
            return EVENT
        if session.opening:
            return INITIAL
        return TERMINATION if session.closing else UPDATE

    def _queue(self, data: bytes | bytearray) -> None:
        self.out.append(data)
        if not self.flush_scheduled:
            self.flush_scheduled = True
            self.loop.call_soon(self._flush)

    def _flush(self) -> None:
        self.flush_scheduled = False
        if self.transport is None or self.transport.is_closing() or not self.out:
            self.out.clear()
            return
        data = b"".join(self.out)
        self.out.clear()
        self.transport.write(data)

    def _answer(self, frame: bytes, now: float) -> None:
        hbh = int.from_bytes(frame[12:16], "big")
        command = int.from_bytes(frame[5:8], "big")
        if command == wire.CMD_CE:
            if not self.cea.done():
                self.cea.set_result(wire.result_code(frame))
            return
        entry = self.pending.pop(hbh, None)
        if entry is None:
            self.stats.counters["late answers"] += 1
            return
        started, name, session, done = entry
        code = wire.result_code(frame)
        micros = (time.perf_counter_ns() - started) // 1000
        ok = code == SUCCESS
        self.stats.answer(name, str(code), micros, int(now - self.epoch), ok)
        for mscc_code in wire.mscc_result_codes(frame):
            if mscc_code != SUCCESS:
                self.stats.mscc_results[str(mscc_code)] += 1
        done(session, ok)

    def _server_request(self, frame: bytes) -> None:
        command = int.from_bytes(frame[5:8], "big")
        host, realm = self.templates.origin_host, self.templates.origin_realm
        if command == wire.CMD_DW:
            self._queue(dwa(frame, host, realm, self.state_id))
        else:
            self.stats.counters[f"server request {command}"] += 1
            self._queue(generic_answer(frame, host, realm))

    def expire(self, now: float) -> None:
        """Fail the requests whose time-out has passed (oldest first)."""
        order = self.sent_order
        second = int(now - self.epoch)
        while order and order[0][0] <= now:
            _, hbh = order.popleft()
            entry = self.pending.pop(hbh, None)
            if entry is not None:
                _, name, session, done = entry
                self.stats.failure(name, TIMEOUT, second)
                done(session, False)

    def close(self) -> None:
        self._flush()
        if self.transport is not None:
            self.transport.close()


class GyGateway:
    """Several connections of one generator process, used round robin."""

    def __init__(self, connections: list[GyConnection]) -> None:
        self.connections = connections
        self._next = itertools.cycle(connections)
        self._expiry: asyncio.Task[None] | None = None

    @classmethod
    async def open(
        cls,
        host: str,
        port: int,
        count: int,
        make: list[GyTemplates],
        stats: Stats,
        epoch: float,
        timeout: float,  # noqa: ASYNC109 - the per-request time-out, also bounds the CER
        rng: random.Random,
    ) -> GyGateway:
        loop = asyncio.get_running_loop()
        state_id = int(time.time()) & 0x7FFFFFFF
        conns = []
        for i in range(count):
            _, conn = await loop.create_connection(
                lambda i=i: GyConnection(make[i], stats, epoch, timeout, state_id, rng),  # type: ignore[misc]
                host,
                port,
            )
            code = await asyncio.wait_for(conn.cea, timeout)
            if code != SUCCESS:
                raise ConnectionError(f"CER refused by {host}:{port}: Result-Code {code}")
            conns.append(conn)
        gateway = cls(conns)
        gateway._expiry = loop.create_task(gateway._expire_loop())
        return gateway

    async def _expire_loop(self) -> None:
        while True:
            await asyncio.sleep(0.05)
            now = time.perf_counter()
            for conn in self.connections:
                conn.expire(now)

    def send(self, session: SimSession, done: Done) -> None:
        # A gateway sends all of a session's requests over one peer connection.
        conn = session.route
        if not isinstance(conn, GyConnection):
            conn = session.route = next(self._next)
        conn.send(session, done)

    def in_flight(self) -> int:
        return sum(len(c.pending) for c in self.connections)

    def close(self) -> None:
        if self._expiry is not None:
            self._expiry.cancel()
        for conn in self.connections:
            with contextlib.suppress(Exception):
                conn.close()
