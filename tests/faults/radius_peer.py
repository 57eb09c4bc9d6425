"""A NAS against a real `ocs serve` for the RADIUS fault tests (tests/faults).

- :func:`radius_node` writes a configuration (the suite's Redis, the test
  policies, RADIUS on free UDP ports of 127.0.0.1, metrics) and runs `ocs serve`
  on it until the test ends;
- :class:`Peer` sends requests from one UDP socket and checks every answer
  against the request with its Identifier (code, Response Authenticator,
  RFC 2865 §3): an answer that matches no request is counted, not accepted;
- :func:`metrics` reads the server's counters from ``/metrics``;
  :func:`rss_kib` its resident memory; :func:`rcvbuf_errors` the kernel's count
  of datagrams dropped for a full socket buffer (host-wide).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import signal
import socket
import struct
import subprocess
import sys
import time
import urllib.request
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, cast

import yaml
from prometheus_client.parser import text_string_to_metric_families
from pyrad import packet as rp

from ocs.store.embedded import free_port
from protocols.radius.dictionary import load_dictionary
from tests.serve_harness import ROOT, wait_for_health

SECRET = b"faults-radius-secret"
ACCOUNTING_RESPONSE = 5


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Node:
    """A running `ocs serve` with RADIUS, and where to reach it."""

    proc: subprocess.Popen[str]
    acct: tuple[str, int]
    auth: tuple[str, int]
    metrics_port: int
    log: Path  # its stderr: JSON log lines


@contextlib.contextmanager
def radius_node(
    tmp_path: Path, redis_url: str, radius: dict[str, Any] | None = None
) -> Iterator[Node]:
    """`ocs serve` with only the RADIUS front end, on the suite's Redis."""
    metrics_port, acct_port, auth_port = free_port(), free_udp_port(), free_udp_port()
    section: dict[str, Any] = {
        "listen": ["127.0.0.1"],
        "auth_port": auth_port,
        "acct_port": acct_port,
        "clients": [{"name": "nas1", "address": "127.0.0.1", "secret": SECRET.decode()}],
        "service": {"rating_group": 10},
        "identity_type": "e164",
        "dae": {"enabled": False},
    }
    section.update(radius or {})
    config = {
        "redis": {"url": redis_url},
        "policies": {"dir": str(ROOT / "tests/policies")},
        "metrics": {"port": metrics_port},
        "logging": {"format": "json", "level": "warning"},
        "radius": section,
    }
    cfg = tmp_path / "ocs.yaml"
    cfg.write_text(yaml.safe_dump(config))
    log = tmp_path / "serve.log"
    with log.open("w") as out, serving_to(cfg, out) as proc:
        wait_for_health(metrics_port)
        yield Node(proc, ("127.0.0.1", acct_port), ("127.0.0.1", auth_port), metrics_port, log)
        assert proc.poll() is None, f"ocs serve exited with {proc.returncode}"


@contextlib.contextmanager
def serving_to(cfg: Path, out: IO[str]) -> Iterator[subprocess.Popen[str]]:
    """`ocs serve` with its stderr in ``out`` (the test reads it afterwards)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "ocs", "--config", str(cfg), "serve"],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=out,
        text=True,
    )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def log_events(node: Node, event: str) -> list[dict[str, Any]]:
    """The server's JSON log events named ``event``."""
    found = []
    for line in node.log.read_text().splitlines():
        with contextlib.suppress(ValueError):
            record = json.loads(line)
            if isinstance(record, dict) and record.get("event") == event:
                found.append(record)
    return found


def accounting(ident: int, secret: bytes = SECRET, **attrs: Any) -> bytes:
    """A signed Accounting-Request; attribute names with ``_`` for ``-``."""
    pkt = rp.AcctPacket(id=ident, secret=secret, dict=load_dictionary())
    for name, value in attrs.items():
        pkt.AddAttribute(name.replace("_", "-"), value)
    return bytes(pkt.RequestPacket())


def answers_request(request: bytes, answer: bytes, secret: bytes = SECRET) -> bool:
    """``answer`` is the authentic Accounting-Response to ``request`` (RFC 2866 §3)."""
    if len(answer) < 20 or answer[0] != ACCOUNTING_RESPONSE or answer[1] != request[1]:
        return False
    length = struct.unpack_from("!H", answer, 2)[0]
    body = answer[:length]
    want = hashlib.md5(body[:4] + request[4:20] + body[20:] + secret).digest()
    return want == body[4:20]


