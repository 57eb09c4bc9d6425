"""One pipelined Redis connection for the charging hot path.

Each charging call is one script call; under load the calls of one event-loop
pass are many. redis.asyncio's pipeline costs about 20 µs of Python per
command at that size (a pooled connection checked out and in, a coroutine per
reply, response callbacks); this pipe costs about 5: the commands of a pass
are packed by hiredis and written at once, and replies are parsed by hiredis
as they arrive and handed back in order (RESP replies come in the order the
commands were sent, so a FIFO of batches is all the bookkeeping needed).

It speaks to the same server as the client it is made from (TCP or unix
socket, TLS, AUTH, SELECT; behind Sentinel, the primary the sentinels name at
each connect, so after a failover the next connect reaches the new one). On
a cluster, :class:`~ocs.store.cluster_pipe.ClusterPipes` keeps one per
primary. For a connection it cannot make, :meth:`RedisPipe.for_client`
returns None and the caller keeps redis-py's pipeline. Failures are redis-py's
exceptions (``ConnectionError``, ``TimeoutError``, error replies as
``ResponseError`` subclasses), so callers map them exactly as before: a lost
connection fails every batch in flight, and the next batch reconnects.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import hiredis
from redis import exceptions as rexc
from redis._parsers import BaseParser
from redis.asyncio import Redis
from redis.asyncio.connection import Connection, SSLConnection, UnixDomainSocketConnection
from redis.asyncio.sentinel import SentinelConnectionPool

from ocs.metrics import REDIS_BATCH_COMMANDS, REDIS_ROUND_TRIP


class _ReplyError(Exception):
    """What hiredis builds for an error reply; turned into redis-py's class."""


@dataclass(slots=True)
class _Batch:
    """Commands written together, and the replies received for them so far."""

    expected: int
    future: asyncio.Future[list[Any]]
    sent_at: float
    replies: list[Any] = field(default_factory=list)


