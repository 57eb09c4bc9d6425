"""What both CCR decoders share before any AVP is read: the header and our limits.

RFC 6733 §3 (the 20-octet header). Pure values, no python-diameter: the
reference decoder (:mod:`protocols.diameter.codec`) and the fast path
(:mod:`protocols.diameter.fastpath`) both build a :class:`Header` and check
the same :class:`Limits`, and neither needs the other to do so.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from protocols.diameter.constants import (
    FLAG_ERROR,
    FLAG_PROXYABLE,
    FLAG_REQUEST,
    FLAG_RETRANSMIT,
)


@dataclass(frozen=True, slots=True)
class Header:
    """The 20-octet message header (RFC 6733 §3)."""

    version: int
    length: int
    flags: int
    command_code: int
    application_id: int
    hop_by_hop: int
    end_to_end: int

    @classmethod
    def parse(cls, data: bytes) -> Header:
        vl, fc, app, hbh, e2e = struct.unpack_from(">IIIII", data)
        return cls(vl >> 24, vl & 0xFFFFFF, fc >> 24, fc & 0xFFFFFF, app, hbh, e2e)

    @property
    def is_request(self) -> bool:
        return bool(self.flags & FLAG_REQUEST)

    @property
    def is_proxyable(self) -> bool:
        return bool(self.flags & FLAG_PROXYABLE)

    @property
    def is_error(self) -> bool:
        return bool(self.flags & FLAG_ERROR)

    @property
    def is_retransmit(self) -> bool:
        return bool(self.flags & FLAG_RETRANSMIT)


@dataclass(frozen=True, slots=True)
class Limits:
    """Our own bounds against abuse (standards §1.8, §6: the values are policy)."""

    max_depth: int = 10
    max_avps: int = 4096
    max_mscc: int = 64
    strict_mbit: bool = False  # True: 5001 for unknown M-bit AVPs in every group, read or not


DEFAULT_LIMITS = Limits()
