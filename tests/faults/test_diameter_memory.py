"""Memory of `ocs serve` under large refused messages, then fuzz (what a peer makes us hold).

The probe that found it: after CER, CCRs of about 120 KB with more than 4,096 AVPs
(answered 5012), each of which used to stay in memory (600 of them: RSS 76 ->
1,086 MB, held past the duplicate window), then fuzzed messages (100,000: 1.54 GB).
Here the server runs with small configured bounds (duplicate cache 8 MiB, 16 MiB in
flight per process) and the resident memory of its process must stay within
``BOUND_MIB`` of what it was after CER: the configured bounds plus room for the
interpreter's own caches and allocator. The fast case runs in the default suite;
the probe's size carries the ``faults`` marker.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from tests.faults import diameter_fuzz
from tests.faults.diameter_node import Node, ocs_node
from tests.integration.diameter.gy_client import result_of
from tests.unit.diameter import diam_wire as w

DIAMETER = (
    "duplicate_cache_bytes: 8388608, "
    "limits: {max_in_flight_bytes: 4194304, max_in_flight_bytes_total: 16777216}"
)
BOUND_MIB = 50  # what we accept: within +50 MB after the same probes


def big_ccr(i: int) -> bytes:
    """About 120 KB: 5,000 Route-Record AVPs after a CCR-I's required ones."""
    relays = [w.utf8(282, f"relay{j:05d}.exam", flags=0x40) for j in range(5000)]
    return w.ccr(*relays, session=f"gw;big;{i}", hbh=0x100000 + i, e2e=0x100000 + i)


async def clean_session(node: Node) -> None:
    """A new subscriber's CCR-I / U / T is served and charged exactly: 2,500 + 500 octets at
    10 micro per started 1,000 of the session's usage, 30 micro."""
    msisdn = node.account(money=1_000_000)
    client = await node.client(origin_host=f"gw-{uuid.uuid4().hex[:6]}.example")
    sub = w.grouped(443, w.u32(450, 0), w.utf8(444, msisdn))
    rsu = w.grouped(437)
    session = f"gw;clean;{uuid.uuid4().hex}"
    steps = [
        (1, 0, w.grouped(456, w.u32(432, 10), rsu)),
        (2, 1, w.grouped(456, w.u32(432, 10), rsu, w.grouped(446, w.u64(421, 2500)))),
        (3, 2, w.grouped(456, w.u32(432, 10), w.grouped(446, w.u64(421, 500)))),
    ]
    for kind, number, mscc in steps:
        hbh = 0x200000 + number
        msg = w.ccr(
            sub,
            w.u32(455, 1),
            mscc,
            session=session,
            req_type=kind,
            number=number,
            hbh=hbh,
            e2e=hbh,
        )
        assert result_of(await client.send_raw(msg, limit=30)) == 2001
    await client.close()
    assert node.balance(msisdn) == (1_000_000 - 30, 0, 0)  # 3,000 octets, nothing held


async def probe(tmp_path: Path, large: int, fuzz_cases: int, seed: int) -> None:
    async with ocs_node(tmp_path, diameter=DIAMETER) as node:
        client = await node.client()
        await clean_session(node)  # the charging path warmed up, as a serving node is
        before = node.rss_mib()
        codes: dict[int, int] = {}
        for i in range(large):
            answer = await client.send_raw(big_ccr(i), limit=30)
            codes[result_of(answer)] = codes.get(result_of(answer), 0) + 1
        after_large = node.rss_mib()
        await client.close()
        msisdn = node.account()
        counts = await diameter_fuzz.run(node, seed, fuzz_cases, msisdn)
        await clean_session(node)
        after = node.rss_mib()
        print(
            f"\nmemory probe: {large} refused CCRs of {len(big_ccr(0))} octets -> {codes}; "
            f"{fuzz_cases} fuzz cases (seed {seed}) -> {dict(sorted(counts.items()))}\n"
            f"RSS after CER {before:.1f} MiB, after the large ones {after_large:.1f} MiB, "
            f"after the fuzz {after:.1f} MiB (+{after - before:.1f}; bound +{BOUND_MIB})"
        )
        assert codes == {5012: large}
        assert counts["cases"] == fuzz_cases and counts["connection_stalled"] == 0
        assert after_large - before < BOUND_MIB
        assert after - before < BOUND_MIB


async def test_large_refused_messages_then_fuzz_keep_memory_bounded(tmp_path: Path) -> None:
    """150 refused 120 KB CCRs (5012), then 2,000 fuzz cases: RSS within +50 MiB, and a
    clean session is still served and charged exactly."""
    await probe(tmp_path, large=150, fuzz_cases=2000, seed=5)


@pytest.mark.faults
@pytest.mark.timeout(600)
async def test_the_issues_probe_keeps_memory_bounded(tmp_path: Path) -> None:
    """The probe: 600 refused 120 KB CCRs, then 20,000 fuzz cases: RSS grows little."""
    await probe(tmp_path, large=600, fuzz_cases=20_000, seed=13)
