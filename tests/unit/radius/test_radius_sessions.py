"""Session ids in Class (RFC 2865 §5.25): always small enough for one attribute, and only
the NAS that opened a session can continue it. The per-worker live-session hints: bounded
in octets."""

from __future__ import annotations

import tracemalloc

from protocols.radius import sessions as ss


def test_a_short_id_is_kept_as_it_is() -> None:
    """The common case: Class carries radius:<nas>:<Acct-Session-Id> itself."""
    assert ss.authorised_session_id("10.0.0.1", "s1") == "radius:10.0.0.1:s1"


def test_ids_too_long_for_class_become_digests_that_only_their_nas_can_continue() -> None:
    """A 250-octet NAS-Identifier and Acct-Session-Id: Class fits in 253 octets; the same
    NAS gets the session back from it, another NAS does not."""
    nas, other = "n" * 250, "m" * 250
    sid = ss.authorised_session_id(nas, "s" * 250)
    klass = ss.class_for(sid)
    assert len(klass) <= ss.MAX_ATTRIBUTE
    assert ss.authorised_session_id(nas, "s" * 250) == sid  # stable: a re-auth finds it
    assert ss.session_from_class(nas, (klass,)) == sid
    assert ss.session_from_class(other, (klass,)) is None
    assert len(ss.class_for(ss.authorised_session_id(nas, None))) <= ss.MAX_ATTRIBUTE


def _attributes(i: int, size: int) -> tuple[tuple[str, str], ...]:
    """A session's attributes, each value ``size`` characters (a NAS may send 253 octets,
    their hex twice as long when they are not UTF-8)."""
    keys = (ss.A_NAS_ID, ss.A_USER_NAME, ss.A_ACCT_SESSION_ID, ss.A_CALLING_STATION_ID)
    # (the front end's keys: shared constants, as ss.binary_attributes gives them)
    texts = tuple((k, f"{i:08d}".ljust(size, "x")) for k in keys)
    return texts + tuple((ss.octets_key(k), "ab" * (size // 2)) for k in keys)


def test_live_sessions_are_bounded_in_octets() -> None:
    """Sessions with the largest attributes a NAS can send fill the per-worker hints only
    up to max_bytes: what is held (tracemalloc) stays under it, the newest kept."""
    bound = 4 << 20
    live = ss.LiveSessions(max_entries=100_000, max_bytes=bound)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for i in range(3000):
            live.seen(f"radius:nas:{i:08d}".ljust(300, "s"), _attributes(i, 500), i, i)
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert live.bytes <= bound and held <= bound
    assert 300 < len(live) < 3000  # many, not all: the oldest went first
    assert live.get(f"radius:nas:{2999:08d}".ljust(300, "s")) is not None
    assert live.get(f"radius:nas:{0:08d}".ljust(300, "s")) is None


def test_live_sessions_count_what_they_hold() -> None:
    """The octets counted follow every change: a value that grows, a forgotten session, a
    NAS restart; an entry's overheads are not undercounted (tracemalloc)."""
    live = ss.LiveSessions()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for i in range(2000):
            live.seen(f"radius:10.0.0.{i % 2}:{i}", _attributes(i, 20), None, None)
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert held <= live.bytes
    grown = _attributes(5, 200)
    live.seen("radius:10.0.0.1:5", grown, 10, 20)
    costs = sum(ss._cost(sid, e.attributes) for sid, e in live._items.items())
    assert live.bytes == costs
    live.forget("radius:10.0.0.1:5")
    live.forget_owner("radius:10.0.0.0")
    assert len(live) == 999
    live.forget_owner("radius:10.0.0.1")
    assert len(live) == 0 and live.bytes == 0
