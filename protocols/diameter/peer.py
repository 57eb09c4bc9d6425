"""Peer state machine of one accepted connection (RFC 6733 §5.6, responder side; RFC 3539).

Sans-IO: decoded messages, timer expiries, a shutdown request and the loss of
the connection go in as events; actions (send these bytes, close, hand this
request to the application, this answer to the push sender) come out. Every
(state, event) pair is one row of ``_TABLE``, timers and shutdown included:

    state     event                         action                              next
    WAIT_CER  CER acceptable, admitted      CEA 2001, Opened, StateIdSeen       OPEN
    WAIT_CER  CER refused / malformed       CEA 5010/3010/5012... then Close    CLOSED
    WAIT_CER  DWR DWA DPR DPA REQUEST ANSWER  Close unanswered ("X before CER")  CLOSED
    WAIT_CER  TIMER (CER timeout)           Close                               CLOSED
    WAIT_CER  SHUTDOWN                      Close                               CLOSED
    OPEN      CER                           CEA 5012 "already open"             OPEN
    OPEN      DWR                           DWA, StateIdSeen                    OPEN
    OPEN      DWA, DPA (stray)              nothing (never answer an answer)    OPEN
    OPEN      DPR                           DPA                                 CLOSING
    OPEN      REQUEST                       Dispatch (or its error answer)      OPEN
    OPEN      ANSWER                        AnswerIn                            OPEN
    OPEN      TIMER (watchdog)              DWR, nothing, or Close              OPEN/CLOSED
    OPEN      SHUTDOWN                      DPR REBOOTING                       CLOSING
    CLOSING   CER                           nothing                             CLOSING
    CLOSING   DWR                           DWA, StateIdSeen                    CLOSING
    CLOSING   DWA                           nothing                             CLOSING
    CLOSING   DPR                           DPA                                 CLOSING
    CLOSING   DPA                           Close after draining                CLOSED
    CLOSING   REQUEST / ANSWER              Dispatch / AnswerIn (drain)         CLOSING
    CLOSING   TIMER (closing timeout)       Close                               CLOSED
    CLOSING   SHUTDOWN                      nothing                             CLOSING
    any       LOST (connection gone)        nothing                             CLOSED
    CLOSED    anything else                 nothing                             CLOSED

Every message received is first reported to the watchdog (RFC 3539: any
message proves the peer alive), in every state it runs in.

standards §1.3 (CER/CEA, 5010, 3010, first message not CER), §1.4 (DWR/DWA,
Tw), §1.5 (DPR/DPA), §1.7 (Origin-State-Id).
"""

from __future__ import annotations

import enum
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from diameter.message.avp import Avp

from protocols.diameter import answers
from protocols.diameter import avps as A
from protocols.diameter.capabilities import AllowedPeer, PeerInfo, negotiate
from protocols.diameter.codec import Decoded
from protocols.diameter.constants import (
    APP_COMMON,
    AvpCode,
    Command,
    DisconnectCause,
    ResultCode,
)
from protocols.diameter.ids import IdGenerator
from protocols.diameter.local import LocalNode
from protocols.diameter.watchdog import TW_DEFAULT, Expiry, Watchdog


class PeerState(enum.Enum):
    WAIT_CER = "wait_cer"  # RFC 6733 Closed, connection accepted, no CER yet
    OPEN = "open"  # R-Open
    CLOSING = "closing"
    CLOSED = "closed"


class Event(enum.Enum):
    CER = "cer"
    DWR = "dwr"
    DWA = "dwa"
    DPR = "dpr"
    DPA = "dpa"
    REQUEST = "request"  # application request (CCR) or an unsupported one
    ANSWER = "answer"  # answer to one of our requests (RAA, ASA, ...)
    TIMER = "timer"  # the machine's deadline passed (CER, watchdog, closing)
    SHUTDOWN = "shutdown"  # our side is stopping
    LOST = "lost"  # the connection is gone


@dataclass(frozen=True, slots=True)
class Send:
    data: bytes


