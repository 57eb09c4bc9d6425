"""The server never stops answering: random bytes over TCP, and many requests in flight."""

from __future__ import annotations

import asyncio
import uuid

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client import REGISTRY

from protocols.diameter.server import DiameterServer
from tests.core_fixtures import NewAccount
from tests.integration.diameter.conftest import NewClient, StartServer
from tests.integration.diameter.gy_client import GyClient, mscc, rsu
from tests.unit.diameter import diam_wire as w

garbage = st.one_of(
    st.binary(min_size=1, max_size=300),
    st.builds(
        lambda body: w.message(272, body + bytes(-len(body) % 4), app=4, flags=0xC0),
        st.binary(max_size=200),
    ),
    st.builds(lambda body: w.ccr(body + bytes(-len(body) % 4)), st.binary(max_size=120)),
)


async def test_random_bytes_never_take_the_server_down(
    gy_server: DiameterServer, new_client: NewClient, gy: GyClient
) -> None:
    """Random bytes after CER (framed or not): the server answers or closes that
    connection, and keeps serving everyone else (standards §1.8)."""
    host, port = gy_server.addresses[0]
    loop = asyncio.get_running_loop()
    inputs: list[bytes] = []

    @settings(
        max_examples=150,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(garbage)
    def collect(data: bytes) -> None:
        inputs.append(data)

    collect()
    for data in inputs:
        c = GyClient(host, port, origin_host=f"fuzz-{uuid.uuid4().hex[:8]}.example")
        await c.connect()
        await c.cer()
        c.write(data)
        await asyncio.sleep(0)
        await c.close()
    assert (await gy.dwr()).result_code == 2001
    assert loop.is_running()
    for _ in range(50):  # every fuzz connection is gone: nothing leaks
        if len(gy_server.node.connections) == 1:  # type: ignore[union-attr]
            break
        await asyncio.sleep(0.05)
    assert len(gy_server.node.connections) == 1  # type: ignore[union-attr]


async def test_many_requests_in_flight_on_one_connection(
    gy: GyClient, new_account: NewAccount
) -> None:
    """200 CCR-I written back to back on one connection are all answered, each with its ids."""
    acct = await new_account(money=100_000_000)
    calls = [
        gy.call(
            gy.ccr(f"gw;inflight;{uuid.uuid4().hex}", 1, 0, acct.identity.value, [mscc(10, rsu())])
        )
        for _ in range(200)
    ]
    answers = await asyncio.gather(*calls)
    assert [a.result_code for a in answers] == [2001] * 200
    assert len({a.session_id for a in answers}) == 200


async def test_connection_past_max_connections_is_closed_at_once(
    start_server: StartServer, new_client: NewClient
) -> None:
    """limits.max_connections: the next connection is closed before any read (no CEA, the
    server keeps serving the others), counted; once one closes, a new one is served."""
    server = await start_server(limits={"max_connections": 2})
    refused = "ocs_diameter_connections_refused_total"
    before = REGISTRY.get_sample_value(refused) or 0.0
    first = await new_client(server, origin_host="one.example")
    await new_client(server, origin_host="two.example")
    extra = GyClient(*server.addresses[0], origin_host="three.example")
    await extra.connect()
    extra.write(w.cer(host="three.example"))
    await asyncio.wait_for(extra.closed.wait(), 5)  # EOF, and no CEA came back
    assert extra.unsolicited == []
    await extra.close()
    assert REGISTRY.get_sample_value(refused) == before + 1
    assert (await first.dwr()).result_code == 2001
    await first.close()
    for _ in range(50):
        if len(server.node.connections) == 1:  # type: ignore[union-attr]
            break
        await asyncio.sleep(0.05)
    await new_client(server, origin_host="four.example")  # room again: CEA 2001