class _Protocol(asyncio.Protocol):
    def __init__(self, pipe: RedisPipe) -> None:
        self.pipe = pipe
        self.reader = hiredis.Reader(replyError=_ReplyError)
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.reader.feed(data)
        pending = self.pipe._in_flight
        try:
            while (reply := self.reader.gets()) is not False:
                if isinstance(reply, _ReplyError):
                    reply = BaseParser.parse_error(str(reply))  # type: ignore[no-untyped-call]
                if not pending:  # a reply nobody asked for: the stream is lost
                    raise rexc.ConnectionError("redis sent an unexpected reply")
                head = pending[0]
                head.replies.append(reply)
                if len(head.replies) == head.expected:
                    pending.popleft()
                    REDIS_ROUND_TRIP.observe(time.monotonic() - head.sent_at)
                    if not head.future.done():
                        head.future.set_result(head.replies)
        except (hiredis.ProtocolError, rexc.ConnectionError) as exc:
            self.pipe._fail(rexc.ConnectionError(f"redis protocol error: {exc}"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.pipe._lost(self, exc)


class RedisPipe:
    """Send batches of commands over one connection; replies in order."""

    def __init__(
        self,
        address: dict[str, Any],
        timeout: float,
        resolve: Callable[[], Awaitable[tuple[str, int]]] | None = None,
        wait: tuple[Any, ...] | None = None,
    ) -> None:
        self.address = address  # host/port or path; ssl_context; username, password, db
        self.timeout = timeout
        self.resolve = resolve  # where the server is now (Sentinel), asked at each connect
        # WAIT after every batch (durability replica); see send().
        self.wait = wait
        self._held: list[tuple[list[tuple[Any, ...]], asyncio.Future[list[Any]]]] = []
        self._waiting = False
        self._protocol: _Protocol | None = None
        self._connecting: asyncio.Future[_Protocol] | None = None
        self._in_flight: deque[_Batch] = deque()
        self._watchdog: asyncio.TimerHandle | None = None

    @classmethod
    def for_client(cls, client: Redis, wait: tuple[Any, ...] | None = None) -> RedisPipe | None:
        """A pipe to the server ``client`` talks to, or None where unsupported."""
        pool = client.connection_pool
        kwargs = dict(pool.connection_kwargs)
        kind = getattr(pool, "connection_class", None)
        if kind is None or not issubclass(kind, Connection | UnixDomainSocketConnection):
            return None
        timeout = float(kwargs.get("socket_timeout") or 5.0)
        if issubclass(kind, SSLConnection) or kwargs.get("ssl"):
            kwargs["ssl_context"] = _ssl_context(kwargs)
        if isinstance(pool, SentinelConnectionPool):
            return cls(kwargs, timeout, resolve=pool.get_master_address, wait=wait)
        return cls(kwargs, timeout, wait=wait)

    @property
    def ready(self) -> bool:
        """Connected: :meth:`send` can write now, without awaiting a connect."""
        p = self._protocol
        return p is not None and p.transport is not None and not p.transport.is_closing()

    def send(self, commands: Sequence[tuple[Any, ...]]) -> asyncio.Future[list[Any]]:
        """Write ``commands`` now (needs :attr:`ready`); the future gets their replies.

        With ``wait`` (durability replica) the replies end with WAIT's, and a
        batch is held while the previous one waits: WAIT blocks the
        connection, so batches written behind it would each wait their own
        replica round trip, one after the other (measured: 250 Gy CCR/s at
        p50 221 ms); held ones go together, behind one WAIT, as soon as it
        answers.
        """
        if self.wait is None:
            return self._write(commands)
        if not self.ready:
            raise rexc.ConnectionError("redis connection closed")
        future: asyncio.Future[list[Any]] = asyncio.get_running_loop().create_future()
        self._held.append((list(commands), future))
        if not self._waiting:
            self._release()
        return future

    def _release(self) -> None:
        """Write every held batch as one, with WAIT after it."""
        assert self.wait is not None
        jobs, self._held = self._held, []
        if not jobs:
            return
        try:
            batch = self._write([c for commands, _ in jobs for c in commands] + [self.wait])
        except (rexc.RedisError, OSError) as exc:
            _settle(jobs, exc)
            return
        self._waiting = True
        batch.add_done_callback(lambda done: self._released(jobs, done))

    def _released(
        self,
        jobs: list[tuple[list[tuple[Any, ...]], asyncio.Future[list[Any]]]],
        done: asyncio.Future[list[Any]],
    ) -> None:
        self._waiting = False
        if done.cancelled():
            _settle(jobs, rexc.ConnectionError("redis batch cancelled"))
        elif (exc := done.exception()) is not None:
            _settle(jobs, exc)
        else:
            replies = done.result()
            at = 0
            for commands, future in jobs:
                if not future.done():
                    future.set_result([*replies[at : at + len(commands)], replies[-1]])
                at += len(commands)
        if self._held:
            if self.ready:
                self._release()
            else:
                held, self._held = self._held, []
                _settle(held, rexc.ConnectionError("redis connection closed"))

    def _write(self, commands: Sequence[tuple[Any, ...]]) -> asyncio.Future[list[Any]]:
        protocol = self._protocol
        transport = protocol.transport if protocol is not None else None
        if transport is None or transport.is_closing():
            raise rexc.ConnectionError("redis connection closed")
        try:
            data = b"".join([hiredis.pack_command(c) for c in commands])
        except TypeError as exc:
            raise rexc.DataError(str(exc)) from exc
        batch = _Batch(len(commands), asyncio.get_running_loop().create_future(), time.monotonic())
        REDIS_BATCH_COMMANDS.observe(len(commands))
        self._in_flight.append(batch)
        transport.write(data)
        self._arm()
        return batch.future

    async def execute(self, commands: Sequence[tuple[Any, ...]]) -> list[Any]:
        """Replies to ``commands`` in order (an error reply is its exception object),
        connecting first when needed."""
        if not self.ready:
            await self._connect()
        return await self.send(commands)

    def close(self) -> None:
        if self._protocol is not None and self._protocol.transport is not None:
            self._protocol.transport.close()

    # -- connection -------------------------------------------------------------

    async def _connect(self) -> _Protocol:
        if self._connecting is None:
            self._connecting = asyncio.ensure_future(self._open())
        connecting = self._connecting
        try:
            return await asyncio.shield(connecting)
        finally:
            if connecting.done():
                self._connecting = None

    async def _open(self) -> _Protocol:
        loop = asyncio.get_running_loop()
        a = self.address
        connect_timeout = a.get("socket_connect_timeout") or self.timeout
        try:
            async with asyncio.timeout(connect_timeout):
                if "path" in a:
                    _, protocol = await loop.create_unix_connection(
                        lambda: _Protocol(self), a["path"]
                    )
                else:
                    if self.resolve is not None:
                        host, port = await self.resolve()
                    else:
                        host, port = a.get("host", "localhost"), int(a.get("port", 6379))
                    tls = a.get("ssl_context")
                    _, protocol = await loop.create_connection(
                        lambda: _Protocol(self),
                        host,
                        port,
                        ssl=tls,
                        server_hostname=host if tls is not None else None,
                    )
        except (OSError, TimeoutError, rexc.ConnectionError) as exc:
            raise rexc.ConnectionError(f"redis connect failed: {exc}") from exc
        self._protocol = protocol
        await self._handshake(protocol)
        return protocol

    async def _handshake(self, protocol: _Protocol) -> None:
        a = self.address
        hello: list[tuple[Any, ...]] = []
        if a.get("password"):
            user = a.get("username")
            hello.append(("AUTH", user, a["password"]) if user else ("AUTH", a["password"]))
        if a.get("db"):
            hello.append(("SELECT", int(a["db"])))
        if not hello:
            return
        for reply in await self._write(hello):  # never behind a WAIT
            if isinstance(reply, Exception):
                self._fail(rexc.ConnectionError(f"redis handshake failed: {reply}"))
                raise reply

    def _lost(self, protocol: _Protocol, exc: Exception | None) -> None:
        if protocol is self._protocol:
            self._protocol = None
            self._fail(rexc.ConnectionError(f"redis connection lost: {exc or 'closed'}"))

    def _fail(self, exc: Exception) -> None:
        """Fail every batch in flight and drop the connection (its stream is unknown)."""
        protocol, self._protocol = self._protocol, None
        pending, self._in_flight = self._in_flight, deque()
        for batch in pending:
            if not batch.future.done():
                batch.future.set_exception(exc)
        if protocol is not None and protocol.transport is not None:
            protocol.transport.abort()

    # -- time-out -------------------------------------------------------------

    def _arm(self) -> None:
        if self._watchdog is None and self._in_flight:
            loop = asyncio.get_running_loop()
            self._watchdog = loop.call_later(self.timeout / 4, self._check)

    def _check(self) -> None:
        """Redis has not answered the oldest batch within the socket time-out:
        the connection is dropped, as redis-py does on a read time-out."""
        self._watchdog = None
        if self._in_flight and time.monotonic() - self._in_flight[0].sent_at > self.timeout:
            self._fail(rexc.TimeoutError("redis did not answer in time"))
        self._arm()


def _settle(
    jobs: list[tuple[list[tuple[Any, ...]], asyncio.Future[list[Any]]]], exc: BaseException
) -> None:
    for _, future in jobs:
        if not future.done():
            future.set_exception(exc)


def _ssl_context(kwargs: dict[str, Any]) -> ssl.SSLContext:
    """The TLS setup of a redis-py connection (``rediss://``, ``ssl_*`` arguments)."""
    ctx = ssl.create_default_context(cafile=kwargs.get("ssl_ca_certs"))
    if kwargs.get("ssl_certfile"):
        ctx.load_cert_chain(kwargs["ssl_certfile"], kwargs.get("ssl_keyfile"))
    reqs = kwargs.get("ssl_cert_reqs", "required")
    ctx.check_hostname = bool(kwargs.get("ssl_check_hostname", True)) and reqs != "none"
    if reqs in ("none", ssl.CERT_NONE):
        ctx.verify_mode = ssl.CERT_NONE
    return ctx