@dataclass(frozen=True, slots=True)
class Close:
    reason: str
    drain: bool = False  # finish in-flight requests first


@dataclass(frozen=True, slots=True)
class Dispatch:
    """A well-formed application request for the application layer."""

    message: Decoded


@dataclass(frozen=True, slots=True)
class AnswerIn:
    message: Decoded


@dataclass(frozen=True, slots=True)
class Opened:
    peer: PeerInfo


@dataclass(frozen=True, slots=True)
class StateIdSeen:
    """The peer's Origin-State-Id (CER, DWR): a higher value means it restarted."""

    origin_host: str
    value: int


Action = Send | Close | Dispatch | AnswerIn | Opened | StateIdSeen


@dataclass(frozen=True, slots=True)
class PeerPolicy:
    tw: float = TW_DEFAULT
    cer_timeout: float = 10.0
    closing_timeout: float = 5.0
    allowed: tuple[AllowedPeer, ...] = ()


_BASE_EVENTS: dict[tuple[int, bool], Event] = {
    (Command.CAPABILITIES_EXCHANGE, True): Event.CER,
    (Command.DEVICE_WATCHDOG, True): Event.DWR,
    (Command.DEVICE_WATCHDOG, False): Event.DWA,
    (Command.DISCONNECT_PEER, True): Event.DPR,
    (Command.DISCONNECT_PEER, False): Event.DPA,
}


def classify(msg: Decoded) -> Event:
    h = msg.header
    if h.application_id == APP_COMMON:
        event = _BASE_EVENTS.get((h.command_code, h.is_request))
        if event is not None:
            return event
    return Event.REQUEST if h.is_request else Event.ANSWER


