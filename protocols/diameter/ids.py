"""Hop-by-Hop and End-to-End identifiers of our own requests (RFC 6733 §3).

End-to-End ids must stay unique for at least 4 minutes, across reboots: the high
12 bits are the low bits of the start time in seconds and the low 20 start
random (RFC 6733 §3, standards §1.7). Hop-by-Hop ids only need to be unique on
one connection: a random start, then +1.
"""

from __future__ import annotations

import random
import time


class IdGenerator:
    __slots__ = ("_e2e", "_hbh")

    def __init__(self, now: float | None = None, rng: random.Random | None = None) -> None:
        rng = rng or random.Random()
        seconds = int(time.time() if now is None else now)
        self._e2e = ((seconds & 0xFFF) << 20) | rng.getrandbits(20)
        self._hbh = rng.getrandbits(32)

    def next(self) -> tuple[int, int]:
        """(hop_by_hop, end_to_end) for a new request."""
        self._hbh = (self._hbh + 1) & 0xFFFFFFFF
        self._e2e = (self._e2e & 0xFFF00000) | ((self._e2e + 1) & 0xFFFFF)
        return self._hbh, self._e2e
