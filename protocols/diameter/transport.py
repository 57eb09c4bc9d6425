"""asyncio transport of one Diameter connection: moves bytes and owns timers, nothing more.

Bytes go to the sans-IO :class:`~protocols.diameter.framing.Framer`; each
message is read once, by the fast path when the application takes it as read
(:meth:`Owner.fast_request`), else by the guarded decoder, and goes to the
:class:`~protocols.diameter.peer.PeerMachine`, whose actions are carried out
here. Application requests pass the sans-IO
:class:`~protocols.diameter.traffic.Traffic` (duplicates, in-flight bounds,
3004 / 5012 answers) and run as tasks, many in flight per connection, answered
as they complete; everything written during one loop pass leaves in one
``write`` (coalesced by a ``call_soon`` flush). One timer handle follows the
machine's next deadline. What the connection needs from the node that
accepted it is the :class:`Owner` protocol.
"""

from __future__ import annotations

import asyncio
import contextvars
import dataclasses
import time
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any, Protocol, cast

import structlog
from diameter.message.avp import Avp

from protocols.diameter import answers
from protocols.diameter.capabilities import PeerInfo
from protocols.diameter.codec import Decoded, decode, result_code_of
from protocols.diameter.constants import FLAG_REQUEST, Command, ResultCode
from protocols.diameter.duplicates import Key
from protocols.diameter.fastpath import FastCcr, Request
from protocols.diameter.framing import Framer
from protocols.diameter.ids import IdGenerator
from protocols.diameter.local import LocalNode
from protocols.diameter.message import Limits
from protocols.diameter.metrics import metrics
from protocols.diameter.peer import (
    Action,
    AnswerIn,
    Close,
    Dispatch,
    Opened,
    PeerMachine,
    PeerPolicy,
    PeerState,
    Send,
    StateIdSeen,
)
from protocols.diameter.traffic import Load, Traffic

log = structlog.get_logger("ocs.diameter")

CCR = int(Command.CREDIT_CONTROL)
# Answers queued in one loop pass past which we stop reading this peer until they are
# written: libuv reads up to 32 chunks of 256 KB in one pass before our flush runs, and
# the transport's own high-water mark (pause_writing) only sees what was written.
OUT_PAUSE = 64 << 10


@dataclass(frozen=True, slots=True)
class Wiring:
    """What every connection of a node is built with."""

    local: LocalNode
    policy: PeerPolicy
    limits: Limits
    max_message_size: int
    advertise_addresses: bool  # Host-IP-Address configured, else the connection's own
    fast_path: bool
    drain_timeout: float
    ids: IdGenerator  # End-to-End ids unique across the node's connections
    traffic: Traffic[Connection]


class Owner(Protocol):
    """What a connection asks of the node that accepted it."""

    def fast_request(self, raw: bytes) -> FastCcr | None:
        """The fast path's CCR when the application serves it as read, else None."""

    def serve(self, request: Request, peer: PeerInfo) -> Coroutine[Any, Any, bytes]:
        """The application's answer to one well-formed request."""

    def spawn(self, coro: Coroutine[Any, Any, None], context: contextvars.Context) -> object:
        """Run a request's task (the node waits for them on stop)."""

    def admit(self, conn: Connection, peer: PeerInfo) -> ResultCode | None:
        """None to accept an acceptable CER, or the Result-Code that refuses it."""

    def connection_made(self, conn: Connection) -> bool:
        """False: the node takes no more connections (this one is closed at once)."""

    def connection_lost(self, conn: Connection) -> None: ...

    def peer_opened(self, conn: Connection, peer: PeerInfo) -> None: ...

    def state_id_seen(self, origin_host: str, value: int) -> None: ...


