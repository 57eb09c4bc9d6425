"""Peer state machine of one accepted connection (RFC 6733 §5.6, responder side; RFC 3539).

Sans-IO: decoded messages, timer expiries and a shutdown request go in;
actions (send these bytes, close, hand this request to the application, this
answer to the push sender) come out. Every transition is one row of
``_TABLE``; anything not in it falls to :meth:`PeerMachine._unexpected`.

    WAIT_CER --CER ok--> OPEN --DPR in--> CLOSING --(peer closes | timeout)--> CLOSED
    WAIT_CER --non-CER / CER refused / timeout--> CLOSED
    OPEN --shutdown: DPR out--> CLOSING --DPA in--> CLOSED (after draining)
    OPEN --watchdog: two Tw expiries unanswered--> CLOSED

standards §1.3 (CER/CEA, 5010, 3010, first message not CER), §1.4 (DWR/DWA,
Tw), §1.5 (DPR/DPA), §1.7 (Origin-State-Id).
"""

from __future__ import annotations

import enum
import random
from collections.abc import Callable
from dataclasses import dataclass, field

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
        if self.state is PeerState.CLOSED:
            return []
        if self.watchdog is not None:
            self.watchdog.received(now)
        event = classify(msg)
        handler = _TABLE.get((self.state, event))
        if handler is None:
            return self._unexpected(msg, event)
        return handler(self, msg, now)

    def request_in(self, now: float) -> bool:
        """``receive`` of a well-formed application request (the fast path's CCR), without
        the action list: True when its row is Dispatch (OPEN, CLOSING), the watchdog told;
        False when ``receive`` must decide (before CER, closed)."""
        if self.state is PeerState.OPEN or self.state is PeerState.CLOSING:
            if self.watchdog is not None:
                self.watchdog.received(now)
            return True
        return False

    def timer(self, now: float) -> list[Action]:
        if self.state is PeerState.OPEN and self.watchdog is not None:
            outcome = self.watchdog.expired(now)
            if outcome is Expiry.SEND_DWR:
                return [Send(self._request(Command.DEVICE_WATCHDOG, []))]
            if outcome is Expiry.CLOSE:
                return self._close("watchdog: two Tw expiries without an answer")
            return []
        if self.state in (PeerState.WAIT_CER, PeerState.CLOSING) and now >= self._deadline:
            why = "no CER in time" if self.state is PeerState.WAIT_CER else "closing timed out"
            return self._close(why)
        return []

    def shutdown(
        self, now: float, cause: DisconnectCause = DisconnectCause.REBOOTING
    ) -> list[Action]:
        """Our side is stopping: DPR (standards §1.5), then wait for the DPA."""
        if self.state is PeerState.OPEN:
            self.state = PeerState.CLOSING
            self._deadline = now + self.policy.closing_timeout
            dpr = self._request(
                Command.DISCONNECT_PEER, [A.new(AvpCode.DISCONNECT_CAUSE, int(cause))]
            )
            return [Send(dpr)]
        if self.state is PeerState.WAIT_CER:
            return self._close("shutting down")
        return []

    def connection_lost(self) -> None:
        self.state = PeerState.CLOSED
        self.watchdog = None

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

    def _ignore(self, msg: Decoded, now: float) -> list[Action]:
        return []

    def _on_cer_when_open(self, msg: Decoded, now: float) -> list[Action]:
        return [
            Send(
                answers.cea(
                    msg, self.local, ResultCode.UNABLE_TO_COMPLY, error_message="already open"
                )
            )
        ]

    def _unexpected(self, msg: Decoded, event: Event) -> list[Action]:
        if self.state is PeerState.WAIT_CER:
            # The first message must be a CER: close without answering (standards §1.3).
            return self._close(f"{event.value} before CER")
        return []  # e.g. a stray DPA: nothing to answer, never answer an answer

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


_Handler = Callable[[PeerMachine, Decoded, float], list[Action]]
S, E = PeerState, Event
_TABLE: dict[tuple[PeerState, Event], _Handler] = {
    (S.WAIT_CER, E.CER): PeerMachine._on_cer,
    (S.OPEN, E.CER): PeerMachine._on_cer_when_open,
    (S.OPEN, E.DWR): PeerMachine._on_dwr,
    (S.OPEN, E.DWA): PeerMachine._ignore,  # the watchdog already saw the reception
    (S.OPEN, E.DPR): PeerMachine._on_dpr,
    (S.OPEN, E.REQUEST): PeerMachine._on_request,
    (S.OPEN, E.ANSWER): PeerMachine._on_answer,
    (S.CLOSING, E.DWR): PeerMachine._on_dwr,
    (S.CLOSING, E.DWA): PeerMachine._ignore,
    (S.CLOSING, E.DPR): PeerMachine._on_dpr,
    (S.CLOSING, E.DPA): PeerMachine._on_dpa,
    (S.CLOSING, E.REQUEST): PeerMachine._on_request,  # drain: in-flight peers still ask
    (S.CLOSING, E.ANSWER): PeerMachine._on_answer,
}
