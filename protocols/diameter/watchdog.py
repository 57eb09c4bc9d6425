"""Device watchdog of one open connection, RFC 3539 §3.4 (server side; no failover target).

Sans-IO: the owner reports receptions and asks for the next deadline; when the
deadline passes it calls :meth:`Watchdog.expired`, which says whether to send a
DWR or to give the connection up. Tw is jittered by ±2 s around Twinit
(default 30 s, never below 6 s) and re-drawn at every arming. The timer is
re-armed only on expiry (as Erlang/OTP does): a reception just records its
time, and an expiry that finds a reception since arming re-arms from it.
"""

from __future__ import annotations

import enum
import random
from dataclasses import dataclass

TW_DEFAULT = 30.0
TW_MINIMUM = 6.0
TW_JITTER = 2.0


class WatchdogState(enum.Enum):
    OKAY = "okay"
    SUSPECT = "suspect"  # a DWR is out and unanswered
    DOWN = "down"


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
        """Any message from the peer proves it alive (RFC 3539: SUSPECT -> OKAY)."""
        self._last_rx = now
        if self.state is WatchdogState.SUSPECT:
            self.state = WatchdogState.OKAY

    def expired(self, now: float) -> Expiry:
        if now < self.deadline:
            return Expiry.NOTHING
        if self._last_rx > self._armed_at and self.state is WatchdogState.OKAY:
            self._arm(self._last_rx)
            if now < self.deadline:
                return Expiry.NOTHING
        if self.state is WatchdogState.OKAY:
            self.state = WatchdogState.SUSPECT
            self._arm(now)
            return Expiry.SEND_DWR
        self.state = WatchdogState.DOWN
        return Expiry.CLOSE
