"""Slow and idle peers against `ocs serve` over real sockets (the fault suite's peer
class).

- A peer that never reads its answers: the server stops reading its requests once its
  answers pile up (TCP back-pressure), holds a bounded amount of memory for it, serves
  the other peers as usual, and when the peer reads again every request it wrote is
  answered, none lost.
- A peer that goes silent after CER, in the middle of a message, and one that never
  reads: the watchdog sends DWR after Tw and closes the connection after the second Tw
  (we stopped reading the second, so its DWA never comes); a connection that never
  sends its CER is closed after cer_timeout; the other peers are unaffected.
Counts and RSS are printed; no speed is asserted.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.faults.diameter_node import Node, ocs_node
from tests.faults.test_diameter_memory import BOUND_MIB, DIAMETER, clean_session
from tests.unit.diameter import diam_wire as w

TOTAL = 16 << 20  # limits.max_in_flight_bytes_total in DIAMETER


class DeafPeer:
    """A gateway that does its CER, then writes requests and reads nothing until told."""

    def __init__(self, node: Node, name: str) -> None:
        self.node = node
        self.name = name
        self.written = 0
        self.octets = 0
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.node.port)
        self.writer.write(w.cer(host=self.name))
        head = await self.reader.readexactly(20)
        await self.reader.readexactly(int.from_bytes(head[1:4], "big") - 20)

    async def write_until_blocked(self, message: bytes, limit: int = 200_000) -> None:
        """Write ``message`` (fresh ids each time) until the server stops taking them."""
        assert self.writer is not None
        batch = 20
        while self.written < limit:
            data = b"".join(
                message[:12] + (0x30000000 + self.written + i).to_bytes(4, "big") * 2 + message[20:]
                for i in range(batch)
            )
            self.writer.write(data)
            try:
                await asyncio.wait_for(self.writer.drain(), 1.0)
            except TimeoutError:
                self.written += batch  # written to our buffer: the server will read them
                self.octets += len(data)
                return
            self.written += batch
            self.octets += len(data)
        raise AssertionError(f"the server read {limit} requests from a peer that never reads")

    async def read_answers(self, within: float = 120.0, slowly: bool = False) -> dict[int, int]:
        """Read until every request written is answered (``slowly``: 20 ms of nothing
        after every 50 answers); their Result-Codes."""
        assert self.reader is not None
        codes: dict[int, int] = {}
        seen: set[int] = set()
        async with asyncio.timeout(within):
            while len(seen) < self.written:
                head = await self.reader.readexactly(20)
                body = await self.reader.readexactly(int.from_bytes(head[1:4], "big") - 20)
                if head[4] & 0x80:  # a request of the server's (a DWR): not an answer
                    continue
                seen.add(int.from_bytes(head[12:16], "big"))
                if slowly and len(seen) % 50 == 0:
                    await asyncio.sleep(0.02)
                code = _result_code(body)
                codes[code] = codes.get(code, 0) + 1
        return codes

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.transport.abort()


def _result_code(body: bytes) -> int:
    pos = 0
    while pos + 12 <= len(body):
        code = int.from_bytes(body[pos : pos + 4], "big")
        length = int.from_bytes(body[pos + 5 : pos + 8], "big")
        if code == 268:
            return int.from_bytes(body[pos + 8 : pos + 12], "big")
        pos += (length + 3) & ~3
    return 0


def unknown_subscriber_ccr(padding: int) -> bytes:
    """A CCR-I for nobody (5030), with a Proxy-Info of ``padding`` octets echoed back."""
    sub = w.grouped(443, w.u32(450, 0), w.utf8(444, "990000000000000"))
    proxy = w.grouped(284, w.utf8(280, "proxy.example"), w.avp(33, b"p" * padding))
    rsu = w.grouped(456, w.u32(432, 10), w.grouped(437))
    return w.ccr(sub, w.u32(455, 1), rsu, proxy, session=f"deaf;{uuid.uuid4().hex}")


async def deaf_peers(
    tmp_path: Path, peers: int, padding: int, per_peer: int, slowly: bool = False
) -> None:
    """``peers`` that do not read, each allowed ``per_peer`` octets in flight (16 MiB for
    all: room left for the others)."""
    limits = f"max_message_size: {per_peer}, max_in_flight_bytes: {per_peer}"
    diameter = DIAMETER.replace("max_in_flight_bytes: 4194304", limits)
    async with ocs_node(tmp_path, diameter=diameter) as node:
        await clean_session(node)
        before = node.rss_mib()
        deaf = [DeafPeer(node, f"deaf{i}.example") for i in range(peers)]
        for peer in deaf:
            await peer.open()
        message = unknown_subscriber_ccr(padding)
        for peer in deaf:
            await peer.write_until_blocked(message)
        health = await served_what_it_read(node)
        blocked = node.rss_mib()
        await clean_session(node)  # another peer, served while these do not read
        codes = [await peer.read_answers(slowly=slowly) for peer in deaf]
        after = node.rss_mib()
        for peer in deaf:
            await peer.close()
        written = sum(p.written for p in deaf)
        octets = sum(p.octets for p in deaf)
        print(
            f"\n{peers} peers that do not read: {written} requests of {len(message)} octets "
            f"({octets} octets) written before the server stopped reading them; answers once "
            f"they read: {codes}; meanwhile in flight {health['in_flight_bytes']} octets, "
            f"write buffers {health['write_buffer_bytes']} octets, "
            f"duplicate cache {health['duplicate_cache']}; "
            f"RSS {before:.1f} -> {blocked:.1f} (not reading) -> {after:.1f} MiB "
            f"(bound +{BOUND_MIB})"
        )
        # What waits for them in user space: their share in flight, and at most one
        # read's answers each beyond it (we stop reading once 64 KiB are queued).
        assert health["write_buffer_bytes"] <= min(peers * per_peer, TOTAL) + peers * (1 << 20)
        # Each request answered: 5030 (nobody), or 3004 past the in-flight bounds.
        for c, peer in zip(codes, deaf, strict=True):
            assert set(c) <= {5030, 3004} and sum(c.values()) == peer.written, c
        assert blocked - before < BOUND_MIB and after - before < BOUND_MIB


async def served_what_it_read(node: Node) -> dict[str, Any]:
    """The Diameter /health once nothing is in flight any more (the server may be busy
    answering what it read for a few seconds: /health waits meanwhile)."""
    for _ in range(120):
        try:
            health = node.health()
        except OSError:
            health = {"in_flight": -1}
        if health["in_flight"] == 0:
            return health
        await asyncio.sleep(0.5)
    raise AssertionError(f"requests still in flight: {health}")


async def test_a_peer_that_does_not_read_then_reads_slowly(tmp_path: Path) -> None:
    """One peer writes CCRs and does not read: the server stops reading it, others are
    served, memory stays bounded; then it reads slowly and every request is answered."""
    await deaf_peers(tmp_path, peers=1, padding=2_000, per_peer=4 << 20, slowly=True)


@pytest.mark.faults
@pytest.mark.timeout(600)
async def test_many_peers_that_never_read_large_answers(tmp_path: Path) -> None:
    """Ten such peers whose answers echo a 60 KB Proxy-Info, 1 MiB in flight each."""
    await deaf_peers(tmp_path, peers=10, padding=60_000, per_peer=1 << 20)


async def test_silent_peers_are_closed_by_the_watchdog(tmp_path: Path) -> None:
    """A peer silent after CER (half a 600 KB message sent, DWRs unanswered) and a peer
    that never reads its answers are closed after two Tw, and what they held is released;
    connections that never send CER are closed after cer_timeout; a peer that answers
    its DWRs stays open and is served."""
    async with ocs_node(
        tmp_path, diameter=f"{DIAMETER}, watchdog_interval: 6, cer_timeout: 2"
    ) as node:
        await clean_session(node)
        before = node.rss_mib()
        start = asyncio.get_running_loop().time()
        mute = [await asyncio.open_connection("127.0.0.1", node.port) for _ in range(20)]
        deaf = DeafPeer(node, "deaf.example")
        await deaf.open()
        await deaf.write_until_blocked(unknown_subscriber_ccr(60_000))
        silent = await node.client(origin_host="silent.example")
        silent.answer_watchdog = False
        big = w.ccr(w.avp(9999, bytes(600_000), flags=0))
        silent.write(big[: len(big) // 2])
        alive = await node.client(origin_host="alive.example")
        for reader, _ in mute:
            assert await asyncio.wait_for(reader.read(1), 10) == b""  # closed, unanswered
        mute_closed = asyncio.get_running_loop().time() - start
        await asyncio.wait_for(silent.closed.wait(), 30)
        silent_closed = asyncio.get_running_loop().time() - start
        assert deaf.reader is not None
        with contextlib.suppress(ConnectionError):  # a reset is a close too
            while await asyncio.wait_for(deaf.reader.read(1 << 20), 30):
                pass  # what the kernel held for it, then the close
        deaf_closed = asyncio.get_running_loop().time() - start
        dwrs = [m for m in silent.server_requests if m.header.command_code == 280]
        await clean_session(node)
        assert not alive.closed.is_set()
        health = node.health()
        after = node.rss_mib()
        for _, writer in mute:
            writer.close()
        print(
            f"\nsilent peers: 20 connections without CER closed within {mute_closed:.1f} s "
            f"(cer_timeout 2); the peer silent mid-message got {len(dwrs)} DWR and was closed "
            f"after {silent_closed:.1f} s (Tw 6); the peer that never read its {deaf.written} "
            f"answers was closed after {deaf_closed:.1f} s; peers now {health['peers']}, "
            f"in flight {health['in_flight_bytes']} octets; "
            f"RSS {before:.1f} -> {after:.1f} MiB"
        )
        assert len(dwrs) >= 1
        assert health["peers"] == ["alive.example"] and health["in_flight_bytes"] == 0
        assert after - before < BOUND_MIB
        await alive.close()
