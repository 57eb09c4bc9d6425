"""How a RADIUS session maps to a charging session (RFC 2866 §5.5, RFC 2865 §5.25).

The charging session id is ``radius:<nas>:<Acct-Session-Id>``; an
Access-Request without Acct-Session-Id gets a generated id. Either way the id
goes back to the NAS in Class (25), which the NAS echoes in its accounting
(RFC 2865 §5.25), so the Start continues the session the Access-Request opened;
an id too long for Class (253 octets) is replaced by digests of the NAS and the id.
A Class naming another NAS's session is ignored (a NAS cannot charge onto
another's session). ``owner`` is ``radius:<nas>``: Accounting-On/Off closes
every session of that owner, and notifications come back tagged with it.

The attributes kept with the session are what RFC 5176 §3 needs to name it in a
Disconnect/CoA (User-Name, Acct-Session-Id, Framed-IP-Address,
Calling-Station-Id, NAS-IP-Address/Identifier) plus where to send it. They are
echoed as the octets received: a text attribute whose octets are not UTF-8 is
kept as text for logs (backslash escapes, which are not reversible) and, under
``<key>_octets``, as the hex of its octets, which the Disconnect/CoA sends back.
"""

from __future__ import annotations

import hashlib
import secrets
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

CLASS_PREFIX = b"ocs:"
OWNER_PREFIX = "radius:"

# Keys of SessionRef.attributes (protocol-neutral strings).
A_NAS_IP = "nas_ip"
A_NAS_ID = "nas_identifier"
A_ACCT_SESSION_ID = "acct_session_id"
A_USER_NAME = "user_name"
A_FRAMED_IP = "framed_ip"
A_CALLING_STATION_ID = "calling_station_id"
A_SOURCE = "source"  # the address the NAS sent from: default DAE destination
A_CLIENT = "client"  # configured client name
OCTETS_SUFFIX = "_octets"  # <key>_octets: hex of a text attribute that is not UTF-8


def nas_key(nas_ip: str | None, nas_identifier: str | None, source: str) -> str:
    """The NAS's name: NAS-IP-Address, else NAS-Identifier, else the source address."""
    return nas_ip or nas_identifier or source


def owner_of(nas: str) -> str:
    return f"{OWNER_PREFIX}{nas}"


def accounting_session_id(nas: str, acct_session_id: str) -> str:
    return f"{OWNER_PREFIX}{nas}:{acct_session_id}"


def generated_session_id(nas: str) -> str:
    return f"{OWNER_PREFIX}{nas}:ocs-{secrets.token_hex(8)}"


def class_for(session_id: str) -> bytes:
    return CLASS_PREFIX + session_id.encode()


MAX_ATTRIBUTE = 253  # octets of one attribute's value (RFC 2865 §5)


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def authorised_session_id(nas: str, acct_session_id: str | None) -> str:
    """The session id an Access-Request opens: as :func:`accounting_session_id` (or
    generated), unless Class could not carry it (more than 253 octets with its prefix:
    a long NAS-Identifier or Acct-Session-Id, or a binary one written 4 characters an
    octet); then ``radius:#<digest of nas>:#<digest of the id>``, which the NAS echoes."""
    if acct_session_id:
        sid = accounting_session_id(nas, acct_session_id)
    else:
        sid = generated_session_id(nas)
    if len(class_for(sid)) <= MAX_ATTRIBUTE:
        return sid
    return f"{OWNER_PREFIX}#{_digest(nas)}:#{_digest(sid)}"


def session_from_class(nas: str, classes: tuple[bytes, ...]) -> str | None:
    """The charging session id we put in Class, if the NAS echoed one of ours (a Class
    naming another NAS's session is ignored)."""
    own = (f"{OWNER_PREFIX}{nas}:".encode(), f"{OWNER_PREFIX}#{_digest(nas)}:".encode())
    for value in classes:
        if value.startswith(CLASS_PREFIX) and value[len(CLASS_PREFIX) :].startswith(own):
            try:
                return value[len(CLASS_PREFIX) :].decode()
            except UnicodeDecodeError:
                return None
    return None


# One str per key, shared by every session that holds it (LiveSessions counts the values).
_OCTETS_KEYS = {
    k: k + OCTETS_SUFFIX for k in (A_NAS_ID, A_ACCT_SESSION_ID, A_USER_NAME, A_CALLING_STATION_ID)
}


def octets_key(key: str) -> str:
    return _OCTETS_KEYS.get(key) or key + OCTETS_SUFFIX