@dataclass(slots=True)
class PeerMachine:
    local: LocalNode
    policy: PeerPolicy
    address: str
    now: float
    rng: random.Random = field(default_factory=random.Random)
    state: PeerState = PeerState.WAIT_CER
    peer: PeerInfo | None = None
    watchdog: Watchdog | None = None
    ids: IdGenerator = field(default_factory=IdGenerator)
    # Asked once the CER is acceptable: a Result-Code refuses the peer (e.g. a second
    # connection from a peer that is already open, standards §1.3).
    admit: Callable[[PeerInfo], ResultCode | None] | None = None
    _deadline: float = 0.0

    def __post_init__(self) -> None:
        self._deadline = self.now + self.policy.cer_timeout

    # -- inputs ---------------------------------------------------------------

    def receive(self, msg: Decoded, now: float) -> list[Action]:
        if self.watchdog is not None:
            self.watchdog.received(now)
        event = classify(msg)
        return _TABLE[(self.state, event)](self, msg, now)

    def accepts_request(self, now: float) -> bool:
        """The REQUEST row's decision for a request already known well-formed (the fast
        path's CCR), without building its action list: True where that row dispatches
        (derived from ``_TABLE``), the watchdog told as :meth:`receive` tells it."""
        state = self.state
        if state is PeerState.OPEN or state is PeerState.CLOSING:  # = _DISPATCHING
            if self.watchdog is not None:
                self.watchdog.received(now)
            return True
        return False

    def timer(self, now: float) -> list[Action]:
        return _TABLE[(self.state, Event.TIMER)](self, None, now)

    def shutdown(
        self, now: float, cause: DisconnectCause = DisconnectCause.REBOOTING
    ) -> list[Action]:
        """Our side is stopping: DPR (standards §1.5), then wait for the DPA."""
        return _TABLE[(self.state, Event.SHUTDOWN)](self, cause, now)

    def connection_lost(self, now: float = 0.0) -> list[Action]:
        return _TABLE[(self.state, Event.LOST)](self, None, now)

    def deadline(self) -> float | None:
        if self.state is PeerState.OPEN and self.watchdog is not None:
            return self.watchdog.deadline
        if self.state in (PeerState.WAIT_CER, PeerState.CLOSING):
            return self._deadline
        return None

    def new_request(self, command: int, application_id: int, avps: list[Avp]) -> tuple[int, bytes]:
        """Encode a request of ours on this connection; returns (hop-by-hop, bytes)."""
        hbh, e2e = self.ids.next()
        proxyable = application_id != APP_COMMON  # base commands never carry P
        return hbh, answers.request(command, application_id, hbh, e2e, avps, proxyable=proxyable)

    # -- transitions ----------------------------------------------------------

    def _on_cer(self, msg: Decoded, now: float) -> list[Action]:
        if msg.problem is not None:
            return [
                Send(answers.error_answer(msg, self.local, msg.problem)),
                *self._close("bad CER"),
            ]
        decision = negotiate(msg, self.local, self.address, self.policy.allowed)
        refused = self.admit(decision.peer) if decision.accepted and self.admit else None
        if refused is not None:
            cea = answers.cea(msg, self.local, refused, error_message="peer already connected")
            return [Send(cea), *self._close(f"CER refused with {int(refused)}")]
        cea = answers.cea(msg, self.local, decision.result_code, error_bit=decision.error_bit)
        if not decision.accepted:
            return [Send(cea), *self._close(f"CER refused with {int(decision.result_code)}")]
        self.peer = decision.peer
        self.state = PeerState.OPEN
        self.watchdog = Watchdog.start(self.policy.tw, now, self.rng)
        out: list[Action] = [Send(cea), Opened(decision.peer)]
        return out + self._state_id(msg)

    def _on_dwr(self, msg: Decoded, now: float) -> list[Action]:
        if msg.problem is not None:
            return [Send(answers.error_answer(msg, self.local, msg.problem))]
        return [Send(answers.dwa(msg, self.local)), *self._state_id(msg)]

    def _on_dpr(self, msg: Decoded, now: float) -> list[Action]:
        if msg.problem is not None:
            return [Send(answers.error_answer(msg, self.local, msg.problem))]
        # The DPA sender waits in Closing for the peer to close (standards §1.5).
        self.state = PeerState.CLOSING
        self._deadline = now + self.policy.closing_timeout
        return [Send(answers.dpa(msg, self.local))]

    def _on_dpa(self, msg: Decoded, now: float) -> list[Action]:
        return self._close("DPA received", drain=True)

    def _on_request(self, msg: Decoded, now: float) -> list[Action]:
        if msg.problem is not None:
            return [Send(answers.error_answer(msg, self.local, msg.problem))]
        return [Dispatch(msg)]

    def _on_answer(self, msg: Decoded, now: float) -> list[Action]:
        return [AnswerIn(msg)]

    def _ignore(self, msg: Decoded | None, now: float) -> list[Action]:
        return []

    def _on_cer_when_open(self, msg: Decoded, now: float) -> list[Action]:
        return [
            Send(
                answers.cea(
                    msg, self.local, ResultCode.UNABLE_TO_COMPLY, error_message="already open"
                )
            )
        ]

    def _before_cer(self, msg: Decoded, now: float) -> list[Action]:
        # The first message must be a CER: close without answering (standards §1.3).
        return self._close(f"{classify(msg).value} before CER")

    def _on_watchdog(self, _: None, now: float) -> list[Action]:
        if self.watchdog is None:
            return []
        outcome = self.watchdog.expired(now)
        if outcome is Expiry.SEND_DWR:
            return [Send(self._request(Command.DEVICE_WATCHDOG, []))]
        if outcome is Expiry.CLOSE:
            return self._close("watchdog: two Tw expiries without an answer")
        return []

    def _cer_timeout(self, _: None, now: float) -> list[Action]:
        return self._close("no CER in time") if now >= self._deadline else []

    def _closing_timeout(self, _: None, now: float) -> list[Action]:
        return self._close("closing timed out") if now >= self._deadline else []

    def _send_dpr(self, cause: DisconnectCause, now: float) -> list[Action]:
        self.state = PeerState.CLOSING
        self._deadline = now + self.policy.closing_timeout
        avp = A.new(AvpCode.DISCONNECT_CAUSE, int(cause))
        return [Send(self._request(Command.DISCONNECT_PEER, [avp]))]

    def _shut_before_cer(self, _: DisconnectCause, now: float) -> list[Action]:
        return self._close("shutting down")

    def _lost(self, _: Decoded | None, now: float) -> list[Action]:
        self.state = PeerState.CLOSED
        self.watchdog = None
        return []

    # -- helpers --------------------------------------------------------------

    def _close(self, reason: str, drain: bool = False) -> list[Action]:
        self.state = PeerState.CLOSED
        self.watchdog = None
        return [Close(reason, drain)]

    def _state_id(self, msg: Decoded) -> list[Action]:
        value = A.get_int(msg.avps, AvpCode.ORIGIN_STATE_ID)
        if not value or self.peer is None:
            return []  # 0 or absent allows no inference (standards §1.7)
        return [StateIdSeen(self.peer.origin_host, value)]

    def _request(self, command: int, extra: list[Avp]) -> bytes:
        body = [*A.identity_avps(self.local.origin_host, self.local.origin_realm)]
        if command == Command.DEVICE_WATCHDOG:
            body.append(A.new(AvpCode.ORIGIN_STATE_ID, self.local.origin_state_id))
        return self.new_request(command, APP_COMMON, [*body, *extra])[1]


