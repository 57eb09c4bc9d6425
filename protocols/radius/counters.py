"""RADIUS accounting counters as cumulative usage (RFC 2866 §5.3-5.7, RFC 2869 §5.1-5.2).

Acct-Input/Output-Octets are 32-bit and wrap; Acct-Input/Output-Gigawords count
the wraps, so a total is ``gigawords * 2**32 + octets`` (standards §3.3). Every
Interim and Stop carries totals since the session started: the front end
passes them as ``UsedUnits(cumulative=True)`` and the charging core charges the
difference from the last report, starting a new epoch (never a credit) when a
total goes down while another goes up (standards §3.4; the session time goes
on). A NAS that wraps without sending Gigawords therefore loses at most the
wrapped part, never charges twice. A record none of whose totals went up and
one went down is older than the last one counted (re-sent or delayed past
newer ones): it charges nothing (ocs/store/lua/lib.lua ``stale``).

``request_key`` is the idempotency key of one record: a digest of the status
type and the counters, so a record the NAS re-sends with a new Identifier
(e.g. after updating Acct-Delay-Time) charges nothing more (standards §3.4).
"""

from __future__ import annotations

import hashlib
from typing import NamedTuple

from ocs.vocabulary.types import Usage, UsedUnits

GIGAWORD = 1 << 32
U32_MAX = GIGAWORD - 1


def combine(octets: int | None, gigawords: int | None) -> int | None:
    """Total octets from a 32-bit counter and its Gigawords; None if neither was sent."""
    if octets is None and gigawords is None:
        return None
    return (gigawords or 0) * GIGAWORD + (octets or 0)


def split(total: int) -> tuple[int, int]:
    """(octets, gigawords) that encode ``total``: the inverse of :func:`combine`."""
    gigawords, octets = divmod(total, GIGAWORD)
    return octets, min(gigawords, U32_MAX)


class Counters(NamedTuple):
    """Cumulative session counters of one accounting record.

    ``input`` is what the NAS received from the user (upload), ``output`` what
    it sent to the user (download), as in RFC 2866 §5.3/§5.4. A NamedTuple:
    immutable like a frozen dataclass at a fraction of its construction cost
    (built per request).
    """

    input_octets: int | None = None
    output_octets: int | None = None
    seconds: int | None = None

    @property
    def total_octets(self) -> int | None:
        if self.input_octets is None and self.output_octets is None:
            return None
        return (self.input_octets or 0) + (self.output_octets or 0)

    def is_empty(self) -> bool:
        return self.total_octets is None and self.seconds is None

    def used_units(self) -> UsedUnits:
        """The counters as cumulative usage for the charging core."""
        usage = Usage(
            total_octets=self.total_octets,
            input_octets=self.input_octets,
            output_octets=self.output_octets,
            seconds=self.seconds,
        )
        return UsedUnits(usage=usage, cumulative=True)

    def zeroed(self) -> Counters:
        """All counters at zero (a Start carries none: usage starts here)."""
        return Counters(0, 0, 0)


def request_key(status: int, counters: Counters) -> str:
    """Digest of (status type, counters): equal for a re-sent record, whatever its ID."""
    text = f"{status}|{counters.input_octets}|{counters.output_octets}|{counters.seconds}"
    return "r" + hashlib.sha256(text.encode()).hexdigest()[:24]
