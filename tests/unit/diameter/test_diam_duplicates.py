"""Duplicate cache: the same request gets its first answer; a colliding End-to-End id is a
new request (RFC 6733 §6.1.3, RFC 8506 §5.7; standards §1.7, §2.5)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from protocols.diameter.codec import decode
from protocols.diameter.duplicates import (
    COLLISION,
    ENTRY_OVERHEAD,
    MISS,
    DuplicateCache,
    Hit,
    Key,
    Pending,
    request_key,
)
from protocols.diameter.fastpath import fast_decode
from protocols.diameter.message import Limits
from tests.unit.diameter.diam_wire import ccr, dwr, grouped, u32, utf8


def key(e2e: int, session: str = "gw;1", number: int = 0, host: str = "gw") -> Key:
    return (host, e2e, 272, session, 1 if number == 0 else 2, number)


def test_duplicates_identical_answer_any_hop_by_hop() -> None:
    """standards §1.7: a repeat gets the identical answer; only Hop-by-Hop differs."""
    cache: DuplicateCache[str] = DuplicateCache()
    k = key(42)
    assert cache.begin(k, 1, 0.0, "conn-a") is MISS
    # T-flagged copy while the original is in flight, on another connection of the peer
    assert isinstance(cache.begin(k, 2, 1.0, "conn-b"), Pending)
    answer = dwr(1)
    waiting = cache.complete(k, answer, 1.0)
    assert waiting == [("conn-b", answer[:12] + (2).to_bytes(4, "big") + answer[16:])]
    hit = cache.begin(k, 3, 100.0, "conn-a")
    assert isinstance(hit, Hit)
    assert hit.answer[16:] == answer[16:]
    assert cache.begin(k, 4, 400.0, "conn-a") is MISS  # window >= 4 min, then gone


def test_colliding_end_to_end_id_is_a_new_request() -> None:
    """RFC 6733 §3 random low bits: another Session-Id (or CC-Request-Number) under the same
    (Origin-Host, End-to-End id) is served as new and counted; each keeps its own answer."""
    cache: DuplicateCache[str] = DuplicateCache()
    a, b, c = key(7, "gw;a"), key(7, "gw;b"), key(7, "gw;a", number=1)
    assert cache.begin(a, 1, 0.0, "x") is MISS
    assert cache.begin(b, 2, 0.0, "x") is COLLISION  # a still in flight: b does not wait
    cache.complete(b, b"answer-b" + bytes(12), 0.5)
    assert cache.begin(c, 3, 0.6, "x") is COLLISION  # same session, another request number
    cache.complete(a, b"answer-a" + bytes(12), 1.0)
    cache.complete(c, b"answer-c" + bytes(12), 1.0)
    for k, hbh, tag in ((a, 4, b"answer-a"), (b, 5, b"answer-b"), (c, 6, b"answer-c")):
        hit = cache.begin(k, hbh, 2.0, "x")
        assert isinstance(hit, Hit) and hit.answer.startswith(tag)
    assert cache.collisions == 2
    assert cache.begin(key(7, host="other"), 7, 2.0, "x") is MISS  # another Origin-Host


def test_duplicate_release_forgets_transient_answers() -> None:
    """A 3004 is not replayed: the next repeat is served afresh; waiters still get it."""
    cache: DuplicateCache[str] = DuplicateCache()
    k = key(7)
    cache.begin(k, 1, 0.0, "a")
    cache.begin(k, 2, 0.0, "b")
    assert [w for w, _ in cache.release(k, dwr(1))] == ["b"]
    assert cache.begin(k, 3, 1.0, "a") is MISS  # not a collision with itself


def test_duplicate_cache_is_bounded_by_entries() -> None:
    """The cache never holds more answers than its bound, the oldest leaving first."""
    cache: DuplicateCache[None] = DuplicateCache(max_entries=10)
    for i in range(50):
        cache.begin(key(i), i, 0.0, None)
        cache.complete(key(i), dwr(i), 0.0)
    assert len(cache) == 10
    assert isinstance(cache.begin(key(49), 1, 0.0, None), Hit)
    assert cache.begin(key(0), 1, 0.0, None) is MISS


def test_duplicate_cache_is_bounded_by_bytes() -> None:
    """The answers held never cost more than ``max_bytes``, whatever the peers send."""
    big = bytes(10_000)
    cost = len(big) + len("gw;1") + ENTRY_OVERHEAD
    cache: DuplicateCache[None] = DuplicateCache(max_bytes=5 * cost)
    for i in range(40):
        cache.begin(key(i), i, 0.0, None)
        cache.complete(key(i), big, 0.0)
        assert cache.bytes <= cache.max_bytes
    assert len(cache) == 5 and cache.bytes == 5 * cost
    assert isinstance(cache.begin(key(39), 1, 0.0, None), Hit)


def test_duplicate_expiry_after_the_oldest_left_early() -> None:
    """Entries leave at their own expiry (a window after their answer), whatever left before."""
    cache: DuplicateCache[str] = DuplicateCache(window=300.0)
    cache.begin(key(1), 1, 0.0, "a")
    cache.begin(key(2), 2, 10.0, "a")
    cache.complete(key(2), dwr(2), 10.0)
    cache.release(key(1), dwr(1))
    assert isinstance(cache.begin(key(2), 3, 305.0, "a"), Hit)  # expires at 310
    assert cache.begin(key(2), 4, 311.0, "a") is MISS
    assert len(cache) == 1  # only the fresh request of that last Miss, in flight
    assert cache.bytes == 0


def test_request_key_is_the_same_on_both_decoders() -> None:
    """The fast path and the reference decoder give one CCR the same key."""
    data = ccr(
        grouped(443, u32(450, 0), utf8(444, "33612345678")),
        u32(455, 1),
        grouped(456, u32(432, 10), grouped(437)),
        session="gw;abc;1",
        req_type=2,
        number=5,
        e2e=0xABCDE,
    )
    fast = fast_decode(data, Limits())
    ref = decode(data, Limits())
    assert fast is not None and ref.problem is None
    assert request_key("gw", fast) == request_key("gw", ref)
    assert request_key("gw", ref) == ("gw", 0xABCDE, 272, "gw;abc;1", 2, 5)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(0, 3),  # End-to-End id: a tiny space, so ids collide all the time
            st.sampled_from(["gw;a", "gw;b", "gw;c"]),
            st.integers(0, 2),  # CC-Request-Number
            st.booleans(),  # answered before the next request arrives
        ),
        max_size=60,
    )
)
def test_an_answer_is_only_ever_replayed_to_its_own_request(
    requests: list[tuple[int, str, int, bool]],
) -> None:
    """Whatever collides, a Hit or a waiting repeat gets the answer of the same request."""
    cache: DuplicateCache[Key] = DuplicateCache(max_entries=1000)
    open_: list[Key] = []
    now = 0.0
    for e2e, session, number, answer_now in requests:
        now += 1.0
        k = key(e2e, session, number)
        lookup = cache.begin(k, 9, now, k)
        if isinstance(lookup, Hit):
            assert lookup.answer[16:] == repr(k).encode()
        elif lookup is MISS or lookup is COLLISION:
            open_.append(k)
        if answer_now and open_:
            done = open_.pop(0)
            answer = bytes(16) + repr(done).encode()
            for waiter, copy in cache.complete(done, answer, now):
                assert waiter == done and copy[16:] == repr(done).encode()