_Handler = Callable[[PeerMachine, Any, float], list[Action]]
S, E, M = PeerState, Event, PeerMachine
_MESSAGES = (E.CER, E.DWR, E.DWA, E.DPR, E.DPA, E.REQUEST, E.ANSWER)
_TABLE: dict[tuple[PeerState, Event], _Handler] = {
    **{(S.WAIT_CER, e): M._before_cer for e in _MESSAGES},
    (S.WAIT_CER, E.CER): M._on_cer,
    (S.WAIT_CER, E.TIMER): M._cer_timeout,
    (S.WAIT_CER, E.SHUTDOWN): M._shut_before_cer,
    (S.WAIT_CER, E.LOST): M._lost,
    (S.OPEN, E.CER): M._on_cer_when_open,
    (S.OPEN, E.DWR): M._on_dwr,
    (S.OPEN, E.DWA): M._ignore,  # the watchdog already saw the reception
    (S.OPEN, E.DPR): M._on_dpr,
    (S.OPEN, E.DPA): M._ignore,  # a stray DPA: never answer an answer
    (S.OPEN, E.REQUEST): M._on_request,
    (S.OPEN, E.ANSWER): M._on_answer,
    (S.OPEN, E.TIMER): M._on_watchdog,
    (S.OPEN, E.SHUTDOWN): M._send_dpr,
    (S.OPEN, E.LOST): M._lost,
    (S.CLOSING, E.CER): M._ignore,
    (S.CLOSING, E.DWR): M._on_dwr,
    (S.CLOSING, E.DWA): M._ignore,
    (S.CLOSING, E.DPR): M._on_dpr,
    (S.CLOSING, E.DPA): M._on_dpa,
    (S.CLOSING, E.REQUEST): M._on_request,  # drain: in-flight peers still ask
    (S.CLOSING, E.ANSWER): M._on_answer,
    (S.CLOSING, E.TIMER): M._closing_timeout,
    (S.CLOSING, E.SHUTDOWN): M._ignore,
    (S.CLOSING, E.LOST): M._lost,
    **{(S.CLOSED, e): M._ignore for e in Event},
    (S.CLOSED, E.LOST): M._lost,
}
# Where a well-formed request is dispatched: PeerMachine.accepts_request tests these two
# by identity (an Enum's hash is a Python call, once per request on the hot path).
_DISPATCHING = frozenset(s for (s, e), row in _TABLE.items() if row is M._on_request)
if {PeerState.OPEN, PeerState.CLOSING} != _DISPATCHING:
    raise RuntimeError(f"accepts_request disagrees with the table: {_DISPATCHING}")
