"""Application requests between the peer machine and the application: duplicates, bounds
on what is in flight, and the answers no application gives (RFC 6733 §6.1.3 and §3
duplicates, §7.1.3 3004 DIAMETER_TOO_BUSY, §7.1.5 5012; standards §1.7, §1.8).

Sans-IO, as Erlang/OTP diameter's ``diameter_traffic``: the connection hands
each well-formed request to :meth:`Traffic.begin`, which returns the key to
serve it under, or the answers to send instead (a repeat's first answer; a 3004
once a bound is reached; nothing while the original of a repeat is still being
served). When the application answered (or raised: :meth:`Traffic.crashed`
gives the 5012), :meth:`Traffic.finished` and :meth:`Traffic.answered` release
the request and return the copies owed to the repeats that waited for it,
possibly on another connection of the same peer. Time is passed in.

Bounds (``limits`` of the ``diameter:`` section): requests and octets in flight
per connection (:class:`Load`), octets in flight in the process. A request's
octets count until its answer has left our write buffer (:meth:`Traffic.written`):
a peer that does not read its answers holds its own share, no more. A 3004 is
never cached, so the client's retry is served afresh.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, TypeVar

import structlog

from protocols.diameter import answers
from protocols.diameter.codec import Problem
from protocols.diameter.constants import FLAG_ERROR, ResultCode
from protocols.diameter.duplicates import COLLISION, MISS, DuplicateCache, Hit, Key, request_key
from protocols.diameter.fastpath import Request
from protocols.diameter.local import LocalNode
from protocols.diameter.metrics import metrics

log = structlog.get_logger("ocs.diameter")

W = TypeVar("W")  # where an answer goes (the connection a request came on)


@dataclass(frozen=True, slots=True)
class Bounds:
    """What requests in flight may hold (``limits.max_in_flight*``)."""

    max_in_flight: int = 1000  # requests per connection
    max_in_flight_bytes: int = 16 << 20  # octets per connection
    max_in_flight_bytes_total: int = 128 << 20  # octets in the process


class Load:
    """What one connection's requests hold: those being served (count and octets, the
    latter including answered ones whose answers wait in our write buffer)."""

    __slots__ = ("answered_bytes", "in_flight", "in_flight_bytes")

    def __init__(self) -> None:
        self.in_flight = 0
        self.in_flight_bytes = 0
        self.answered_bytes = 0  # of in_flight_bytes: answered, not yet written out


class Traffic(Generic[W]):
    """The requests of one process (every connection shares the duplicate cache)."""

    def __init__(self, local: LocalNode, bounds: Bounds, duplicates: DuplicateCache[W]) -> None:
        self.local = local
        self.bounds = bounds
        self.duplicates = duplicates
        self.in_flight_bytes = 0  # octets of the requests in flight, every connection
        self._counts = metrics().counts

    def begin(
        self, load: Load, origin_host: str, request: Request, waiter: W, now: float
    ) -> Key | list[tuple[W, bytes]]:
        """The key to serve ``request`` under (a tuple), or the answers to send instead
        (a list: the repeat's cached answer, a 3004 and the copies owed to repeats that
        waited for it, or nothing while the original is still being served)."""
        key = request_key(origin_host, request)
        lookup = self.duplicates.begin(key, request.header.hop_by_hop, now, waiter)
        if lookup is not MISS:
            if lookup is COLLISION:
                # Same End-to-End id, another request (RFC 6733 §3 random low bits): new.
                metrics().collisions.inc()
                log.debug("diameter_end_to_end_collision", end_to_end=key[1], session=key[3])
            elif isinstance(lookup, Hit):
                return [(waiter, lookup.answer)]
            else:
                return []  # the original is in flight: this repeat is answered with it
        size = len(request.raw)
        if self._busy(load, size):
            busy = answers.error_answer(request, self.local, Problem(ResultCode.TOO_BUSY))
            return [(waiter, busy), *self.duplicates.release(key, busy)]
        load.in_flight += 1
        load.in_flight_bytes += size
        self.in_flight_bytes += size
        self._counts.in_flight += 1
        return key

    def _busy(self, load: Load, size: int) -> bool:
        """Past a bound of what requests in flight may hold: count or octets of this
        connection, octets of the process."""
        bounds = self.bounds
        return (
            load.in_flight >= bounds.max_in_flight
            or load.in_flight_bytes + size > bounds.max_in_flight_bytes
            or self.in_flight_bytes + size > bounds.max_in_flight_bytes_total
        )

    def crashed(self, request: Request) -> bytes:
        """The answer when the application raised: 5012, nothing was done or it is undone
        by the core's idempotency (the client may retry)."""
        return answers.error_answer(request, self.local, Problem(ResultCode.UNABLE_TO_COMPLY))

    def finished(self, load: Load, size: int) -> None:
        """A request of ``size`` octets is no longer served; its octets stay counted until
        its answer is written out (:meth:`written`)."""
        load.in_flight -= 1
        load.answered_bytes += size
        self._counts.in_flight -= 1

    def answered(self, key: Key, answer: bytes, now: float) -> list[tuple[W, bytes]]:
        """Cache the answer (not an E-bit one: a 3004 must not be replayed to a retry);
        returns (waiter, copy) for the repeats that waited for it."""
        cache = self.duplicates
        if answer[4] & FLAG_ERROR:
            return cache.release(key, answer)
        return cache.complete(key, answer, now)

    def written(self, load: Load) -> None:
        """The answers of ``load``'s connection have left our buffer (or never will)."""
        held = load.answered_bytes
        if held:
            load.answered_bytes = 0
            load.in_flight_bytes -= held
            self.in_flight_bytes -= held
