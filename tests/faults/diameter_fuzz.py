"""Seeded, bounded fuzzing of a Diameter server over a real connection.

:func:`cases` mutates well-formed messages (CCR-I/U/T/EVENT with MSCC, Proxy-Info
and 3GPP AVPs, DWR, CER) with the operators a hostile or broken peer would use:
bit flips, byte overwrites, AVP lengths, inserted / repeated / dropped AVPs,
truncation, header fields, nesting bombs, more than 4096 AVPs, huge values, and a
header length that lies. The same seed gives the same cases; every case is at most
``MAX_CASE`` octets.

:func:`run` sends them after CER, in batches each closed by a DWR (its DWA says the
server has read and answered everything before it), over a GyClient
(tests/integration/diameter/gy_client.py), reconnecting when the server closes the
connection (as it must after a framing error). A case whose header length lies goes
on its own connection, half-closed after it: the stream's framing is lost by design.
It returns the counts the tests print: cases sent, answers by Result-Code,
connections the server closed, and ``connection_stalled``: a batch after which the
server neither answered the DWR nor closed within 15 s (none may be).
"""

from __future__ import annotations

import asyncio
import random
import struct
from collections import Counter
from collections.abc import Iterator
from typing import cast

from tests.faults.diameter_node import Node
from tests.integration.diameter.gy_client import GyClient, result_of
from tests.unit.diameter import diam_wire as w

MAX_CASE = 160_000  # octets; the 4097+-AVP cases are the largest (about 120 KB)
HEADER = 20
_INTERESTING = (0, 1, 0x7F, 0x80, 0xFF, 0x40, 0xC0, 0x20)
_CODES = (
    263,
    264,
    296,
    283,
    258,
    461,
    416,
    415,
    443,
    450,
    444,
    455,
    456,
    432,
    437,
    446,
    421,
    284,
    279,
    268,
    257,
    873,
    872,
    874,
    1,
    0,
    0xFFFFFFFF,
)


def templates(msisdn: str) -> list[bytes]:
    """Well-formed messages the mutations start from (all of them answerable)."""
    sub = w.grouped(443, w.u32(450, 0), w.utf8(444, msisdn))
    rsu = w.grouped(437, w.u64(421, 10_000))
    usu = w.grouped(446, w.u64(421, 1_000))
    proxy = w.grouped(284, w.utf8(280, "proxy.example"), w.avp(33, b"state"))
    service_info = w.grouped(
        873,
        w.grouped(874, w.utf8(30, "apn.example", flags=0xC0, vendor=10415)),
        flags=0xC0,
        vendor=10415,
    )
    return [
        w.ccr(sub, w.u32(455, 1), w.grouped(456, w.u32(432, 10), rsu), session="fz;i"),
        w.ccr(
            w.u32(455, 1),
            w.grouped(456, w.u32(432, 10), rsu, usu),
            req_type=2,
            number=1,
            session="fz;u",
        ),
        w.ccr(
            w.grouped(456, w.u32(432, 10), usu), w.u32(295, 1), req_type=3, number=2, session="fz;t"
        ),
        w.ccr(sub, w.u32(436, 0), rsu, req_type=4, number=0, session="fz;e"),
        w.ccr(sub, proxy, service_info, w.grouped(456, w.u32(432, 30), rsu), session="fz;p"),
        w.ccr(
            sub,
            w.grouped(456, w.u32(432, 10), rsu),
            w.grouped(456, w.u32(432, 30), rsu),
            w.u32(455, 1),
            session="fz;m",
        ),
        w.dwr(),
        w.cer(),
    ]


def _avp_offsets(data: bytes) -> list[int]:
    """Offsets of the top-level AVP headers, as far as their lengths can be followed."""
    out, pos = [], HEADER
    while pos + 8 <= len(data):
        out.append(pos)
        length = int.from_bytes(data[pos + 5 : pos + 8], "big")
        if length < 8:
            break
        pos += (length + 3) & ~3
    return out


