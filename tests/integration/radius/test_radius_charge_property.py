"""Property: whatever the NAS's retransmissions and re-sends, a session is charged exactly
the price of its final cumulative total (standards §3.4; real core, real Redis, real UDP)."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from ocs.accounts import Accounts, BucketSpec
from ocs.charging.api import ChargingService
from ocs.policy.loader import load_policies
from ocs.store.client import connect
from ocs.vocabulary.types import Identity, IdentityType, UnitType
from protocols.radius.frontend import RadiusFrontend
from tests.integration.radius.conftest import Server, radius_config
from tests.integration.radius.radius_harness import Nas
from tests.integration.radius.test_radius_accounting import acct, money

POLICIES = Path(__file__).parents[2] / "policies"
MONEY = 10**12

# One NAS action: report `grow` more octets (maybe crossing 2^32), or re-send the
# last record unchanged (same Identifier: retransmission) or with a new Identifier
# and Acct-Delay-Time (a re-sent record).
Action = tuple[str, int]
ACTIONS = st.lists(
    st.one_of(
        st.tuples(st.just("grow"), st.integers(0, 50_000)),
        st.tuples(st.just("grow"), st.sampled_from([2**32 - 1, 2**32 + 7, 3 * 2**31])),
        st.tuples(st.just("retransmit"), st.just(0)),
        st.tuples(st.just("resend"), st.just(0)),
    ),
    max_size=8,
)


def price(total: int) -> int:
    return -(-total // 1000) * 10  # tests/policies: 10 micro per started 1000 octets


async def scenario(redis_url: str, actions: list[Action], stop_twice: bool) -> None:
    client = connect(redis_url)
    charging = await ChargingService.connect(client, load_policies(POLICIES))
    accounts = await Accounts.connect(client)
    ident = Identity(IdentityType.E164, "77" + str(uuid.uuid4().int)[:13])
    account = await accounts.create([ident], "basic", "EUR", [BucketSpec(UnitType.MONEY, MONEY)])
    fe = RadiusFrontend(radius_config(dae_port=9, dae={"enabled": False}))
    await fe.start(charging)
    nas = await Nas.open()
    try:
        server = Server(fe)
        sid, user = "prop-" + uuid.uuid4().hex[:10], ident.value
        ids = iter(range(1, 256))
        total, last = 0, bytes(acct(user, sid, "Start", next(ids)).RequestPacket())
        assert await nas.send(last, server.acct) is not None

        def record(status: str, delay: int = 0) -> bytes:
            octets, gigawords = total % 2**32, total // 2**32
            extra = {"Acct_Delay_Time": delay} if delay else {}
            pkt = acct(
                user,
                sid,
                status,
                next(ids),
                Acct_Input_Octets=octets,
                Acct_Input_Gigawords=gigawords,
                **extra,
            )
            return bytes(pkt.RequestPacket())

        for kind, grow in actions:
            if kind == "grow":
                total += grow
                last = record("Interim-Update")
            elif kind == "resend":
                last = record("Interim-Update", delay=3)
            assert await nas.send(last, server.acct) is not None
        stop = record("Stop")
        assert await nas.send(stop, server.acct) is not None
        if stop_twice:
            assert await nas.send(record("Stop", delay=2), server.acct) is not None
        assert await money(accounts, account) == (MONEY - price(total), 0)
    finally:
        nas.close()
        await fe.stop(1.0)
        await client.aclose()


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(actions=ACTIONS, stop_twice=st.booleans())
@example(  # the 32-bit counter wraps: only Gigawords keep the total growing
    actions=[("grow", 1000), ("grow", 2**32 - 1), ("retransmit", 0), ("resend", 0)],
    stop_twice=True,
)
def test_charged_exactly_once_whatever_the_nas_resends(
    redis_url: str, actions: list[Action], stop_twice: bool
) -> None:
    """Random Interims (some crossing 2^32), retransmissions and re-sent records, then a
    Stop (maybe sent twice): the balance drops by exactly price(final total)."""
    asyncio.run(scenario(redis_url, actions, stop_twice))
