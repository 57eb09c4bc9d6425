"""Fuzz over the wire (the fault suite's fuzz class): seeded, bounded mutations
of well-formed Diameter messages (tests/faults/diameter_fuzz.py) sent to `ocs serve`
after CER. Afterwards the server still serves and charges a clean session exactly, no
batch stalled (every DWR answered or the connection closed, as after a framing error),
its metrics stay bounded, and its resident memory is within the bound the memory test
documents. Counts are printed; no speed is asserted.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.faults import diameter_fuzz
from tests.faults.diameter_node import ocs_node
from tests.faults.test_diameter_memory import BOUND_MIB, DIAMETER, clean_session


async def fuzz(tmp_path: Path, cases: int, seed: int) -> None:
    async with ocs_node(tmp_path, diameter=DIAMETER) as node:
        await clean_session(node)
        before = node.rss_mib()
        counts = await diameter_fuzz.run(node, seed, cases, node.account())
        await clean_session(node)
        after = node.rss_mib()
        labelled = [x for x in node.metrics() if x.startswith("ocs_diameter_") and "{" in x]
        print(
            f"\nfuzz (seed {seed}): {dict(sorted(counts.items()))}; RSS {before:.1f} -> "
            f"{after:.1f} MiB (+{after - before:.1f}; bound +{BOUND_MIB}); "
            f"{len(labelled)} labelled Diameter samples in /metrics"
        )
        assert counts["cases"] == cases and counts["connection_stalled"] == 0
        assert counts["answers"] > cases // 2  # most cases are requests, and answered
        assert after - before < BOUND_MIB
        assert len(labelled) < 400  # command codes picked by the fuzzer share one label


async def test_fuzz_over_the_wire(tmp_path: Path) -> None:
    """3,000 seeded cases: the server answers, closes what it cannot frame, and serves on."""
    await fuzz(tmp_path, cases=3000, seed=1)


@pytest.mark.faults
@pytest.mark.timeout(600)
async def test_fuzz_over_the_wire_long(tmp_path: Path) -> None:
    """25,000 seeded cases of another seed."""
    await fuzz(tmp_path, cases=25_000, seed=2)
