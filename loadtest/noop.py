"""No-op Diameter and RADIUS responders: the Python ceiling the benchmark compares against.

Minimal asyncio on uvloop, no charging and no decoding beyond framing: a
CCR is answered with a CCA made of its own Session-Id, CC-Request-Type and
CC-Request-Number AVPs (copied as bytes), Result-Code 2001 and our
identity (pre-encoded); CER and DWR get their answer from python-diameter
(rare). An Accounting-Request gets an empty Accounting-Response with its
Response Authenticator (RFC 2866 §3). What the OCS costs above this is
the price of decoding, charging and Redis.

    python -m loadtest.noop --diameter-port 3868 --radius-port 1813 --secret s
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import struct
from typing import Any

from diameter.message import Message

from loadtest import diameter_wire as wire

ORIGIN_HOST = b"noop.bench.example"
ORIGIN_REALM = b"bench.example"
AVP_SESSION_ID, AVP_CC_TYPE, AVP_CC_NUMBER = 263, 416, 415


def _avp(code: int, value: bytes) -> bytes:
    length = 8 + len(value)
    return (
        struct.pack(">IB", code, 0x40) + length.to_bytes(3, "big") + value + b"\0" * (-length % 4)
    )


FIXED = (
    _avp(268, struct.pack(">I", 2001))
    + _avp(264, ORIGIN_HOST)
    + _avp(296, ORIGIN_REALM)
    + _avp(258, struct.pack(">I", 4))
)


def cca_for(ccr: bytes) -> bytes:
    """A 2001 CCA for a CCR, built from its bytes."""
    copied = {AVP_SESSION_ID: b"", AVP_CC_TYPE: b"", AVP_CC_NUMBER: b""}
    for code, start, end in wire.top_level_avps(ccr):
        if code in copied and not copied[code]:
            copied[code] = ccr[start:end]
    body = copied[AVP_SESSION_ID] + FIXED + copied[AVP_CC_TYPE] + copied[AVP_CC_NUMBER]
    length = wire.HEADER + len(body)
    head = bytearray(ccr[: wire.HEADER])
    head[1:4] = length.to_bytes(3, "big")
    head[4] = ccr[4] & ~wire.FLAG_REQUEST & 0xFF
    return bytes(head) + body


def base_answer(request: bytes) -> bytes:
    """CEA / DWA / DPA via python-diameter (not on the hot path)."""
    req = Message.from_bytes(request)
    ans = req.to_answer()
    ans.header.hop_by_hop_identifier = req.header.hop_by_hop_identifier
    ans.header.end_to_end_identifier = req.header.end_to_end_identifier
    ans.result_code = 2001
    ans.origin_host = ORIGIN_HOST
    ans.origin_realm = ORIGIN_REALM
    if req.header.command_code == wire.CMD_CE:
        ans.host_ip_address = ["127.0.0.1"]
        ans.vendor_id = 0
        ans.product_name = "noop"
        ans.auth_application_id = [4]
    return bytes(ans.as_bytes())


class NoopDiameter(asyncio.Protocol):
    def __init__(self) -> None:
        self.buffer = bytearray()
        self.transport: Any = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        try:
            frames = wire.split_frames(self.buffer)
        except wire.FrameError:
            self.transport.close()
            return
        out = []
        for frame in frames:
            if not frame[4] & wire.FLAG_REQUEST:
                continue
            cmd = int.from_bytes(frame[5:8], "big")
            out.append(cca_for(frame) if cmd == wire.CMD_CC else base_answer(frame))
        if out:
            self.transport.write(b"".join(out))


class NoopRadius(asyncio.DatagramProtocol):
    def __init__(self, secret: bytes) -> None:
        self.secret = secret
        self.transport: Any = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: Any) -> None:
        if len(data) < 20 or data[0] != 4:
            return
        head = bytes((5, data[1], 0, 20))
        auth = hashlib.md5(head + data[4:20] + self.secret).digest()
        self.transport.sendto(head + auth, addr)


async def serve(diameter_port: int, radius_port: int, secret: bytes) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(NoopDiameter, "127.0.0.1", diameter_port)
    await loop.create_datagram_endpoint(
        lambda: NoopRadius(secret), local_addr=("127.0.0.1", radius_port)
    )
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--diameter-port", type=int, required=True)
    parser.add_argument("--radius-port", type=int, required=True)
    parser.add_argument("--secret", required=True)
    args = parser.parse_args()
    import uvloop

    uvloop.run(serve(args.diameter_port, args.radius_port, args.secret.encode()))


if __name__ == "__main__":
    main()
