"""Packet builders for the RADIUS tests: a NAS's view, written with pyrad."""

from __future__ import annotations

import struct
from typing import Any

from pyrad import packet as rp

from protocols.radius.dictionary import load_dictionary

SECRET = b"testing123"


def acct_packet(
    attrs: dict[str, Any] | None = None,
    secret: bytes = SECRET,
    ident: int = 1,
    message_authenticator: bool = False,
) -> rp.AcctPacket:
    pkt = rp.AcctPacket(id=ident, secret=secret, dict=load_dictionary())
    if message_authenticator:
        pkt.add_message_authenticator()
    base = {
        "Acct-Status-Type": "Start",
        "Acct-Session-Id": "sess-1",
        "NAS-IP-Address": "127.0.0.1",
        "User-Name": "alice",
    }
    for name, value in {**base, **(attrs or {})}.items():
        if value is not None:
            pkt.AddAttribute(name, value)
    return pkt


def acct_request(attrs: dict[str, Any] | None = None, **kw: Any) -> bytes:
    return bytes(acct_packet(attrs, **kw).RequestPacket())


def access_packet(
    attrs: dict[str, Any] | None = None,
    secret: bytes = SECRET,
    ident: int = 2,
    message_authenticator: bool = True,
    password: str | None = None,
) -> rp.AuthPacket:
    pkt = rp.AuthPacket(id=ident, secret=secret, dict=load_dictionary())
    if message_authenticator:
        pkt.add_message_authenticator()
    base = {"User-Name": "alice", "NAS-IP-Address": "127.0.0.1"}
    for name, value in {**base, **(attrs or {})}.items():
        if value is not None:
            pkt.AddAttribute(name, value)
    if password is not None:
        pkt["User-Password"] = pkt.PwCrypt(password)
    return pkt


def attributes_of(raw: bytes) -> list[tuple[int, bytes]]:
    """(type, value) pairs of an encoded packet, in wire order."""
    out = []
    pos = 20
    (length,) = struct.unpack_from("!H", raw, 2)
    while pos < length:
        atype, alen = raw[pos], raw[pos + 1]
        out.append((atype, raw[pos + 2 : pos + alen]))
        pos += alen
    return out


def with_length(raw: bytes, length: int) -> bytes:
    return raw[:2] + struct.pack("!H", length) + raw[4:]
