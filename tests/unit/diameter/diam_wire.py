"""Raw Diameter bytes for tests, written with struct only (not with the code under test).

Lets tests craft what a well-behaved encoder never would: wrong lengths, V with
vendor 0, unknown M-bit AVPs inside groups, reserved header bits.
"""

from __future__ import annotations

import struct

M = 0x40
V = 0x80


def pad(b: bytes) -> bytes:
    return b + bytes(-len(b) % 4)


def avp(
    code: int, data: bytes, flags: int = M, vendor: int = 0, length: int | None = None
) -> bytes:
    hdr_len = 12 if flags & V else 8
    n = hdr_len + len(data) if length is None else length
    head = struct.pack(">II", code, (flags << 24) | n)
    if flags & V:
        head += struct.pack(">I", vendor)
    return pad(head + data)


def u32(code: int, value: int, flags: int = M, vendor: int = 0) -> bytes:
    return avp(code, struct.pack(">I", value), flags, vendor)


def u64(code: int, value: int, flags: int = M, vendor: int = 0) -> bytes:
    return avp(code, struct.pack(">Q", value), flags, vendor)


def utf8(code: int, text: str | bytes, flags: int = M, vendor: int = 0) -> bytes:
    return avp(code, text.encode() if isinstance(text, str) else text, flags, vendor)


def grouped(code: int, *members: bytes, flags: int = M, vendor: int = 0) -> bytes:
    return avp(code, b"".join(members), flags, vendor)


def address_v4(code: int, ip: str) -> bytes:
    return avp(code, struct.pack(">H", 1) + bytes(int(x) for x in ip.split(".")))


def message(
    command: int,
    *avps: bytes,
    app: int = 0,
    flags: int = 0x80,
    hbh: int = 0x1234,
    e2e: int = 0x5678,
    version: int = 1,
    length: int | None = None,
) -> bytes:
    body = b"".join(avps)
    n = 20 + len(body) if length is None else length
    return struct.pack(">IIIII", (version << 24) | n, (flags << 24) | command, app, hbh, e2e) + body


def ccr(
    *extra: bytes,
    session: str = "gw;1;1",
    req_type: int | None = 1,
    number: int | None = 0,
    context: str | None = "32251@3gpp.org",
    hbh: int = 0x1234,
    e2e: int = 0x5678,
    flags: int = 0xC0,
    realm: str = "test.example",
) -> bytes:
    """A CCR for app 4 with the required AVPs; ``None`` leaves one out."""
    parts = [
        utf8(263, session),
        utf8(264, "gw.example"),
        utf8(296, "example"),
        utf8(283, realm),
        u32(258, 4),
    ]
    if context is not None:
        parts.append(utf8(461, context))
    if req_type is not None:
        parts.append(u32(416, req_type))
    if number is not None:
        parts.append(u32(415, number))
    return message(272, *parts, *extra, app=4, flags=flags, hbh=hbh, e2e=e2e)


def cer(
    *extra: bytes, host: str = "gw.example", apps: tuple[int, ...] = (4,), hbh: int = 1
) -> bytes:
    parts = [
        utf8(264, host),
        utf8(296, "example"),
        address_v4(257, "127.0.0.1"),
        u32(266, 0),
        utf8(269, "test-gw", flags=0),
        *[u32(258, a) for a in apps],
    ]
    return message(257, *parts, *extra, hbh=hbh, e2e=hbh)


def dwr(hbh: int = 7) -> bytes:
    return message(280, utf8(264, "gw.example"), utf8(296, "example"), hbh=hbh, e2e=hbh)