@dataclass
class Peer(asyncio.DatagramProtocol):
    """One NAS socket. ``pending`` holds the request sent with each Identifier (the last
    one); every answer is checked against it."""

    pending: dict[int, bytes] = field(default_factory=dict)
    answers: dict[bytes, int] = field(default_factory=lambda: defaultdict(int))
    unmatched: int = 0
    received: int = 0
    sent: int = 0
    transport: asyncio.DatagramTransport | None = None
    event: asyncio.Event = field(default_factory=asyncio.Event)

    @classmethod
    async def open(cls) -> Peer:
        loop = asyncio.get_running_loop()
        _, proto = await loop.create_datagram_endpoint(cls, local_addr=("127.0.0.1", 0))
        return proto

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[Any, ...]) -> None:
        self.received += 1
        request = self.pending.get(data[1]) if len(data) > 1 else None
        if request is not None and answers_request(request, data):
            self.answers[request] += 1
        else:
            self.unmatched += 1
        self.event.set()

    def send(self, raw: bytes, dest: tuple[str, int]) -> None:
        assert self.transport is not None
        if len(raw) > 1:
            self.pending[raw[1]] = raw
        self.sent += 1
        if raw:
            self.transport.sendto(raw, dest)
        else:  # asyncio's transports silently skip empty datagrams; the kernel sends them
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as plain:
                plain.sendto(raw, dest)

    def answered(self, request: bytes) -> int:
        return self.answers.get(request, 0)

    async def exchange(self, raw: bytes, dest: tuple[str, int], within: float = 10.0) -> bool:
        """Send ``raw`` (re-sent every 2 s, as a NAS does) until it is answered."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while loop.time() < deadline:
            self.send(raw, dest)
            if await self.wait_for(raw, min(2.0, deadline - loop.time())):
                return True
        return False

    async def wait_for(self, raw: bytes, within: float) -> bool:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while not self.answered(raw) and loop.time() < deadline:
            self.event.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.event.wait(), deadline - loop.time())
        return self.answered(raw) > 0

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


def metrics(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of the server's /metrics: (name, sorted labels) -> value."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    out: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def settled_metrics(
    port: int, within: float = 30.0
) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """/metrics once the server's RADIUS counters stop moving (requests in flight done)."""
    deadline = time.monotonic() + within
    last = metrics(port)
    while time.monotonic() < deadline:
        time.sleep(0.5)
        now = metrics(port)
        if all(
            total(now, name) == total(last, name)
            for name in (
                "ocs_radius_responses_total",
                "ocs_radius_drops_total",
                "ocs_radius_requests_total",
            )
        ):
            return now
        last = now
    return last


def total(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str) -> float:
    return sum(v for (n, _), v in samples.items() if n == name)


def by_label(
    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, label: str
) -> dict[str, float]:
    out: dict[str, float] = defaultdict(float)
    for (n, labels), value in samples.items():
        if n == name:
            out[dict(labels).get(label, "")] += value
    return dict(out)


def rss_kib(pid: int) -> int:
    """Resident memory of ``pid`` (VmRSS)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS for pid {pid}")


def rcvbuf_errors() -> int:
    """UDP datagrams the kernel dropped for a full receive buffer, host-wide."""
    lines = [ln.split() for ln in Path("/proc/net/snmp").read_text().splitlines()]
    names, values = [ln for ln in lines if ln[0] == "Udp:"][:2]
    return int(values[names.index("RcvbufErrors")])


class Fleet:
    """NAS sockets enough for ``count`` requests in flight, each its own Identifier: request
    ``i`` goes from socket ``i // 256`` with Identifier ``i % 256``."""

    def __init__(self, peers: list[Peer]) -> None:
        self.peers = peers
        self.requests: dict[int, bytes] = {}

    @classmethod
    async def open(cls, count: int) -> Fleet:
        return cls([await Peer.open() for _ in range(-(-count // 256))])

    @staticmethod
    def identifier(i: int) -> int:
        return i % 256

    def send(self, i: int, raw: bytes, dest: tuple[str, int]) -> None:
        assert raw[1] == i % 256, "build request i with Fleet.identifier(i)"
        self.requests[i] = raw
        self.peers[i // 256].send(raw, dest)

    def unanswered(self) -> list[int]:
        return [i for i, raw in self.requests.items() if not self.peers[i // 256].answered(raw)]

    async def settle(self, dest: tuple[str, int], within: float, resend_after: float = 3.0) -> int:
        """Wait until every request is answered, re-sending the unanswered ones unchanged
        every ``resend_after`` seconds as a NAS does; how many re-sends it took."""
        loop = asyncio.get_running_loop()
        deadline, resent = loop.time() + within, 0
        next_resend = loop.time() + resend_after
        while (missing := self.unanswered()) and loop.time() < deadline:
            if loop.time() >= next_resend:
                for i in missing:
                    self.peers[i // 256].send(self.requests[i], dest)
                resent += len(missing)
                next_resend = loop.time() + resend_after
            await asyncio.sleep(0.1)
        return resent

    @property
    def unmatched(self) -> int:
        return sum(p.unmatched for p in self.peers)

    def close(self) -> None:
        for peer in self.peers:
            peer.close()
