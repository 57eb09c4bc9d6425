"""Duplicate requests: the same request seen again answers with its first answer
(RFC 6733 §6.1.3 and §3, RFC 4006 §5.7 / RFC 8506 §5.7; standards §1.7, §2.5).

A request is the same only when its Origin-Host and End-to-End id (RFC 6733's
duplicate key) *and* its identity as a credit-control request (command code,
Session-Id, CC-Request-Type and CC-Request-Number: RFC 8506 §5.7 detects
duplicates that way) are equal. RFC 6733 §3 lets a client draw the low 20 bits
of End-to-End ids at random, so two different requests of one Origin-Host can
carry the same id inside the window: such a *collision* is served as the new
request it is (and counted), never answered with the other request's answer,
which would carry another session's Session-Id.

A repeat inside the window gets the identical answer (only the Hop-by-Hop id
differs) and changes nothing, whether or not it carries the T flag and even
when the original is still being served (the repeat then waits for the
original's answer). Sans-IO and bounded: answers leave after ``window``
seconds (at least the 4 minutes senders keep End-to-End ids unique), or oldest
first when ``max_entries`` or ``max_bytes`` is reached. Requests in flight are
held apart, bounded by the transport's in-flight limits. A repeat older than
what the cache holds is still answered from the core's own record of
(Session-Id, CC-Request-Number), never charged twice.
"""

from __future__ import annotations

import struct
from collections import OrderedDict
from dataclasses import dataclass
from typing import Generic, TypeVar

from protocols.diameter import avps as A
from protocols.diameter.constants import AvpCode
from protocols.diameter.fastpath import FastCcr, Request

MIN_WINDOW = 240.0
# (Origin-Host, End-to-End id, command code, Session-Id, CC-Request-Type, CC-Request-Number)
Key = tuple[str, int, int, str, int, int]
W = TypeVar("W")  # who waits for a repeat's answer (the connection it came on)
# What one cached answer costs beyond its octets and its Session-Id's: the key tuple,
# its ints, two dict slots, the ordered dict's link and the expiry float (measured with
# tracemalloc on CPython 3.11: about 420 octets; rounded up).
ENTRY_OVERHEAD = 512


@dataclass(frozen=True, slots=True)
class Miss:
    """First sighting: serve it, then call :meth:`DuplicateCache.complete` or ``release``.
    ``collision``: another request of this Origin-Host holds the same End-to-End id."""

    collision: bool = False


@dataclass(frozen=True, slots=True)
class Hit:
    answer: bytes


@dataclass(frozen=True, slots=True)
class Pending:
    """The original is still being served; the repeat is answered on completion."""


Lookup = Miss | Hit | Pending
MISS = Miss()
COLLISION = Miss(collision=True)
PENDING = Pending()


def request_key(origin_host: str, msg: Request) -> Key:
    """The duplicate key of a well-formed application request (a CCR). The fast path
    read the identity already; the reference path's AVPs give it otherwise."""
    header = msg.header
    if isinstance(msg, FastCcr):
        req = msg.request
        return (
            origin_host,
            header.end_to_end,
            header.command_code,
            req.session_id,
            int(req.request_type),
            req.request_number,
        )
    avps = msg.avps
    return (
        origin_host,
        header.end_to_end,
        header.command_code,
        A.get_str(avps, AvpCode.SESSION_ID) or "",
        _int_or(A.get_int(avps, AvpCode.CC_REQUEST_TYPE)),
        _int_or(A.get_int(avps, AvpCode.CC_REQUEST_NUMBER)),
    )


def _int_or(value: int | None) -> int:
    return -1 if value is None else value


def with_hop_by_hop(message: bytes, hop_by_hop: int) -> bytes:
    return message[:12] + struct.pack(">I", hop_by_hop) + message[16:]


def _cost(key: Key, answer: bytes) -> int:
    return len(answer) + len(key[3]) + ENTRY_OVERHEAD


