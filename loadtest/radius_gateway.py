"""A simulated NAS sending RADIUS accounting over several UDP sockets (RFC 2866).

Each socket has its own 256 Identifiers (RFC 2865 §3: the Identifier tells
requests of one source port apart); a request waits in a backlog when every
Identifier of every socket is in use. A request unanswered after
``timeout / (retries + 1)`` is sent again unchanged (same Identifier and
authenticator, so the server's duplicate cache answers it without charging
twice), and counts as a time-out after the last attempt. Each session's
counters are cumulative, as a NAS reports them (RFC 2866 §5.3-§5.7).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import random
import time
from collections import deque
from typing import Any

from loadtest.radius_templates import (
    COMMAND_NAMES,
    INTERIM,
    START,
    STOP,
    AcctTemplates,
    response_ok,
)
from loadtest.session import Done, SimSession
from loadtest.stats import TIMEOUT, Stats

OK_RESULT = "Accounting-Response"
BAD_RESULT = "bad-authenticator"


class _Pending:
    __slots__ = ("attempts", "auth", "command", "data", "done", "session", "started")

    def __init__(
        self,
        data: bytes,
        auth: bytes,
        command: str,
        session: SimSession,
        done: Done,
        started: int,
    ) -> None:
        self.data = data
        self.auth = auth
        self.command = command
        self.session = session
        self.done = done
        self.started = started  # when the driver asked: backlog waits count
        self.attempts = 1


class NasSocket(asyncio.DatagramProtocol):
    """One source port with its Identifier space."""

    def __init__(self, gateway: RadiusGateway) -> None:
        self.gateway = gateway
        self.transport: asyncio.DatagramTransport | None = None
        self.free: deque[int] = deque(range(256))
        self.pending: dict[int, _Pending] = {}
        self.order: deque[tuple[float, int, _Pending]] = deque()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is no asyncio class

    def datagram_received(self, data: bytes, addr: Any) -> None:
        if len(data) < 20:
            return
        entry = self.pending.pop(data[1], None)
        if entry is None:
            self.gateway.stats.counters["late answers"] += 1
            return
        self.free.append(data[1])
        gw = self.gateway
        micros = (time.perf_counter_ns() - entry.started) // 1000
        ok = response_ok(data, entry.auth, gw.secret)
        second = int(time.perf_counter() - gw.epoch)
        gw.stats.answer(entry.command, OK_RESULT if ok else BAD_RESULT, micros, second, ok)
        entry.done(entry.session, ok)
        gw.drain_backlog()

    def error_received(self, exc: Exception) -> None:
        self.gateway.stats.counters[f"socket error {type(exc).__name__}"] += 1

    def send(self, entry: _Pending, identifier: int, now: float) -> None:
        self.pending[identifier] = entry
        self.order.append((now + self.gateway.attempt_timeout, identifier, entry))
        assert self.transport is not None
        self.transport.sendto(entry.data)

    def expire(self, now: float) -> None:
        gw = self.gateway
        while self.order and self.order[0][0] <= now:
            _, identifier, entry = self.order.popleft()
            if self.pending.get(identifier) is not entry:
                continue  # answered meanwhile
            if entry.attempts <= gw.retries:
                entry.attempts += 1
                gw.stats.counters["retransmissions"] += 1
                self.order.append((now + gw.attempt_timeout, identifier, entry))
                assert self.transport is not None
                self.transport.sendto(entry.data)
                continue
            del self.pending[identifier]
            self.free.append(identifier)
            gw.stats.failure(entry.command, TIMEOUT, int(now - gw.epoch))
            entry.done(entry.session, False)


class RadiusGateway:
    """A simulated NAS (one NAS-Identifier) with several sockets."""

    def __init__(
        self,
        templates: AcctTemplates,
        secret: bytes,
        stats: Stats,
        epoch: float,
        timeout: float,
        retries: int,
        rng: random.Random,
        mean_octets: int,
        interval: float,
    ) -> None:
        self.templates = templates
        self.secret = secret
        self.stats = stats
        self.epoch = epoch
        self.retries = retries
        self.attempt_timeout = timeout / (retries + 1)
        self.rng = rng
        self.mean_octets = mean_octets
        self.seconds_per_report = max(1, int(interval) or 60)
        self.sockets: list[NasSocket] = []
        self._pick = itertools.count()
        self.backlog: deque[tuple[SimSession, Done, int]] = deque()
        self._expiry: asyncio.Task[None] | None = None
        self.closed = False

    async def open(self, host: str, port: int, count: int) -> None:
        loop = asyncio.get_running_loop()
        for _ in range(count):
            _, sock = await loop.create_datagram_endpoint(
                lambda: NasSocket(self), remote_addr=(host, port)
            )
            self.sockets.append(sock)
        self._expiry = loop.create_task(self._expire_loop())

    async def _expire_loop(self) -> None:
        while True:
            await asyncio.sleep(0.05)
            now = time.perf_counter()
            for sock in self.sockets:
                sock.expire(now)

    def _status(self, session: SimSession) -> int:
        if session.opening:
            return START
        return STOP if session.closing else INTERIM

    def _advance_counters(self, session: SimSession) -> list[int]:
        mean = self.mean_octets
        c = session.cumulative
        c[0] += self.rng.randint(mean // 4, mean // 2 + mean // 4) if mean > 1 else mean
        c[1] += self.rng.randint(mean // 4, mean // 2 + mean // 4) if mean > 1 else mean
        c[2] += self.seconds_per_report
        return c

    def send(self, session: SimSession, done: Done) -> None:
        if self.closed:
            done(session, False)
            return
        n = len(self.sockets)
        for _ in range(n):
            sock = self.sockets[next(self._pick) % n]
            if sock.free:
                self._send_on(sock, session, done, time.perf_counter_ns())
                return
        self.backlog.append((session, done, time.perf_counter_ns()))

    def _send_on(self, sock: NasSocket, session: SimSession, done: Done, started: int) -> None:
        status = self._status(session)
        counters = self._advance_counters(session) if status != START else [0, 0, 0]
        identifier = sock.free.popleft()
        data, auth = self.templates.by_status[status].render(
            identifier, session.digits, session.subscriber, counters, self.secret
        )
        entry = _Pending(data, auth, COMMAND_NAMES[status], session, done, started)
        sock.send(entry, identifier, time.perf_counter())

    def drain_backlog(self) -> None:
        while self.backlog:
            sock = next((s for s in self.sockets if s.free), None)
            if sock is None:
                return
            session, done, started = self.backlog.popleft()
            self._send_on(sock, session, done, started)

    def in_flight(self) -> int:
        return sum(len(s.pending) for s in self.sockets) + len(self.backlog)

    def close(self) -> None:
        self.closed = True
        if self._expiry is not None:
            self._expiry.cancel()
        for sock in self.sockets:
            if sock.transport is not None:
                with contextlib.suppress(Exception):
                    sock.transport.close()
