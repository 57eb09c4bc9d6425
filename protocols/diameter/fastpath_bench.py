"""Measure the fast path against the reference: µs per CCR-U (2 MSCC) decode and CCA encode.

A measurement, never a test (issue 6: speed is not asserted). Run:

    .venv/bin/python -m protocols.diameter.fastpath_bench [iterations]

Decode is bytes -> ``GyRequest`` (reference: ``codec.decode`` + ``parse_ccr``);
encode is ``ChargingAnswer`` -> CCA bytes (reference: ``GyApplication._session_cca``).
Prints the best of three runs of ``iterations`` each, in CPU µs per message.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any, cast

from diameter.message.avp.grouped import (
    MultipleServicesCreditControl,
    RequestedServiceUnit,
    SubscriptionId,
    UsedServiceUnit,
)
from diameter.message.commands import CreditControlRequest

from ocs.charging.types import ChargingAnswer, ServiceKey, ServiceOutcome, ServiceStatus, Usage
from protocols.diameter.capabilities import PeerInfo
from protocols.diameter.codec import Limits, decode
from protocols.diameter.fastpath import expand, fast_decode
from protocols.diameter.gy import GyApplication
from protocols.diameter.gy_request import parse_ccr
from protocols.diameter.local import LocalNode


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


def best_us(fn: Callable[[], object], n: int) -> float:
    best = float("inf")
    for _ in range(3):
        start = time.process_time()
        for _ in range(n):
            fn()
        best = min(best, time.process_time() - start)
    return best / n * 1e6


def main(n: int = 20_000) -> None:
    data, limits = ccr_u(), Limits()
    local = LocalNode("ocs.example", "example")
    app = GyApplication(cast(Any, None), local)
    peer = PeerInfo("pgw.example", "example", "127.0.0.1", supported_vendors=frozenset({10415}))
    fast = fast_decode(data, limits)
    assert fast is not None
    assert fast.fast is not None
    ref = decode(data, limits)
    req, ans = parse_ccr(ref), answer()
    assert fast.fast.request == req
    assert app.encoder.session_cca(fast, ans, True) == app._session_cca(ref, req, ans, peer)
    rows = {
        "decode reference (codec.decode + parse_ccr)": lambda: parse_ccr(decode(data, limits)),
        "decode fast (fast_decode)": lambda: fast_decode(data, limits),
        "encode reference (_session_cca)": lambda: app._session_cca(ref, req, ans, peer),
        "encode fast (CcaEncoder.session_cca)": lambda: app.encoder.session_cca(fast, ans, True),
        "expand (reference decode of a fast message)": lambda: expand(fast),
    }
    print(f"CCR-U 2 MSCC, {len(data)} octets; CPU µs per message, best of 3 x {n}")
    for name, fn in rows.items():
        print(f"  {name:<46} {best_us(fn, n):8.1f}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 20_000)
