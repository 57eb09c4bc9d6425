"""asyncio transport of one Diameter connection: moves bytes and owns timers, nothing more.

Bytes go to the sans-IO :class:`~protocols.diameter.framing.Framer`, each
message to the guarded decoder and the :class:`~protocols.diameter.peer.PeerMachine`;
the actions it returns are carried out here. Application requests run as
tasks, many in flight per connection, answered as they complete; everything
written during one loop pass leaves in one ``write`` (coalesced by a
``call_soon`` flush). One timer handle follows the machine's next deadline.
"""

from __future__ import annotations

import asyncio
import contextvars
import dataclasses
import time
from typing import TYPE_CHECKING, cast

import structlog
from diameter.message.avp import Avp

from protocols.diameter import answers
from protocols.diameter.codec import Decoded, Problem, decode, result_code_of
from protocols.diameter.constants import FLAG_ERROR, FLAG_REQUEST, Command, ResultCode
from protocols.diameter.duplicates import COLLISION, MISS, Hit, Key, request_key
from protocols.diameter.fastpath import expand, fast_decode
from protocols.diameter.framing import Framer
from protocols.diameter.metrics import metrics
from protocols.diameter.peer import (
    Action,
    AnswerIn,
    Close,
    Dispatch,
    Opened,
    PeerMachine,
    PeerState,
    Send,
    StateIdSeen,
)

if TYPE_CHECKING:
    from protocols.diameter.server import DiameterNode

log = structlog.get_logger("ocs.diameter")

CCR = int(Command.CREDIT_CONTROL)
# Answers queued in one loop pass past which we stop reading this peer until they are
# written: libuv reads up to 32 chunks of 256 KB in one pass before our flush runs, and
# the transport's own high-water mark (pause_writing) only sees what was written.
OUT_PAUSE = 64 << 10


