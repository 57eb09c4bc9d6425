"""Measure the Gy fast path against the reference: µs per CCR-U (2 MSCC) decode and CCA encode.

A measurement, never a test (speed is not asserted). Run:

    .venv/bin/python -m loadtest.gy_fastpath_bench [iterations]

Decode is bytes -> ``GyRequest`` (reference: ``codec.decode`` + ``gy_parse.parse_ccr``);
encode is ``ChargingAnswer`` -> CCA bytes (reference: ``GyApplication._session_cca``).
Then a ``DiameterServer`` on 127.0.0.1 answers CCR-U from a client keeping 64 in
flight, its core a stub: CPU of the whole process (server and client in it), and
of the server process alone (the client in a child process).
Prints the best of three runs of ``iterations`` each, in CPU µs per message.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing as mp
import struct
import sys
import time
from typing import cast

import uvloop
from diameter.message.avp.grouped import (
    MultipleServicesCreditControl,
    RequestedServiceUnit,
    SubscriptionId,
    UsedServiceUnit,
)
from diameter.message.commands import CapabilitiesExchangeRequest, CreditControlRequest

from loadtest.bench_timing import best_us
from loadtest.stub_core import stub_core
from ocs.logging import configure as configure_logging
from ocs.vocabulary.types import ChargingAnswer, ServiceKey, ServiceOutcome, ServiceStatus, Usage
from protocols.diameter import fastpath
from protocols.diameter.capabilities import PeerInfo
from protocols.diameter.codec import decode
from protocols.diameter.config import DiameterConfig
from protocols.diameter.fastpath import fast_decode, reference
from protocols.diameter.gy import GyApplication
from protocols.diameter.gy_parse import parse_ccr
from protocols.diameter.local import LocalNode
from protocols.diameter.message import Limits
from protocols.diameter.server import DiameterServer


def ccr_u() -> bytes:
    """A CCR-U as a PGW sends it: 2 MSCC, each with RSU and a USU with reporting reason."""
    c = CreditControlRequest()
    c.header.application_id = 4
    c.header.is_proxyable = True
    c.header.hop_by_hop_identifier = c.header.end_to_end_identifier = 7
    c.session_id = "pgw.example;1700000000;42;7"
    c.origin_host, c.origin_realm = b"pgw.example", b"example"
    c.destination_realm = b"ocs.example"
    c.service_context_id = "32251@3gpp.org"
    c.cc_request_type, c.cc_request_number = 2, 3
    c.origin_state_id = 1700000000
    c.subscription_id = [SubscriptionId(0, "33612345678"), SubscriptionId(1, "208011234567890")]
    c.multiple_services_indicator = 1
    c.multiple_services_credit_control = [
        MultipleServicesCreditControl(
            rating_group=rg,
            requested_service_unit=RequestedServiceUnit(),
            used_service_unit=[
                UsedServiceUnit(
                    cc_total_octets=1_500_000,
                    cc_input_octets=500_000,
                    cc_output_octets=1_000_000,
                    cc_time=60,
                    reporting_reason=[3],
                )
            ],
        )
        for rg in (10, 20)
    ]
    return bytes(c.as_bytes())


def answer() -> ChargingAnswer:
    outcomes = tuple(
        ServiceOutcome(
            ServiceKey(rg),
            ServiceStatus.GRANTED,
            granted=Usage(total_octets=10_000_000),
            validity_time=3600,
            volume_threshold=1_000_000,
            quota_holding_time=600,
        )
        for rg in (10, 20)
    )
    return ChargingAnswer("pgw.example;1700000000;42;7", 3, "acct", outcomes)


def _walked(data: bytes, limits: Limits) -> object:
    fastpath.forget_layouts()  # as for a CCR whose layout is new
    return fast_decode(data, limits)


def _cer() -> bytes:
    cer = CapabilitiesExchangeRequest()
    cer.header.hop_by_hop_identifier = cer.header.end_to_end_identifier = 1
    cer.origin_host, cer.origin_realm = b"pgw.example", b"example"
    cer.host_ip_address = ["127.0.0.1"]
    cer.vendor_id, cer.product_name = 0, "bench"
    cer.auth_application_id = [4]
    cer.supported_vendor_id = [10415]
    return bytes(cer.as_bytes())


def _requests(count: int) -> tuple[bytes, list[int]]:
    """``count`` CCR-U with fresh Hop-by-Hop / End-to-End ids, back to back, and where each
    starts (built before the clock starts: the client then only slices)."""
    template = bytearray(ccr_u())
    struct.pack_into(">I", template, 4, (0xC0 << 24) | 272)
    size = len(template)
    out = bytearray(template * count)
    for i in range(count):
        struct.pack_into(">II", out, i * size + 12, i + 1, i + 1)
    return bytes(out), [i * size for i in range(count + 1)]


class _Client(asyncio.Protocol):
    """Keeps ``window`` CCRs in flight; each batch of answers read is replaced in one write."""

    def __init__(self, data: bytes, starts: list[int], window: int) -> None:
        self.data, self.starts, self.window = memoryview(data), starts, window
        self.transport: asyncio.Transport | None = None
        self.buffer = b""
        self.sent = self.received = 0
        self.cea = asyncio.get_running_loop().create_future()
        self.done = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self.transport.write(_cer())

    def data_received(self, data: bytes) -> None:
        buf = self.buffer + data if self.buffer else data
        pos, answers = 0, 0
        while len(buf) - pos >= 4:
            length = int.from_bytes(buf[pos + 1 : pos + 4], "big")
            if len(buf) - pos < length:
                break
            pos += length
            answers += 1
        self.buffer = buf[pos:]
        if not self.cea.done():
            self.cea.set_result(None)  # the CEA; then the first window of requests
            answers -= 1
            self._send(self.window)
        self.received += answers
        if self.received >= len(self.starts) - 1 and not self.done.done():
            self.done.set_result(None)
        self._send(answers)

    def _send(self, n: int) -> None:
        first, last = self.sent, min(self.sent + n, len(self.starts) - 1)
        if last > first and self.transport is not None:
            self.transport.write(self.data[self.starts[first] : self.starts[last]])
            self.sent = last


async def _client(host: str, port: int, count: int, window: int) -> int:
    """Drive ``count`` CCR-U through the server; returns how many answers came back."""
    data, starts = _requests(count)
    loop = asyncio.get_running_loop()
    transport, client = await loop.create_connection(
        lambda: _Client(data, starts, window), host, port
    )
    with contextlib.suppress(TimeoutError):  # bounded in time as well as count
        await asyncio.wait_for(client.done, 120)
    transport.close()
    return client.received


def _client_process(host: str, port: int, count: int, window: int) -> None:
    """The client alone in its own process (exit status 0: every answer came back)."""
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        received = runner.run(_client(host, port, count, window))
    sys.exit(0 if received >= count else 1)


async def _serve_run(fast_path: bool, count: int, apart: bool = False, window: int = 64) -> float:
    """CPU µs of this process per CCR-U -> CCA over loopback: the server and the client
    (``apart`` False), or the server alone, the client in a child process."""
    cfg = DiameterConfig(listen=["127.0.0.1"], port=0, fast_path=fast_path, data_dir=None)
    server = DiameterServer(cfg, LocalNode("ocs.example", "ocs.example"))
    await server.start(stub_core(answer()))
    host, port = server.addresses[0]
    if apart:
        proc = mp.get_context("spawn").Process(
            target=_client_process, args=(host, port, count, window)
        )
        start = time.process_time()
        proc.start()
        ended = asyncio.Event()
        loop = asyncio.get_running_loop()
        loop.add_reader(proc.sentinel, ended.set)  # readable once the child has exited
        await ended.wait()
        loop.remove_reader(proc.sentinel)
        proc.join()
        used = time.process_time() - start
        received = count if proc.exitcode == 0 else 0
    else:
        start = time.process_time()
        received = await _client(host, port, count, window)
        used = time.process_time() - start
    await server.stop(1.0)
    return used / max(received, 1) * 1e6


def _best_serve(fast_path: bool, n: int, apart: bool) -> float:
    best = float("inf")
    for _ in range(3):
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            best = min(best, runner.run(_serve_run(fast_path, n, apart)))
    return best


def main(n: int = 20_000) -> None:
    data, limits = ccr_u(), Limits()
    local = LocalNode("ocs.example", "ocs.example")  # the CCR's Destination-Realm
    app = GyApplication(stub_core(answer()), local)
    peer = PeerInfo("pgw.example", "example", "127.0.0.1", supported_vendors=frozenset({10415}))
    fast = fast_decode(data, limits)
    assert fast is not None
    ref = decode(data, limits)
    served = app.served
    req, ans = parse_ccr(ref, served), answer()
    assert fast.request == req
    reference_cca = app._session_cca(ref, req, ans, peer, None)
    assert app.encoder.session_cca(fast, ans, True) == reference_cca
    rows = {
        "decode reference (codec.decode + parse_ccr)": lambda: parse_ccr(
            decode(data, limits), served
        ),
        "decode fast (fast_decode)": lambda: fast_decode(data, limits),
        "decode fast, layout not yet known (walk)": lambda: _walked(data, limits),
        "encode reference (_session_cca)": lambda: app._session_cca(ref, req, ans, peer, None),
        "encode fast (CcaEncoder.session_cca)": lambda: app.encoder.session_cca(fast, ans, True),
        "reference decoding of a fast request": lambda: reference(fast),
    }
    print(f"CCR-U 2 MSCC, {len(data)} octets; CPU µs per message, best of 3 x {n}")
    for name, fn in rows.items():
        print(f"  {name:<46} {best_us(fn, n):8.1f}")
    # As `ocs serve` runs: its logging set-up (info, loggers cached on first use), uvloop.
    configure_logging("info", "console")
    print(f"server on 127.0.0.1 (uvloop), {n} CCR-U -> CCA, 64 in flight, core answering at once")
    print("(a stub returning one prebuilt answer), CPU µs per request, best of 3:")
    for fast_path in (False, True):
        for apart, what in ((False, "whole process: server + client"), (True, "server process")):
            us = _best_serve(fast_path, n, apart)
            print(f"  fast_path={fast_path!s:<5} {what:<31} {us:8.1f}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 20_000)
