"""Device watchdog of one open connection, RFC 3539 §3.4 (server side; no failover target).

Sans-IO: the owner reports receptions and asks for the next deadline; when the
deadline passes it calls :meth:`Watchdog.expired`, which says whether to send a
DWR or to give the connection up. Tw is jittered by ±2 s around Twinit
(default 30 s, never below 6 s) and re-drawn at every arming. The timer is
re-armed only on expiry (as Erlang/OTP does): a reception just records its
time, and an expiry that finds a reception since arming re-arms from it.

RFC 3539 §3.4.1's table as a server that never reopens a connection runs it
(``_TABLE``; no REOPEN, and the second unanswered Tw closes, as OTP does):

    state    event                                action                         next
    OKAY     RECEIVED (any message)               note the time                  OKAY
    OKAY     EXPIRED after traffic since arming   re-arm from the last reception OKAY
                                                  (expired again: as QUIET)
    OKAY     EXPIRED, QUIET since arming          send DWR, re-arm               SUSPECT
    SUSPECT  RECEIVED                             note the time                  OKAY
    SUSPECT  EXPIRED (either)                     close the connection           DOWN
    DOWN     RECEIVED                             note the time                  DOWN
    DOWN     EXPIRED (either)                     close the connection           DOWN

An expiry before the deadline (a timer that fired early) does nothing.
"""

from __future__ import annotations

import enum
import random
from collections.abc import Callable
from dataclasses import dataclass

TW_DEFAULT = 30.0
TW_MINIMUM = 6.0
TW_JITTER = 2.0


class WatchdogState(enum.Enum):
    OKAY = "okay"
    SUSPECT = "suspect"  # a DWR is out and unanswered
    DOWN = "down"


class Tick(enum.Enum):
    """What the watchdog is told."""

    RECEIVED = "received"  # any message from the peer
    EXPIRED_AFTER_TRAFFIC = "expired_after_traffic"  # Tw passed; a reception since arming
    EXPIRED_QUIET = "expired_quiet"  # Tw passed; nothing received since arming


class Expiry(enum.Enum):
    NOTHING = "nothing"  # traffic was seen: re-armed
    SEND_DWR = "send_dwr"
    CLOSE = "close"  # second expiry without any answer


@dataclass(slots=True)
class Watchdog:
    tw: float
    rng: random.Random
    state: WatchdogState = WatchdogState.OKAY
    deadline: float = 0.0
    _armed_at: float = 0.0
    _last_rx: float = 0.0

    @classmethod
    def start(cls, tw: float, now: float, rng: random.Random | None = None) -> Watchdog:
        dog = cls(max(tw, TW_MINIMUM), rng or random.Random())
        dog._last_rx = now
        dog._arm(now)
        return dog

    def _interval(self) -> float:
        return max(TW_MINIMUM - TW_JITTER, self.tw + self.rng.uniform(-TW_JITTER, TW_JITTER))

    def _arm(self, base: float) -> None:
        self._armed_at = base
        self.deadline = base + self._interval()

    def received(self, now: float) -> None:
        """Any message from the peer proves it alive (RFC 3539: SUSPECT -> OKAY). Called
        for every message: the OKAY row (note the time) runs inline, the others by table."""
        self._last_rx = now
        if self.state is not WatchdogState.OKAY:
            self._row(Tick.RECEIVED, now)

    def expired(self, now: float) -> Expiry:
        if now < self.deadline:
            return Expiry.NOTHING
        traffic = self._last_rx > self._armed_at
        return self._row(Tick.EXPIRED_AFTER_TRAFFIC if traffic else Tick.EXPIRED_QUIET, now)

    def _row(self, tick: Tick, now: float) -> Expiry:
        action, after = _TABLE[(self.state, tick)]
        self.state = after
        return action(self, now)

    # -- actions ---------------------------------------------------------------

    def _note(self, now: float) -> Expiry:
        return Expiry.NOTHING  # the time is noted by ``received``

    def _rearm_from_traffic(self, now: float) -> Expiry:
        self._arm(self._last_rx)
        return self.expired(now)  # still past the new deadline: a quiet expiry

    def _send_dwr(self, now: float) -> Expiry:
        self._arm(now)
        return Expiry.SEND_DWR

    def _close(self, now: float) -> Expiry:
        return Expiry.CLOSE


_Action = Callable[[Watchdog, float], Expiry]
S, T, W = WatchdogState, Tick, Watchdog
_TABLE: dict[tuple[WatchdogState, Tick], tuple[_Action, WatchdogState]] = {
    (S.OKAY, T.RECEIVED): (W._note, S.OKAY),
    (S.OKAY, T.EXPIRED_AFTER_TRAFFIC): (W._rearm_from_traffic, S.OKAY),
    (S.OKAY, T.EXPIRED_QUIET): (W._send_dwr, S.SUSPECT),
    (S.SUSPECT, T.RECEIVED): (W._note, S.OKAY),
    (S.SUSPECT, T.EXPIRED_AFTER_TRAFFIC): (W._close, S.DOWN),
    (S.SUSPECT, T.EXPIRED_QUIET): (W._close, S.DOWN),
    (S.DOWN, T.RECEIVED): (W._note, S.DOWN),
    (S.DOWN, T.EXPIRED_AFTER_TRAFFIC): (W._close, S.DOWN),
    (S.DOWN, T.EXPIRED_QUIET): (W._close, S.DOWN),
}
