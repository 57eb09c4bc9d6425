"""Measure the RADIUS accounting front end: CPU µs per Accounting-Request, per stage and whole.

A measurement, never a test (speed is not asserted). Run:

    .venv/bin/python -m loadtest.radius_bench [requests]

The charging core is a stub that answers at once, so only the RADIUS side
(and the event loop) costs CPU. Requests are what a BNG sends: sessions of one
Start, eight Interim-Updates and one Stop, each with ~20 attributes (counters
with Gigawords, Event-Timestamp, Class, a vendor attribute).

Stages (best of three loops, CPU µs per call): the pieces of
``Pipeline.prepare`` and ``Pipeline.process`` called one by one on an
Interim-Update. Whole process: ``RadiusFrontend`` on 127.0.0.1 (uvloop, info
logging as ``ocs serve``) driven over UDP by a client in the same process
with 64 requests in flight; the client's own cost is measured against a
no-op responder on the same harness and printed too (subtract it).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import sys
import time
from collections.abc import Coroutine
from typing import Any

import uvloop
from pyrad import packet as rp

from loadtest.bench_timing import best_us
from loadtest.stub_core import stub_core
from ocs.logging import configure as configure_logging
from ocs.vocabulary.types import ChargingAnswer, ServiceKey, ServiceOutcome, ServiceStatus, Usage
from protocols.radius import metrics as m
from protocols.radius.accounting_record import parse_accounting, parse_wire
from protocols.radius.codec import (
    ACCOUNTING_RESPONSE,
    PortKind,
    decode_request,
    encode_reply,
    encode_reply_pyrad,
)
from protocols.radius.dictionary import load_dictionary
from protocols.radius.dupcache import DuplicateCache
from protocols.radius.frontend import RadiusFrontend
from protocols.radius.pipeline import Pipeline, Prepared
from protocols.radius.sessions import LiveSessions
from protocols.radius.settings import RadiusConfig

SECRET = b"bench-secret"
INTERIMS_PER_SESSION = 8
WINDOW = 64
RUN_SECONDS = 60.0  # each whole-process run is also bounded in time


def config() -> RadiusConfig:
    return RadiusConfig.model_validate(
        {
            "listen": ["127.0.0.1"],
            "auth_port": None,
            "acct_port": 0,
            "clients": [{"name": "bng1", "address": "127.0.0.1/32", "secret": SECRET.decode()}],
            "service": {"rating_group": 10},
        }
    )


def accounting_request(status: int, session: int, step: int, ident: int) -> bytes:
    """One Accounting-Request as a BNG sends it (RFC 2866 §5, RFC 2869 §5)."""
    pkt = rp.AcctPacket(id=ident, secret=SECRET, dict=load_dictionary())
    total_in, total_out = step * 3_000_000_000, step * 9_000_000_000
    attrs: list[tuple[str, Any]] = [
        ("Acct-Status-Type", status),
        ("User-Name", f"3361{session:07d}"),
        ("NAS-IP-Address", "192.0.2.1"),
        ("NAS-Identifier", "bng1.example"),
        ("NAS-Port", 1000 + session),
        ("NAS-Port-Type", 15),
        ("Service-Type", 2),
        ("Framed-Protocol", 1),
        ("Framed-IP-Address", f"10.{session >> 16 & 255}.{session >> 8 & 255}.{session & 255}"),
        ("Calling-Station-Id", f"02:00:00:{session >> 16 & 255:02x}:00:{session & 255:02x}"),
        ("Called-Station-Id", "bng1-uplink"),
        ("Acct-Session-Id", f"81{session:08x}"),
        ("Acct-Authentic", 1),
        ("Acct-Delay-Time", 0),
        ("Event-Timestamp", 1_700_000_000 + step * 600),
        ("Class", b"ocs-bench-class"),
        ("Mikrotik-Realm", "example"),
    ]
    if status != 1:
        attrs += [
            ("Acct-Input-Octets", total_in & 0xFFFFFFFF),
            ("Acct-Output-Octets", total_out & 0xFFFFFFFF),
            ("Acct-Input-Gigawords", total_in >> 32),
            ("Acct-Output-Gigawords", total_out >> 32),
            ("Acct-Input-Packets", step * 1000),
            ("Acct-Output-Packets", step * 3000),
            ("Acct-Session-Time", step * 600),
        ]
    if status == 2:
        attrs.append(("Acct-Terminate-Cause", 1))
    for name, value in attrs:
        pkt.AddAttribute(name, value)
    return bytes(pkt.RequestPacket())


def workload(n: int) -> list[bytes]:
    """``n`` requests: sessions of Start, Interims, Stop, interleaved as many NAS users do."""
    per = INTERIMS_PER_SESSION + 2
    out: list[bytes] = []
    session = 0
    while len(out) < n:
        group = range(session, session + WINDOW)
        for step in range(per):
            status = 1 if step == 0 else 2 if step == per - 1 else 3
            out.extend(accounting_request(status, s, step, len(out) & 255) for s in group)
        session += WINDOW
    return out[:n]


def answer() -> ChargingAnswer:
    granted = ServiceOutcome(
        ServiceKey(10), ServiceStatus.GRANTED, granted=Usage(total_octets=10_000_000)
    )
    return ChargingAnswer("s", 1, "acct", (granted,))


ANSWER = answer()  # built once: its construction is the core's cost, not RADIUS's


def run_now(coro: Coroutine[Any, Any, Any]) -> Any:
    """Run a coroutine that never suspends (the stub core answers at once)."""
    try:
        coro.send(None)
    except StopIteration as stop:
        return stop.value
    raise RuntimeError("coroutine suspended")


def stages(n: int) -> dict[str, float]:
    """CPU µs of each piece of the request path, on one Interim-Update."""
    cfg = config()
    pipeline = Pipeline(cfg, stub_core(ANSWER), LiveSessions(), lambda s, c: None)
    data = accounting_request(3, 7, 3, 9)
    req = decode_request(data, PortKind.ACCT, SECRET)
    rec = parse_wire(req.raw, req.first)
    client = pipeline.clients.lookup("127.0.0.1")
    assert client is not None
    mapper = pipeline._accounting
    dups = DuplicateCache()
    key = ("127.0.0.1", 4000, req.identifier, req.authenticator)
    expected = hashlib.md5(data[:4] + bytes(16) + data[20:] + SECRET).digest()
    assert expected == req.authenticator

    def dup_round() -> None:
        dups.begin(key, 1.0)
        dups.complete(key, b"x", 1.0)

    def metrics() -> None:
        m.inc(m.REQUESTS, "bng1", "accounting_request")
        m.inc(m.ACCT_OUTCOMES, "bng1", "interim", "charged")
        m.inc(m.RESPONSES, "bng1", "accounting_response")

    def prepared() -> Prepared:
        return Prepared(req, client, "127.0.0.1", PortKind.ACCT, key)

    def prepare() -> object:
        result = pipeline.prepare(data, "127.0.0.1", 4000, PortKind.ACCT)
        pipeline._dups.complete(key, None, 0.0)  # forget it: the next call is new again
        return result

    def process() -> object:
        pipeline._dups.begin(key, 0.0)  # what prepare did for this request
        return run_now(pipeline.process(prepared()))

    pkt = req.packet
    return {
        "client lookup (source -> NAS)": best_us(lambda: pipeline.clients.lookup("127.0.0.1"), n),
        "decode (frame, attribute walk, auth check)": best_us(
            lambda: decode_request(data, PortKind.ACCT, SECRET), n
        ),
        "  of which authenticator check (MD5)": best_us(
            lambda: hashlib.md5(data[:4] + bytes(16) + data[20:] + SECRET).digest(),
            n,
        ),
        "  reference: pyrad packet": best_us(
            lambda: rp.AcctPacket(packet=data, secret=SECRET, dict=load_dictionary()), n
        ),
        "record (attributes -> AcctRecord)": best_us(lambda: parse_wire(req.raw, req.first), n),
        "  reference: parse_accounting(pyrad packet)": best_us(lambda: parse_accounting(pkt), n),
        "mapping (AcctRecord -> charging call, stub)": best_us(
            lambda: run_now(mapper.handle(rec, client, "127.0.0.1", 1_700_003_000)), n
        ),
        "response encode": best_us(lambda: encode_reply(req, ACCOUNTING_RESPONSE), n),
        "  reference: pyrad": best_us(lambda: encode_reply_pyrad(req, ACCOUNTING_RESPONSE), n),
        "duplicate cache (begin + complete)": best_us(dup_round, n),
        "metrics (3 labelled counters)": best_us(metrics, n),
        "Pipeline.prepare (whole, no dup hit)": best_us(prepare, n),
        "Pipeline.process (whole, stub core)": best_us(process, n),
    }


class _Client(asyncio.DatagramProtocol):
    """Keeps ``window`` requests in flight; counts answers."""

    def __init__(self, requests: list[bytes], window: int) -> None:
        self.requests = requests
        self.window = window
        self.sent = self.received = 0
        self.transport: Any = None
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def start(self) -> None:
        for _ in range(min(self.window, len(self.requests))):
            self._send_next()

    def _send_next(self) -> None:
        if self.sent < len(self.requests):
            self.transport.sendto(self.requests[self.sent])
            self.sent += 1

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.received += 1
        if self.received >= len(self.requests):
            if not self.done.done():
                self.done.set_result(None)
            return
        self._send_next()


class _Noop(asyncio.DatagramProtocol):
    """The Python floor: an empty Accounting-Response, nothing decoded (loadtest/noop.py)."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: Any = transport

    def datagram_received(self, data: bytes, addr: Any) -> None:
        head = bytes((5, data[1], 0, 20))
        self.transport.sendto(head + hashlib.md5(head + data[4:20] + SECRET).digest(), addr)