def binary_attributes(values: Iterable[tuple[str, bytes | None]]) -> tuple[tuple[str, str], ...]:
    """``(<key>_octets, hex)`` for each value that is not UTF-8 (usually none)."""
    out: list[tuple[str, str]] = []
    for key, raw in values:
        if raw is None:
            continue
        try:
            raw.decode()
        except UnicodeDecodeError:
            out.append((octets_key(key), raw.hex()))
    return tuple(out)


def echo_octets(attributes: Mapping[str, str], key: str) -> bytes | None:
    """The octets to send back for ``key``: those received, else its text in UTF-8."""
    hexed = attributes.get(octets_key(key))
    if hexed:
        try:
            return bytes.fromhex(hexed)
        except ValueError:
            pass  # not ours (hand-edited?): fall back to the text
    text = attributes.get(key)
    return text.encode() if text else None


def pack_attributes(values: Mapping[str, str | None]) -> tuple[tuple[str, str], ...]:
    return tuple((k, v) for k, v in values.items() if v)


# What one live session costs beyond its session id's and attribute values' characters:
# the LiveSession, its dict, the ordered dict's link and the id's str object
# (ENTRY_OVERHEAD), and per attribute its value's str object and dict slot
# (ATTRIBUTE_OVERHEAD; the keys are shared constants). Measured with tracemalloc on
# CPython 3.11 (per entry: 300 + id for none, 595 for 2 attributes of 10 characters,
# 1,090 for 8 of 10, 7,430 for 12 of 500), rounded up so that the bound holds.
ENTRY_OVERHEAD = 400
ATTRIBUTE_OVERHEAD = 100


@dataclass(slots=True)
class LiveSession:
    """What this worker last saw of a session: for CoA sizing and DAE targeting."""

    attributes: dict[str, str]
    total_octets: int = 0
    seconds: int = 0
    cost: int = 0  # octets counted for it (see ENTRY_OVERHEAD)


def _cost(session_id: str, attributes: dict[str, str]) -> int:
    values = sum([len(v) + ATTRIBUTE_OVERHEAD for v in attributes.values()])
    return ENTRY_OVERHEAD + len(session_id) + values


class LiveSessions:
    """Bounded LRU of sessions seen by this worker (hints only: the core is the truth).

    At most ``max_entries`` sessions and ``max_bytes`` octets, an entry counted as its
    session id, its attribute values and the overheads above (a session's attributes
    are a fixed set of keys, but a value may be 253 octets, or 4 characters an octet when
    not UTF-8, and its hex beside it: an entry counts from about 1.4 KB, typically, to
    about 9 KB). The least recently seen go first.
    """

    def __init__(self, max_entries: int = 100_000, max_bytes: int = 160 << 20) -> None:
        self._max = max_entries
        self._max_bytes = max_bytes
        self.bytes = 0
        self._items: OrderedDict[str, LiveSession] = OrderedDict()

    def __len__(self) -> int:
        return len(self._items)

    def seen(
        self,
        session_id: str,
        attributes: Iterable[tuple[str, str]],
        total: int | None,
        seconds: int | None,
    ) -> None:
        """Remember a session's attributes (``(key, value)`` pairs) and totals."""
        live = self._items.get(session_id)
        if live is None:
            attrs = dict(attributes)
            live = LiveSession(attrs, cost=_cost(session_id, attrs))
            self._items[session_id] = live
            self.bytes += live.cost
        else:
            current = live.attributes
            changed = False
            for key, value in attributes:
                if current.get(key) != value:
                    current[key] = value
                    changed = True
            if changed:  # (usually not: a NAS sends the same attributes every time)
                cost = _cost(session_id, current)
                self.bytes += cost - live.cost
                live.cost = cost
            self._items.move_to_end(session_id)
        if total is not None:
            live.total_octets = total
        if seconds is not None:
            live.seconds = seconds
        items = self._items
        while len(items) > self._max or (self.bytes > self._max_bytes and len(items) > 1):
            self.bytes -= items.popitem(last=False)[1].cost

    def get(self, session_id: str) -> LiveSession | None:
        return self._items.get(session_id)

    def forget(self, session_id: str) -> None:
        live = self._items.pop(session_id, None)
        if live is not None:
            self.bytes -= live.cost

    def forget_owner(self, owner: str) -> None:
        prefix = owner + ":"
        for sid in [s for s in self._items if s.startswith(prefix)]:
            self.bytes -= self._items.pop(sid).cost