def _random_avp(rng: random.Random) -> bytes:
    code = rng.choice(_CODES) if rng.random() < 0.7 else rng.getrandbits(32)
    flags = rng.choice((0x40, 0x00, 0x80, 0xC0, 0x20, 0xE0, rng.getrandbits(8)))
    payload = rng.randbytes(rng.choice((0, 1, 3, 4, 8, 12, rng.randint(0, 64))))
    vendor = rng.choice((0, 10415, rng.getrandbits(32)))
    return w.avp(code, payload, flags=flags, vendor=vendor)


def _nest(rng: random.Random) -> bytes:
    inner = w.u32(432, 10)
    for _ in range(rng.randint(5, 40)):
        inner = w.grouped(rng.choice((456, 437, 446, 873, 284, 279)), inner)
    return inner


def _mutate(rng: random.Random, data: bytes) -> tuple[bytes, bool]:
    """One mutation; returns (message, header length tells the truth)."""
    buf = bytearray(data)
    op = rng.random()
    avps = _avp_offsets(data)
    if op < 0.18 and len(buf) > HEADER:  # bit flips in the body
        for _ in range(rng.randint(1, 8)):
            i = rng.randrange(HEADER, len(buf))
            buf[i] ^= 1 << rng.randrange(8)
    elif op < 0.32 and len(buf) > HEADER:  # bytes overwritten
        for _ in range(rng.randint(1, 4)):
            buf[rng.randrange(HEADER, len(buf))] = rng.choice((*_INTERESTING, rng.getrandbits(8)))
    elif op < 0.44 and avps:  # an AVP's length field
        at = rng.choice(avps)
        length = rng.choice((0, 1, 7, 8, 9, 12, 0xFFFFFF, rng.randint(0, len(buf) + 64)))
        buf[at + 5 : at + 8] = length.to_bytes(3, "big")
    elif op < 0.54:  # a random AVP inserted at an AVP boundary
        at = rng.choice(avps) if avps else len(buf)
        buf[at:at] = _random_avp(rng)
    elif op < 0.62 and avps:  # an AVP repeated
        at = rng.choice(avps)
        end = min(len(buf), at + ((int.from_bytes(buf[at + 5 : at + 8], "big") + 3) & ~3))
        buf[end:end] = buf[at:end]
    elif op < 0.68 and avps:  # an AVP dropped
        at = rng.choice(avps)
        end = min(len(buf), at + ((int.from_bytes(buf[at + 5 : at + 8], "big") + 3) & ~3))
        del buf[at:end]
    elif op < 0.74:  # truncated body
        del buf[rng.randrange(HEADER, len(buf) + 1) :]
    elif op < 0.84:  # header fields: flags, command, application, version
        field = rng.randrange(4)
        if field == 0:
            buf[4] = rng.choice((*_INTERESTING, rng.getrandbits(8)))
        elif field == 1:
            buf[5:8] = rng.choice(
                (257, 258, 271, 274, 275, 280, 282, 272, 999, rng.getrandbits(24))
            ).to_bytes(3, "big")
        elif field == 2:
            buf[8:12] = rng.choice((0, 3, 4, 0xFFFFFFFF, rng.getrandbits(32))).to_bytes(4, "big")
        else:
            buf[0] = rng.choice((0, 2, 0xFF))
    elif op < 0.90:  # a nesting bomb
        buf += _nest(rng)
    elif op < 0.93:  # more AVPs than the limit (4096), about 60-120 KB
        count = rng.randint(4097, 5000)
        buf += b"".join(w.utf8(282, f"r{j:07d}.exam", flags=0x40) for j in range(count))
    elif op < 0.96:  # one huge value
        buf += w.avp(rng.choice((263, 444, 461, 30, 9999)), rng.randbytes(rng.randint(1, 60_000)))
    else:  # the header length lies (framing is lost)
        return _with_length(
            bytes(buf),
            rng.choice((0, 4, 19, 21, len(buf) + 4, len(buf) - 4, 0xFFFFFF, len(buf) * 2)),
        ), False
    return _with_length(bytes(buf) + bytes(-len(buf) % 4)), True


def _with_length(data: bytes, length: int | None = None) -> bytes:
    n = len(data) if length is None else length
    return bytes([data[0]]) + (n & 0xFFFFFF).to_bytes(3, "big") + data[4:]


