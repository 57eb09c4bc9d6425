"""Pre-encoded RADIUS Accounting-Requests with per-request fields patched in (RFC 2866 §3-§5).

Start, Interim-Update and Stop are each encoded once with pyrad and the
ocs dictionary, with sentinels in the Acct-Session-Id digits, User-Name and
counters; a request is then a copy with the Identifier, those fields and a
fresh Request Authenticator (RFC 2866 §3: MD5 over the packet with a zero
authenticator, then the shared secret) written in. NAS-Identifier names the
simulated NAS (no NAS-IP-Address, so every socket of one process is the
same NAS to the server).
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass

from pyrad import packet as rp

from protocols.radius.dictionary import load_dictionary

START, STOP, INTERIM = 1, 2, 3
COMMAND_NAMES = {START: "Acct-Start", INTERIM: "Acct-Interim", STOP: "Acct-Stop"}
ACCOUNTING_RESPONSE = 5
SESSION_DIGITS = 10
_COUNTER_SENTINELS = (0x5A5A5A01, 0x5A5A5A02, 0x5A5A5A03)  # input, output octets, seconds
_ZERO_AUTH = b"\x00" * 16
_U32 = struct.Struct(">I")


def _offset(data: bytes, needle: bytes, what: str) -> int:
    at = data.find(needle, 20)
    if at < 0 or data.find(needle, at + 1) >= 0:
        raise ValueError(f"{what}: sentinel not found exactly once")
    return at


@dataclass(frozen=True, slots=True)
class AcctTemplate:
    data: bytes
    session_at: int
    user_at: int
    user_len: int
    counters_at: tuple[int, ...]  # empty for Start

    def render(
        self,
        identifier: int,
        digits: bytes,
        user: bytes,
        counters: tuple[int, int, int] | list[int],
        secret: bytes,
    ) -> tuple[bytes, bytes]:
        """The packet and its Request Authenticator (to verify the response)."""
        buf = bytearray(self.data)
        buf[1] = identifier
        buf[self.session_at : self.session_at + SESSION_DIGITS] = digits
        buf[self.user_at : self.user_at + self.user_len] = user
        for at, value in zip(self.counters_at, counters, strict=False):
            _U32.pack_into(buf, at, value & 0xFFFFFFFF)
        buf[4:20] = _ZERO_AUTH
        auth = hashlib.md5(bytes(buf) + secret).digest()
        buf[4:20] = auth
        return bytes(buf), auth


def response_ok(response: bytes, request_auth: bytes, secret: bytes) -> bool:
    """Is this an Accounting-Response with a valid Response Authenticator (RFC 2866 §3)?"""
    if len(response) < 20 or response[0] != ACCOUNTING_RESPONSE:
        return False
    digest = hashlib.md5(response[:4] + request_auth + response[20:] + secret).digest()
    return digest == response[4:20]


class AcctTemplates:
    """The three accounting templates of one simulated NAS."""

    def __init__(self, nas_identifier: str, session_prefix: str, user_len: int) -> None:
        self.nas_identifier = nas_identifier
        self.session_prefix = session_prefix
        self.user_len = user_len
        self.by_status = {s: self._build(s) for s in (START, INTERIM, STOP)}

    def _build(self, status: int) -> AcctTemplate:
        pkt = rp.AcctPacket(id=0, secret=b"template", dict=load_dictionary())
        session = self.session_prefix + "0" * SESSION_DIGITS
        marker = "Z" * self.user_len
        pkt.AddAttribute("Acct-Status-Type", status)
        pkt.AddAttribute("Acct-Session-Id", session)
        pkt.AddAttribute("User-Name", marker)
        pkt.AddAttribute("NAS-Identifier", self.nas_identifier)
        pkt.AddAttribute("NAS-Port-Type", 15)  # Ethernet (a BNG)
        if status != START:
            pkt.AddAttribute("Acct-Input-Octets", _COUNTER_SENTINELS[0])
            pkt.AddAttribute("Acct-Output-Octets", _COUNTER_SENTINELS[1])
            pkt.AddAttribute("Acct-Session-Time", _COUNTER_SENTINELS[2])
        if status == STOP:
            pkt.AddAttribute("Acct-Terminate-Cause", 1)  # User-Request
        data = bytes(pkt.RequestPacket())
        counters: tuple[int, ...] = ()
        if status != START:
            counters = tuple(
                _offset(data, _U32.pack(s), f"counter {i}")
                for i, s in enumerate(_COUNTER_SENTINELS)
            )
        return AcctTemplate(
            data=data,
            session_at=_offset(data, session.encode(), "Acct-Session-Id")
            + len(self.session_prefix),
            user_at=_offset(data, marker.encode(), "User-Name"),
            user_len=self.user_len,
            counters_at=counters,
        )
