"""RAR / ASR bodies (RFC 4006 §3.3, RFC 6733 §8.5; standards §2.1)."""

from __future__ import annotations

from diameter.message import Message

from ocs.vocabulary.types import Notification, NotificationKind
from protocols.diameter.answers import request
from protocols.diameter.capabilities import PeerInfo
from protocols.diameter.constants import Command
from protocols.diameter.local import LocalNode
from protocols.diameter.pushes import push_avps

LOCAL = LocalNode("ocs.example", "example")
PEER = PeerInfo("pgw.example", "pgw-realm.example", "127.0.0.1")


def _encode(note: Notification, command: Command) -> Message:
    return Message.from_bytes(
        request(command, 4, 1, 2, push_avps(note, LOCAL, PEER, command), proxyable=True),
        plain_msg=True,
    )


def test_rar_authorize_only_scoped_to_one_rating_group() -> None:
    """RAR: Session-Id first, Destination-Host/Realm of the peer, app 4, AUTHORIZE_ONLY, Rating-Group."""
    note = Notification(
        NotificationKind.TOPUP, "a1", "s;1", "diameter:pgw.example", rating_groups=(10,)
    )
    msg = _encode(note, Command.RE_AUTH)
    values = {a.code: a.value for a in msg.avps}
    assert msg.avps[0].code == 263 and values[263] == "s;1"
    assert values[293] == b"pgw.example" and values[283] == b"pgw-realm.example"
    assert values[258] == 4 and values[285] == 0 and values[432] == 10
    assert msg.header.is_request and msg.header.is_proxyable and msg.header.application_id == 4


def test_rar_for_whole_session_and_asr() -> None:
    """Several or no rating groups: the RAR covers the session; the ASR has no Re-Auth-Request-Type."""
    note = Notification(
        NotificationKind.BLOCKED, "a1", "s;2", "diameter:pgw.example", rating_groups=(10, 20)
    )
    rar = {a.code for a in _encode(note, Command.RE_AUTH).avps}
    assert 432 not in rar and 285 in rar
    asr = {a.code for a in _encode(note, Command.ABORT_SESSION).avps}
    assert 285 not in asr and {263, 264, 296, 283, 293, 258} <= asr