class Connection(asyncio.Protocol):
    def __init__(self, owner: Owner, wiring: Wiring) -> None:
        self.owner = owner
        self.wiring = wiring
        self.traffic = wiring.traffic
        self.loop = asyncio.get_running_loop()
        self.framer = Framer(wiring.max_message_size)
        self.transport: asyncio.Transport | None = None
        self.machine: PeerMachine | None = None
        self.load = Load()  # what this peer's requests make us hold
        self.pending: dict[int, asyncio.Future[Decoded]] = {}
        self.closed = asyncio.Event()
        self._out: list[bytes] = []
        self._out_bytes = 0
        self._flush_scheduled = False
        self._paused_for_output = False  # we stopped reading: answers queued this pass
        self._writing_paused = False  # the transport stopped us: the peer does not read
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._closing = False
        self._close_when_idle = False
        self._context: contextvars.Context | None = None
        self._context_peer = ""
        self._counts = metrics().counts

    # -- asyncio.Protocol -----------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's TCPTransport is not an asyncio.Transport subclass, only alike.
        self.transport = cast(asyncio.Transport, transport)
        peer = transport.get_extra_info("peername") or ("?", 0)
        wiring = self.wiring
        local = wiring.local
        if not wiring.advertise_addresses:
            # Host-IP-Address is the address this connection really uses (RFC 6733 §5.3.5).
            here = transport.get_extra_info("sockname") or ("127.0.0.1", 0)
            local = dataclasses.replace(local, host_ip_addresses=(str(here[0]),))
        self.machine = PeerMachine(local, wiring.policy, str(peer[0]), self.loop.time())
        self.machine.admit = lambda info: self.owner.admit(self, info)
        self.machine.ids = wiring.ids
        if not self.owner.connection_made(self):
            # Past limits.max_connections: closed before any read (counted by the node;
            # debug only, so a flood of connections cannot flood the log too).
            self._closing = True
            log.debug("diameter_connection_refused", address=str(peer[0]))
            self.transport.close()
            return
        self._rearm()

    def data_received(self, data: bytes) -> None:
        for raw in self.framer.feed(data):
            if self._closing:
                return
            self._receive(raw)
        error = self.framer.error
        if error is not None and not self._closing:
            open_ = self.machine is not None and self.machine.state is not PeerState.WAIT_CER
            if error.answerable and open_:
                self.send(answers.framing_error_answer(error.header, self.wiring.local))
            self.close(f"framing: {error.reason}")

    def pause_writing(self) -> None:
        # The peer does not read its answers: stop reading its requests until it does,
        # rather than buffering answers without bound.
        self._writing_paused = True
        if self.transport is not None:
            self.transport.pause_reading()

    def resume_writing(self) -> None:
        self._writing_paused = False
        self.traffic.written(self.load)  # the write buffer drained: the answers have left
        if not self._paused_for_output:
            self._resume_reading()

    def _resume_reading(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.resume_reading()

    def eof_received(self) -> bool | None:
        return None  # close our side too; a partial header is simply dropped

    def connection_lost(self, exc: Exception | None) -> None:
        if self.machine is not None:
            self._apply(self.machine.connection_lost(self.loop.time()))
        if self._timer is not None:
            self._timer.cancel()
        for fut in self.pending.values():
            if not fut.done():
                fut.set_exception(ConnectionError("connection closed"))
        self.pending.clear()
        self.traffic.written(self.load)
        self.closed.set()
        self.owner.connection_lost(self)

    # -- inputs to the machine ------------------------------------------------

    def _receive(self, raw: bytes) -> None:
        """Read a message once: the fast path's CCR if the application takes it as read,
        else the reference decoding; the machine decides what happens to it."""
        machine = self.machine
        assert machine is not None
        now = self.loop.time()
        fast = self.owner.fast_request(raw) if self.wiring.fast_path else None
        if fast is not None:
            self._counts.request(CCR)
            if machine.accepts_request(now):
                self._dispatch(fast)  # the machine's Dispatch row, without its action list
                return
            msg = decode(raw, self.wiring.limits)  # before CER, or closed: the machine's
        else:
            msg = decode(raw, self.wiring.limits)
            if msg.header.is_request:
                self._counts.request(msg.header.command_code)
        self._apply(machine.receive(msg, now))
        self._rearm()

    def _on_timer(self) -> None:
        self._timer, self._timer_at = None, None
        if self.machine is not None:
            self._apply(self.machine.timer(self.loop.time()))
            self._rearm()

    def shutdown(self) -> None:
        """Send DPR (REBOOTING) and let the machine take it from there."""
        if self.machine is not None and not self._closing:
            self._apply(self.machine.shutdown(self.loop.time()))
            self._rearm()

    def _rearm(self) -> None:
        deadline = None if self.machine is None or self._closing else self.machine.deadline()
        if deadline == self._timer_at:
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._timer_at = deadline
        if deadline is not None:
            self._timer = self.loop.call_at(deadline, self._on_timer)

    def _apply(self, actions: list[Action]) -> None:
        for action in actions:
            if isinstance(action, Send):
                self.send(action.data)
            elif isinstance(action, Dispatch):
                self._dispatch(action.message)
            elif isinstance(action, AnswerIn):
                self._answer_in(action.message)
            elif isinstance(action, Opened):
                self.owner.peer_opened(self, action.peer)
            elif isinstance(action, StateIdSeen):
                self.owner.state_id_seen(action.origin_host, action.value)
            elif isinstance(action, Close):
                self.close(action.reason, action.drain)

    # -- application requests -------------------------------------------------

    def _dispatch(self, request: Request) -> None:
        peer = self.peer
        assert peer is not None
        started = self.loop.time()
        begun = self.traffic.begin(self.load, peer.origin_host, request, self, time.monotonic())
        if isinstance(begun, list):
            for conn, answer in begun:
                conn.send(answer)  # a repeat's answer, or 3004 and the repeats it releases
            return
        # Every event of the request names its peer: the task runs in a copy of this
        # connection's context, where the peer is bound once.
        context = self._request_context(peer.origin_host)
        self.owner.spawn(self._serve(request, begun, started, peer), context)

    def _request_context(self, peer: str) -> contextvars.Context:
        if self._context is None or self._context_peer != peer:
            self._context = contextvars.copy_context()
            self._context.run(structlog.contextvars.bind_contextvars, peer=peer)
            self._context_peer = peer
        return self._context.copy()

    async def _serve(self, request: Request, key: Key, started: float, peer: PeerInfo) -> None:
        traffic = self.traffic
        try:
            answer = await self.owner.serve(request, peer)
        except Exception:
            log.exception("diameter_request_crashed", command=request.header.command_code)
            answer = traffic.crashed(request)
        finally:
            traffic.finished(self.load, len(request.raw))  # held until the answer has left
        copies = traffic.answered(key, answer, time.monotonic())
        self._counts.seconds(request.header.command_code).observe(self.loop.time() - started)
        self.send(answer)
        if not self._flush_scheduled:
            self._flush()  # nothing queued (the connection is closing): release the octets
        for conn, copy in copies:
            conn.send(copy)  # a repeat may have come on another connection of the peer
        if self._close_when_idle and self.load.in_flight == 0:
            self._close_now()

    # -- our own requests (RAR, ASR) ------------------------------------------

    def request(
        self, command: int, application_id: int, avps: list[Avp]
    ) -> asyncio.Future[Decoded]:
        assert self.machine is not None
        hbh, data = self.machine.new_request(command, application_id, avps)
        fut: asyncio.Future[Decoded] = self.loop.create_future()
        self.pending[hbh] = fut
        self.send(data)
        return fut

    def _answer_in(self, msg: Decoded) -> None:
        fut = self.pending.pop(msg.header.hop_by_hop, None)
        if fut is None:
            metrics().discarded.labels("unknown_hop_by_hop").inc()
            return  # standards §1.2: discard silently
        if not fut.done():
            fut.set_result(msg)

    # -- output ---------------------------------------------------------------

    def send(self, data: bytes) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        if not data[4] & FLAG_REQUEST:
            command = int.from_bytes(data[5:8], "big")
            self._counts.answer(command, result_code_of(data))
        self._out.append(data)
        self._out_bytes += len(data)
        if self._out_bytes > OUT_PAUSE and not self._paused_for_output:
            self._paused_for_output = True  # until the flush: see OUT_PAUSE
            self.transport.pause_reading()
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self.loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        transport = self.transport
        if self._out and transport is not None and not transport.is_closing():
            data = self._out[0] if len(self._out) == 1 else b"".join(self._out)
            transport.write(data)  # may call pause_writing
        self._out.clear()
        self._out_bytes = 0
        if self._paused_for_output:
            self._paused_for_output = False
            if not self._writing_paused:
                self._resume_reading()
        if self.load.answered_bytes and (
            transport is None or transport.is_closing() or not transport.get_write_buffer_size()
        ):
            self.traffic.written(self.load)  # the kernel took every answer (or never will)

    def close(self, reason: str, drain: bool = False) -> None:
        if self._closing:
            return
        self._closing = True
        self._rearm()
        log.info("diameter_connection_closing", reason=reason, peer=self.peer_name)
        if drain and self.load.in_flight:
            self._close_when_idle = True
            self.loop.call_later(self.wiring.drain_timeout, self._close_now)
        else:
            self._close_now()

    def _close_now(self) -> None:
        self._flush()
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    @property
    def in_flight(self) -> int:
        """Requests of this connection being served."""
        return self.load.in_flight

    @property
    def write_buffer_size(self) -> int:
        """Octets written but not yet taken by the kernel (a peer that does not read)."""
        transport = self.transport
        return (
            0 if transport is None or transport.is_closing() else transport.get_write_buffer_size()
        )

    @property
    def peer(self) -> PeerInfo | None:
        """Who the peer said it is in its CER (None before)."""
        return self.machine.peer if self.machine is not None else None

    @property
    def open_peer(self) -> str | None:
        """The Origin-Host of the peer when this connection is Open, else None."""
        m = self.machine
        if m is None or m.peer is None or m.state is not PeerState.OPEN:
            return None
        return m.peer.origin_host

    @property
    def peer_name(self) -> str:
        if self.machine is not None and self.machine.peer is not None:
            return self.machine.peer.origin_host
        return self.machine.address if self.machine is not None else "?"