class Connection(asyncio.Protocol):
    def __init__(self, node: DiameterNode) -> None:
        self.node = node
        self.loop = asyncio.get_running_loop()
        self.framer = Framer(node.settings.max_message_size)
        self.transport: asyncio.Transport | None = None
        self.machine: PeerMachine | None = None
        self.in_flight = 0
        # Octets of the requests being served on this connection, and of those answered
        # whose answers may still wait in our write buffer (a peer that does not read):
        # both are memory this peer makes us hold (issue 13 item 5).
        self.in_flight_bytes = 0
        self._answered_bytes = 0  # the second part: released once the buffer drained
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
        local = self.node.local
        if not self.node.settings.advertise_addresses:
            # Host-IP-Address is the address this connection really uses (RFC 6733 §5.3.5).
            here = transport.get_extra_info("sockname") or ("127.0.0.1", 0)
            local = dataclasses.replace(local, host_ip_addresses=(str(here[0]),))
        self.machine = PeerMachine(local, self.node.settings.policy, str(peer[0]), self.loop.time())
        self.machine.admit = lambda info: self.node.admit(self, info)
        self.machine.ids = self.node.ids  # End-to-End ids unique across our connections
        self.node.connection_made(self)
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
                self.send(answers.framing_error_answer(error.header, self.node.local))
            self.close(f"framing: {error.reason}")

    def pause_writing(self) -> None:
        # The peer does not read its answers: stop reading its requests until it does,
        # rather than buffering answers without bound.
        self._writing_paused = True
        if self.transport is not None:
            self.transport.pause_reading()

    def resume_writing(self) -> None:
        self._writing_paused = False
        self._release_answered()  # the write buffer drained: the answers have left
        if not self._paused_for_output:
            self._resume_reading()

    def _resume_reading(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.resume_reading()

    def eof_received(self) -> bool | None:
        return None  # close our side too; a partial header is simply dropped

    def connection_lost(self, exc: Exception | None) -> None:
        if self.machine is not None:
            self.machine.connection_lost()
        if self._timer is not None:
            self._timer.cancel()
        for fut in self.pending.values():
            if not fut.done():
                fut.set_exception(ConnectionError("connection closed"))
        self.pending.clear()
        self._release_answered()
        self.closed.set()
        self.node.connection_lost(self)

    # -- inputs to the machine ------------------------------------------------

    def _receive(self, raw: bytes) -> None:
        machine = self.machine
        assert machine is not None
        settings = self.node.settings
        fast = fast_decode(raw, settings.limits) if settings.fast_path else None
        if fast is not None:
            self._counts.request(CCR)
            if machine.request_in(self.loop.time()):
                self._dispatch(fast)  # the machine's Dispatch, without the action list
                return
        msg = fast or decode(raw, settings.limits)
        if fast is None and msg.header.is_request:
            self._counts.request(msg.header.command_code)
        self._apply(machine.receive(msg, self.loop.time()))
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
                self.node.peer_opened(self, action.peer)
            elif isinstance(action, StateIdSeen):
                self.node.state_id_seen(action.origin_host, action.value)
            elif isinstance(action, Close):
                self.close(action.reason, action.drain)

    # -- application requests -------------------------------------------------

    def _dispatch(self, msg: Decoded) -> None:
        assert self.machine is not None
        assert self.machine.peer is not None
        key = request_key(self.machine.peer.origin_host, msg)
        lookup = self.node.duplicates.begin(key, msg.header.hop_by_hop, time.monotonic(), self)
        if lookup is not MISS:
            if lookup is COLLISION:
                # Same End-to-End id, another request (RFC 6733 §3 random low bits): new.
                metrics().collisions.inc()
                log.debug("diameter_end_to_end_collision", end_to_end=key[1], session=key[3])
            elif isinstance(lookup, Hit):
                self.send(lookup.answer)
                return
            else:
                return  # the original is in flight: this repeat is answered with it
        node = self.node
        size = len(msg.raw)
        if self._busy(size):
            busy = answers.error_answer(expand(msg), node.local, Problem(ResultCode.TOO_BUSY))
            self.send(busy)
            for conn, copy in node.duplicates.release(key, busy):
                conn.send(copy)
            return
        self.in_flight += 1
        self.in_flight_bytes += size
        node.in_flight_bytes += size
        self._counts.in_flight += 1
        # Every event of the request names its peer: the task runs in a copy of this
        # connection's context, where the peer is bound once.
        self.node.spawn(self._serve(msg, key, self.loop.time()), self._request_context(key[0]))

    def _busy(self, size: int) -> bool:
        """Past a bound of what requests in flight may hold: count or octets of this
        connection, octets of the process (issue 13 item 5)."""
        settings = self.node.settings
        return (
            self.in_flight >= settings.max_in_flight
            or self.in_flight_bytes + size > settings.max_in_flight_bytes
            or self.node.in_flight_bytes + size > settings.max_in_flight_bytes_total
        )

    def _request_context(self, peer: str) -> contextvars.Context:
        if self._context is None or self._context_peer != peer:
            self._context = contextvars.copy_context()
            self._context.run(structlog.contextvars.bind_contextvars, peer=peer)
            self._context_peer = peer
        return self._context.copy()

    async def _serve(self, msg: Decoded, key: Key, started: float) -> None:
        assert self.machine is not None
        assert self.machine.peer is not None
        try:
            answer = await self.node.app.handle(msg, self.machine.peer)
        except Exception:
            log.exception("diameter_request_crashed", command=msg.header.command_code)
            answer = answers.error_answer(
                expand(msg), self.node.local, Problem(ResultCode.UNABLE_TO_COMPLY)
            )
        finally:
            self.in_flight -= 1
            self._answered_bytes += len(msg.raw)  # held until the answer has left
            self._counts.in_flight -= 1
        cacheable = not answer[4] & FLAG_ERROR  # a 3004 must not be replayed to a retry
        cache = self.node.duplicates
        copies = (
            cache.complete(key, answer, time.monotonic())
            if cacheable
            else cache.release(key, answer)
        )
        self._counts.seconds(msg.header.command_code).observe(self.loop.time() - started)
        self.send(answer)
        if not self._flush_scheduled:
            self._flush()  # nothing queued (the connection is closing): release the octets
        for conn, copy in copies:
            conn.send(copy)  # a repeat may have come on another connection of the peer
        if self._close_when_idle and self.in_flight == 0:
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
        if self._answered_bytes and (
            transport is None or transport.is_closing() or not transport.get_write_buffer_size()
        ):
            self._release_answered()  # the kernel took every answer (or they never will leave)

    def _release_answered(self) -> None:
        held = self._answered_bytes
        if held:
            self._answered_bytes = 0
            self.in_flight_bytes -= held
            self.node.in_flight_bytes -= held

    def close(self, reason: str, drain: bool = False) -> None:
        if self._closing:
            return
        self._closing = True
        self._rearm()
        log.info("diameter_connection_closing", reason=reason, peer=self.peer_name)
        if drain and self.in_flight:
            self._close_when_idle = True
            self.loop.call_later(self.node.settings.drain_timeout, self._close_now)
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
    def write_buffer_size(self) -> int:
        """Octets written but not yet taken by the kernel (a peer that does not read)."""
        transport = self.transport
        return (
            0 if transport is None or transport.is_closing() else transport.get_write_buffer_size()
        )

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
