"""Duplicate-request cache (RFC 5080 §2.2.2, standards §3.4).

Keyed on (source IP, source port, Identifier, Request Authenticator): a
retransmission gets the cached answer byte for byte and is not charged again.
While the first copy is still being charged the entry is *pending* and copies
are dropped (the first copy's answer will go out). A request that ends with no
answer (storage down) removes its entry so the NAS's retry is processed anew.
Sans-IO: the caller passes the clock; bounded in size (oldest evicted).
"""

from __future__ import annotations

import enum
from collections import OrderedDict
from dataclasses import dataclass

DupKey = tuple[str, int, int, bytes]


class Lookup(enum.Enum):
    NEW = "new"  # first sighting: process it, then call complete()
    PENDING = "pending"  # first copy still in progress: drop this one


@dataclass(slots=True)
class _Entry:
    expires: float
    answer: bytes | None  # None while pending


class DuplicateCache:
    def __init__(self, ttl: float = 30.0, max_entries: int = 65536) -> None:
        self._ttl = ttl
        self._max = max_entries
        self._entries: OrderedDict[DupKey, _Entry] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def begin(self, key: DupKey, now: float) -> Lookup | bytes:
        """NEW (and mark pending), PENDING, or the cached answer to re-send."""
        self._expire(now)
        entry = self._entries.get(key)
        if entry is not None:
            return Lookup.PENDING if entry.answer is None else entry.answer
        self._entries[key] = _Entry(now + self._ttl, None)
        while len(self._entries) > self._max:
            self._entries.popitem(last=False)
        return Lookup.NEW

    def complete(self, key: DupKey, answer: bytes | None, now: float) -> None:
        """Store the answer sent; ``None`` (nothing sent) forgets the request."""
        if answer is None:
            self._entries.pop(key, None)
            return
        self._entries[key] = _Entry(now + self._ttl, answer)
        self._entries.move_to_end(key)

    def _expire(self, now: float) -> None:
        while self._entries:
            key, entry = next(iter(self._entries.items()))
            if entry.expires > now:
                break
            del self._entries[key]
