"""Property: the Python tariff function and the Lua one agree to the micro-unit."""

from __future__ import annotations

import msgpack
from hypothesis import given, settings
from hypothesis import strategies as st

from ocs.charging.api import ChargingService
from ocs.charging.rating import TariffParams, cost
from ocs.store.scripts import script_source

PROBE = (
    "\nbind()\nlocal a = cmsgpack.unpack(ARGV[1])\n"
    "return {cost(a.t, 1, a.u), affordable(a.t, 1, a.c0, a.want, a.money)}\n"
)

tariffs = st.builds(
    TariffParams,
    first_units=st.integers(0, 10_000),
    first_price=st.integers(0, 100_000),
    block_units=st.integers(1, 10**7),
    block_price=st.integers(0, 10**6),
    rounding=st.integers(0, 2),
    free=st.booleans(),
)


@settings(max_examples=600, deadline=None)
@given(
    t=tariffs,
    u=st.integers(0, 10**12),
    c0=st.integers(0, 10**9),
    want=st.integers(0, 10**9),
    money=st.integers(0, 10**9),
)
async def test_lua_cost_equals_python_cost(
    charging: ChargingService, t: TariffParams, u: int, c0: int, want: int, money: int
) -> None:
    """cost() in lib.lua equals ocs.charging.rating.cost; affordable() is the largest affordable grant."""
    lib = script_source("abandon").split("-- abandon.lua")[0]
    arg = msgpack.packb({"t": list(t.ints()), "u": u, "c0": c0, "want": want, "money": money})
    lua_cost, grant = await charging.redis.eval(lib + PROBE, 0, arg)
    assert lua_cost == cost(t, u)
    base = cost(t, c0)
    assert 0 <= grant <= want
    assert cost(t, c0 + grant) - base <= money
    if grant < want:
        assert cost(t, c0 + grant + 1) - base > money
