"""Session ids in Class (RFC 2865 §5.25): always small enough for one attribute, and only
the NAS that opened a session can continue it."""

from __future__ import annotations

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
