"""Duplicate storms against `ocs serve` over real sockets (the fault
suite's duplicate class): T-flag re-sends, re-sends on a second connection, re-sends
while the original is in flight, the same request under a new End-to-End id, and
End-to-End ids colliding across sessions (see tests/faults/diameter_storm.py). Every
answer must match its request, nothing may be charged twice or left reserved: the
account is read back from the server's Redis. Counts are printed; no speed is asserted.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.faults.diameter_node import ocs_node
from tests.faults.diameter_storm import CHARGE_PER_SESSION, storm

MONEY = 1_000_000_000
COLLISIONS = "ocs_diameter_end_to_end_collisions_total"


async def run_storm(tmp_path: Path, sessions: int, seed: int, id_space: int, parallel: int) -> None:
    async with ocs_node(tmp_path) as node:
        msisdn = node.account(money=MONEY)
        clients = [await node.client(origin_host="gw.storm.example") for _ in range(2)]
        before = node.metric(COLLISIONS)
        result = await storm(clients, msisdn, sessions, seed, id_space, parallel)
        collisions = node.metric(COLLISIONS) - before
        for client in clients:
            await client.close()
        money, reserved, open_sessions = node.balance(msisdn)
        charged, expected = MONEY - money, CHARGE_PER_SESSION * sessions
        print(
            f"\nduplicate storm (seed {seed}, {id_space} End-to-End ids): "
            f"{dict(sorted(result.counts.items()))}; colliding ids served as new requests: "
            f"{int(collisions)}; charged {charged} for {expected} acknowledged "
            f"(extra {charged - expected}); reserved {reserved}; sessions open {open_sessions}"
        )
        assert not result.problems, result.problems[:10]
        assert result.counts["requests"] == 4 * sessions
        assert (charged, reserved, open_sessions) == (expected, 0, 0)
        assert collisions > 0  # the ids did collide across sessions


async def test_duplicate_storm(tmp_path: Path) -> None:
    """120 sessions x 4 CCRs, every kind of re-send, 64 End-to-End ids for all of them:
    each answer is its own request's, 0 extra charges, nothing left reserved."""
    await run_storm(tmp_path, sessions=120, seed=1, id_space=64, parallel=20)


@pytest.mark.faults
@pytest.mark.timeout(600)
async def test_duplicate_storm_long(tmp_path: Path) -> None:
    """2,000 sessions x 4 CCRs, 4,096 End-to-End ids (the probe's scale)."""
    await run_storm(tmp_path, sessions=2000, seed=2, id_space=4096, parallel=50)