def cases(seed: int, n: int, msisdn: str) -> Iterator[tuple[bytes, bool]]:
    """``n`` cases of the seed: (message, header length tells the truth). One to three
    mutations each, Hop-by-Hop / End-to-End ids unique per case."""
    rng = random.Random(seed)
    base = templates(msisdn)
    for i in range(n):
        data = rng.choice(base)
        framed = True
        for _ in range(rng.choice((1, 1, 1, 2, 3))):
            data, framed = _mutate(rng, data)
            if not framed:
                break
        ids = struct.pack(">II", 0x40000000 + i, 0x40000000 + i)
        data = data[:12] + ids + data[20:] if len(data) >= 20 else data
        if len(data) > MAX_CASE:
            data = data[:MAX_CASE]
            if framed:
                data = _with_length(data)  # still telling the truth
        yield data, framed


async def _answer_or_close(client: GyClient, barrier: int, limit: float) -> str:
    """Send a DWR and wait for its DWA ("answered"), for the connection to close
    ("closed"), or ``limit`` seconds ("stalled": neither, which no case may cause)."""
    fut: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
    client._waiting[barrier] = fut
    client.write(w.dwr(barrier))
    closed = asyncio.ensure_future(client.closed.wait())
    done, _ = await asyncio.wait(
        [cast("asyncio.Future[object]", fut), cast("asyncio.Future[object]", closed)],
        timeout=limit,
        return_when=asyncio.FIRST_COMPLETED,
    )
    closed.cancel()
    if fut in done and not fut.exception():
        return "answered"
    return "closed" if client.closed.is_set() else "stalled"


async def _lone(node: Node, data: bytes, counts: Counter[str]) -> None:
    """A case whose header lies, alone on a connection, half-closed after it."""
    client = await node.client(origin_host="fz-lone.example")
    assert client.writer is not None
    try:
        client.write(data)
        client.writer.write_eof()
    except OSError:  # the server closed first (e.g. the lie made it 5015 at once)
        pass
    try:
        await asyncio.wait_for(client.closed.wait(), 10)
        counts["lone_closed"] += 1
    except TimeoutError:
        counts["lone_left_open"] += 1  # the server kept a half-closed connection open
    for answer in client.unsolicited:
        counts[f"answer_{_code(answer)}"] += 1
    await client.close()


def _code(answer: bytes) -> str:
    try:
        return str(result_of(answer))
    except (StopIteration, Exception):
        return "none"


async def run(node: Node, seed: int, n: int, msisdn: str, batch: int = 40) -> Counter[str]:
    """Send ``n`` cases of ``seed``; returns the counts (see the module docstring). A DWA
    only says the server read the batch (CCAs may still be coming), so answers are
    counted over every connection once the server has gone quiet."""
    counts: Counter[str] = Counter()
    used: list[GyClient] = []

    async def connect() -> GyClient:
        used.append(await node.client(origin_host="fz.example"))
        return used[-1]

    client = await connect()
    barrier = 0x7F000000
    pending: list[bytes] = []

    async def flush() -> None:
        nonlocal client, barrier
        if pending:
            client.write(b"".join(pending))
            pending.clear()
            barrier += 1
            outcome = await _answer_or_close(client, barrier, 15.0)
            if outcome != "answered":
                counts[f"connection_{outcome}"] += 1
                await client.close()
                client = await connect()

    for data, framed in cases(seed, n, msisdn):
        counts["cases"] += 1
        counts["octets"] += len(data)
        if not framed:
            await flush()
            await _lone(node, data, counts)
            continue
        pending.append(data)
        if len(pending) >= batch or sum(map(len, pending)) > 256_000:
            await flush()
    await flush()
    seen = -1
    for _ in range(120):  # until no answer arrived for half a second (a minute at most)
        now = sum(len(c.unsolicited) for c in used)
        if now == seen:
            break
        seen = now
        await asyncio.sleep(0.5)
    for c in used:
        counts["answers"] += len(c.unsolicited)
        for answer in c.unsolicited:
            counts[f"answer_{_code(answer)}"] += 1
        await c.close()
    return counts