class DuplicateCache(Generic[W]):
    """Held as plain dicts of str/int/float/bytes, not an object per request: the cache
    holds every request of the window (hundreds of thousands), and objects the garbage
    collector tracks would make each of its full collections walk them all."""

    def __init__(
        self, window: float = 300.0, max_entries: int = 200_000, max_bytes: int = 128 << 20
    ) -> None:
        self.window = max(window, MIN_WINDOW)
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.bytes = 0  # what the answers held cost (see ENTRY_OVERHEAD)
        self.collisions = 0  # same (Origin-Host, End-to-End id), another request
        self._expires: OrderedDict[Key, float] = OrderedDict()  # answered, oldest first
        self._answers: dict[Key, bytes] = {}
        # Requests being served -> the repeats that arrived meanwhile, possibly on another
        # connection of the same peer: (their Hop-by-Hop id, where to answer); None: none.
        self._in_flight: dict[Key, list[tuple[int, W]] | None] = {}
        # (Origin-Host, End-to-End id) -> the request that last used it (collisions).
        self._ids: dict[tuple[str, int], Key] = {}
        self._next_expiry = 0.0  # when the oldest answer expires (0: unknown / empty)

    def __len__(self) -> int:
        return len(self._expires) + len(self._in_flight)

    def begin(self, key: Key, hop_by_hop: int, now: float, waiter: W) -> Lookup:
        self._expire(now)
        answer = self._answers.get(key)
        if answer is not None:
            return Hit(with_hop_by_hop(answer, hop_by_hop))
        in_flight = self._in_flight
        if key in in_flight:
            waiting = in_flight[key]
            if waiting is None:
                waiting = in_flight[key] = []
            waiting.append((hop_by_hop, waiter))
            return PENDING
        in_flight[key] = None
        ident = (key[0], key[1])
        other = self._ids.get(ident)
        self._ids[ident] = key
        if other is not None:
            self.collisions += 1
            return COLLISION
        return MISS

    def complete(self, key: Key, answer: bytes, now: float) -> list[tuple[W, bytes]]:
        """Store the answer; returns (waiter, copy) for the repeats that waited for it."""
        if key not in self._in_flight:
            return []
        waiting = self._in_flight.pop(key)
        self._answers[key] = answer
        self._expires[key] = now + self.window
        if not self._next_expiry:
            self._next_expiry = now + self.window
        self.bytes += _cost(key, answer)
        while self._expires and (
            len(self._expires) > self.max_entries or self.bytes > self.max_bytes
        ):
            self._forget(next(iter(self._expires)))
        if not waiting:
            return []
        return [(w, with_hop_by_hop(answer, hbh)) for hbh, w in waiting]

    def release(self, key: Key, answer: bytes) -> list[tuple[W, bytes]]:
        """Forget a request whose answer must not be replayed (a transient 3xxx such as
        3004): a later repeat is served afresh. Returns (waiter, copy) for the waiting repeats."""
        waiting = self._in_flight.pop(key, None)
        self._forget_id(key)
        if not waiting:
            return []
        return [(w, with_hop_by_hop(answer, hbh)) for hbh, w in waiting]

    def _forget(self, key: Key) -> None:
        self._expires.pop(key, None)
        answer = self._answers.pop(key, None)
        if answer is not None:
            self.bytes -= _cost(key, answer)
        self._forget_id(key)

    def _forget_id(self, key: Key) -> None:
        ident = (key[0], key[1])
        if self._ids.get(ident) == key:
            del self._ids[ident]

    def _expire(self, now: float) -> None:
        if not self._next_expiry or now < self._next_expiry:
            return  # empty, or the oldest answer is still young: nothing to scan
        expires = self._expires
        while expires:
            key, when = next(iter(expires.items()))
            if when > now:
                self._next_expiry = when
                return
            self._forget(key)
        self._next_expiry = 0.0
