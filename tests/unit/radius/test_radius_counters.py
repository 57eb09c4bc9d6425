"""Counter combination (standards §3.3 Gigawords, §3.4 cumulative reports) and the
idempotency key of a record."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from ocs.vocabulary.types import Usage
from protocols.radius.counters import GIGAWORD, Counters, combine, request_key, split

U32 = st.integers(0, 2**32 - 1)


@given(octets=U32, gigawords=U32)
def test_combine_is_gigawords_times_2_32_plus_octets(octets: int, gigawords: int) -> None:
    """standards §3.3: total = Gigawords x 2^32 + Octets, and split() inverts it."""
    total = combine(octets, gigawords)
    assert total == gigawords * GIGAWORD + octets
    assert split(total) == (octets, gigawords)


def test_absent_counters_stay_absent() -> None:
    assert combine(None, None) is None
    assert combine(None, 1) == GIGAWORD
    assert Counters().is_empty()
    assert Counters().total_octets is None


@given(i_oct=U32, i_gw=U32, o_oct=U32, o_gw=U32, secs=U32)
def test_counters_become_cumulative_usage(
    i_oct: int, i_gw: int, o_oct: int, o_gw: int, secs: int
) -> None:
    """The charging core gets cumulative totals: input + output = total, all ints."""
    c = Counters(combine(i_oct, i_gw), combine(o_oct, o_gw), secs)
    used = c.used_units()
    assert used.cumulative
    assert used.usage == Usage(
        total_octets=(i_gw + o_gw) * GIGAWORD + i_oct + o_oct,
        input_octets=i_gw * GIGAWORD + i_oct,
        output_octets=o_gw * GIGAWORD + o_oct,
        seconds=secs,
    )


@given(
    reports=st.lists(st.tuples(U32, st.integers(0, 3)), min_size=2, max_size=20),
)
def test_wrapping_counter_with_gigawords_is_monotonic(reports: list[tuple[int, int]]) -> None:
    """A 32-bit counter that wraps while Gigawords counts the wraps never goes down."""
    totals = []
    gw = 0
    last = 0
    for step, extra_wraps in reports:
        octets = (last + step) % GIGAWORD
        if octets < last:
            gw += 1
        gw += extra_wraps
        last = octets
        totals.append(combine(octets, gw))
    assert totals == sorted(totals)


def test_request_key_ignores_identifier_and_delay_but_not_counters() -> None:
    """standards §3.4: same (status, counters) -> same key; any counter change -> new key."""
    a = request_key(3, Counters(1, 2, 3))
    assert a == request_key(3, Counters(1, 2, 3))
    assert a != request_key(2, Counters(1, 2, 3))
    assert a != request_key(3, Counters(1, 2, 4))
    assert a != request_key(3, Counters(None, 2, 3))
