"""A notification entry that does not decode is skipped and logged, never raised:
one bad entry in a partition's stream must not end every front end's subscription
(ocs/notify.py). Before, a msgpack list payload raised AttributeError."""

from __future__ import annotations

from typing import Any

import msgpack
import pytest

from ocs.notify import _decode_entry, decode_notification
from ocs.vocabulary.types import NotificationKind

BAD: list[Any] = [
    msgpack.packb([1, 2, 3]),
    msgpack.packb(7),
    msgpack.packb("blocked"),
    msgpack.packb({"k": "blocked"}),  # no account, no session
    msgpack.packb({"k": "no-such-kind", "a": "x", "s": "y"}),
    msgpack.packb({"k": "blocked", "a": "x", "s": "y", "rg": ["ten"]}),
    b"\xc1",  # a byte msgpack never uses
    b"",
]


@pytest.mark.parametrize("payload", BAD)
def test_an_undecodable_entry_is_skipped(payload: bytes) -> None:
    assert _decode_entry({b"n": payload}) is None


def test_an_entry_without_its_field_is_skipped() -> None:
    assert _decode_entry({b"x": b"1"}) is None


def test_a_good_entry_decodes() -> None:
    payload = msgpack.packb({"k": "blocked", "a": "acct", "s": "sess", "rg": [10]})
    note = decode_notification(payload)
    assert (note.kind, note.account_id, note.session_id, note.rating_groups) == (
        NotificationKind.BLOCKED,
        "acct",
        "sess",
        (10,),
    )
    assert _decode_entry({b"n": payload}) == note
