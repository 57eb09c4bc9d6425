"""Duplicate requests by (Origin-Host, End-to-End id), RFC 6733 §6.1.3 (standards §1.7).

A repeat inside the window gets the identical answer (only the Hop-by-Hop id
differs) and changes nothing, whether or not it carries the T flag and even when
the original is still being served (the repeat then waits for the original's
answer). Sans-IO and bounded: entries leave after ``window`` seconds (at least
the 4 minutes senders keep End-to-End ids unique) or when ``max_entries`` is
reached, oldest first.
"""

from __future__ import annotations

import struct
from collections import OrderedDict
from dataclasses import dataclass
from typing import Generic, TypeVar

MIN_WINDOW = 240.0
Key = tuple[str, int]
W = TypeVar("W")  # who waits for a repeat's answer (the connection it came on)


@dataclass(frozen=True, slots=True)
class Miss:
    """First sighting: serve it, then call :meth:`DuplicateCache.complete`."""


@dataclass(frozen=True, slots=True)
class Hit:
    answer: bytes


@dataclass(frozen=True, slots=True)
class Pending:
    """The original is still being served; the repeat is answered on completion."""


Lookup = Miss | Hit | Pending
MISS = Miss()
PENDING = Pending()


def with_hop_by_hop(message: bytes, hop_by_hop: int) -> bytes:
    return message[:12] + struct.pack(">I", hop_by_hop) + message[16:]


class DuplicateCache(Generic[W]):
    """Held as plain dicts of str/int/float/bytes, not an object per request: the cache
    holds every request of the window (hundreds of thousands), and objects the garbage
    collector tracks would make each of its full collections walk them all."""

    def __init__(self, window: float = 300.0, max_entries: int = 200_000) -> None:
        self.window = max(window, MIN_WINDOW)
        self.max_entries = max_entries
        self._expires: OrderedDict[Key, float] = OrderedDict()  # oldest first
        self._answers: dict[Key, bytes] = {}
        # Repeats that arrived while the original was in flight, possibly on another
        # connection of the same peer: (their Hop-by-Hop id, where to answer).
        self._waiting: dict[Key, list[tuple[int, W]]] = {}
        self._next_expiry = 0.0  # when the oldest entry expires (0: unknown / empty)

    def __len__(self) -> int:
        return len(self._expires)

    def begin(self, key: Key, hop_by_hop: int, now: float, waiter: W) -> Lookup:
        self._expire(now)
        if key not in self._expires:
            self._expires[key] = now + self.window
            while len(self._expires) > self.max_entries:
                self._forget(next(iter(self._expires)))
            return MISS
        answer = self._answers.get(key)
        if answer is not None:
            return Hit(with_hop_by_hop(answer, hop_by_hop))
        self._waiting.setdefault(key, []).append((hop_by_hop, waiter))
        return PENDING

    def complete(self, key: Key, answer: bytes) -> list[tuple[W, bytes]]:
        """Store the answer; returns (waiter, copy) for the repeats that waited for it."""
        if key not in self._expires:
            return []
        self._answers[key] = answer
        waiting = self._waiting.pop(key, None)
        if not waiting:
            return []
        return [(w, with_hop_by_hop(answer, hbh)) for hbh, w in waiting]

    def release(self, key: Key, answer: bytes) -> list[tuple[W, bytes]]:
        """Forget a request whose answer must not be replayed (a transient 3xxx such as
        3004): a later repeat is served afresh. Returns (waiter, copy) for the waiting repeats."""
        waiting = self._forget(key)
        if not waiting:
            return []
        return [(w, with_hop_by_hop(answer, hbh)) for hbh, w in waiting]

    def _forget(self, key: Key) -> list[tuple[int, W]] | None:
        self._expires.pop(key, None)
        self._answers.pop(key, None)
        return self._waiting.pop(key, None)

    def _expire(self, now: float) -> None:
        if now < self._next_expiry:
            return  # the oldest entry is still young: nothing to scan
        expires = self._expires
        while expires:
            key, when = next(iter(expires.items()))
            if when > now:
                self._next_expiry = when
                return
            self._forget(key)
        self._next_expiry = 0.0