async def _drive(requests: list[bytes], dest: tuple[str, int]) -> tuple[float, int]:
    """CPU seconds of this process and answers received, for all requests sent."""
    loop = asyncio.get_running_loop()
    transport, client = await loop.create_datagram_endpoint(
        lambda: _Client(requests, WINDOW), remote_addr=dest
    )
    start = time.process_time()
    client.start()
    with contextlib.suppress(TimeoutError):  # lost datagrams: report what came back
        await asyncio.wait_for(asyncio.shield(client.done), RUN_SECONDS)
    used = time.process_time() - start
    transport.close()
    return used, client.received


async def serve_run(requests: list[bytes]) -> tuple[float, int]:
    frontend = RadiusFrontend(config())
    await frontend.start(stub_core(ANSWER))
    try:
        used, got = await _drive(requests, frontend.addresses(PortKind.ACCT)[0])
    finally:
        await frontend.stop(1.0)
    return used / max(got, 1) * 1e6, got


async def noop_run(requests: list[bytes]) -> tuple[float, int]:
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(_Noop, local_addr=("127.0.0.1", 0))
    try:
        used, got = await _drive(requests, transport.get_extra_info("sockname")[:2])
    finally:
        transport.close()
    return used / max(got, 1) * 1e6, got


def main(n: int = 20_000) -> None:
    # As `ocs serve` runs: info-level JSON logging (debug events filtered), uvloop.
    configure_logging("info", "json")
    print(f"Interim-Update, {len(accounting_request(3, 7, 3, 9))} octets; CPU µs per call")
    for name, us in stages(n).items():
        print(f"  {name:<48} {us:8.1f}")
    requests = workload(n)
    print(f"UDP 127.0.0.1 (uvloop), {n} Accounting-Requests, {WINDOW} in flight, best of 3:")
    for label, run in (("no-op responder (client + loop)", noop_run), ("ocs RADIUS", serve_run)):
        best, got = float("inf"), 0
        for _ in range(3):
            with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
                us, got = runner.run(run(requests))
            best = min(best, us)
        print(f"  {label:<34} CPU µs per request (whole process) {best:8.1f}  ({got} answered)")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 20_000)
