"""The Gy / RADIUS charging session state machine, as a table.

RFC 4006 §7 (server state machine, session based) as the session scripts
enforce it (``ocs/store/lua/session_common.lua``, ``initiate.lua``,
``update.lua``, ``terminate.lua``, ``abandon.lua``). A session is IDLE (no
state in the store), OPEN (reserving) or CLOSED (kept a day so a repeat of
an answered request gets its answer again, then forgotten). Every request
carries a request key (Gy: CC-Request-Number; RADIUS: a digest of the
packet); a key already answered is checked before anything else, in every
state, and gets the stored answer with nothing changed. A numbered key older
than the answers a session keeps (``ocs.store.layout``, "Answers") is
refused with nothing changed, in every state: it may have been answered.

"with subscriber" is a request that names its subscriber although the
session should be known: RADIUS, where an Interim or a Stop may arrive
without its Start (RFC 2866 §5.1; standards §3.4). A Gy CCR-U or CCR-T
never does, and gets UNKNOWN_SESSION (5002) for a session not open.

``tests/integration/core/test_session_states.py`` walks every row against a
real Redis.
"""

from __future__ import annotations

import enum
from typing import NamedTuple

from ocs.store.client import Store, storage_errors, text
from ocs.store.keys import AccountKeys


class State(enum.Enum):
    IDLE = "idle"  # nothing stored (never opened, or closed more than a day ago)
    OPEN = "open"
    CLOSED = "closed"  # answers kept a day for repeats


class Event(enum.Enum):
    INITIATE = "initiate"  # CCR-I, Access-Request, Accounting-Start
    UPDATE = "update"  # CCR-U, Interim-Update
    UPDATE_WITH_SUBSCRIBER = "update with subscriber"
    TERMINATE = "terminate"  # CCR-T, Accounting-Stop
    TERMINATE_WITH_SUBSCRIBER = "terminate with subscriber"
    REPEAT = "repeat"  # any request whose key was answered before
    TOO_OLD = "numbered request older than the answers kept"
    ABANDON = "abandon"  # supervision: silent past its deadline (RFC 4006 §5.5 Tcc)
    ABANDON_EARLY = "abandon before the deadline"  # a stale supervision entry
    CLOSE_FOR_OWNER = "close for its owner"  # peer restart, NAS reboot
    CLOSE_FOR_OTHER_OWNER = "close for another owner"  # the session moved peers
    DAY_PASSES = "a day passes"


class Outcome(enum.Enum):
    RESERVED = "reserved"  # usage debited, old reservation released, new one made
    RESERVED_NEW = "reserved, answer marks the session opened"
    DENIED = "usage debited, nothing reserved (service denied)"
    BLOCKED = "AccountBlocked, nothing changed"
    UNKNOWN_SESSION = "UnknownSession, nothing changed"
    RECORDED = "usage debited, everything released, record written"
    REPLAYED = "the stored answer, replayed, nothing changed"
    REFUSED_TOO_OLD = "RequestTooOld, nothing changed"
    ALIVE = "alive: its deadline, nothing changed"
    MOVED = "moved: left alone"
    GONE = "gone: nothing to close"
    FORGOTTEN = "state and answers expire"


class Row(NamedTuple):
    state: State
    event: Event
    blocked: bool  # the account is blocked
    outcome: Outcome
    next: State


S, E, R = State, Event, Outcome

TABLE: tuple[Row, ...] = (
    Row(S.IDLE, E.INITIATE, False, R.RESERVED_NEW, S.OPEN),
    Row(S.IDLE, E.INITIATE, True, R.BLOCKED, S.IDLE),
    Row(S.IDLE, E.UPDATE, False, R.UNKNOWN_SESSION, S.IDLE),
    Row(S.IDLE, E.UPDATE_WITH_SUBSCRIBER, False, R.RESERVED_NEW, S.OPEN),
    Row(S.IDLE, E.UPDATE_WITH_SUBSCRIBER, True, R.DENIED, S.OPEN),
    Row(S.IDLE, E.TERMINATE, False, R.UNKNOWN_SESSION, S.IDLE),
    Row(S.IDLE, E.TERMINATE_WITH_SUBSCRIBER, False, R.RECORDED, S.CLOSED),
    Row(S.IDLE, E.ABANDON, False, R.GONE, S.IDLE),
    Row(S.OPEN, E.INITIATE, False, R.RESERVED, S.OPEN),
    Row(S.OPEN, E.INITIATE, True, R.BLOCKED, S.OPEN),
    Row(S.OPEN, E.UPDATE, False, R.RESERVED, S.OPEN),
    Row(S.OPEN, E.UPDATE, True, R.DENIED, S.OPEN),
    Row(S.OPEN, E.UPDATE_WITH_SUBSCRIBER, False, R.RESERVED, S.OPEN),
    Row(S.OPEN, E.TERMINATE_WITH_SUBSCRIBER, False, R.RECORDED, S.CLOSED),
    Row(S.OPEN, E.TERMINATE, False, R.RECORDED, S.CLOSED),
    Row(S.OPEN, E.TERMINATE, True, R.RECORDED, S.CLOSED),
    Row(S.OPEN, E.REPEAT, False, R.REPLAYED, S.OPEN),
    Row(S.OPEN, E.TOO_OLD, False, R.REFUSED_TOO_OLD, S.OPEN),
    Row(S.OPEN, E.ABANDON, False, R.RECORDED, S.CLOSED),
    Row(S.OPEN, E.ABANDON_EARLY, False, R.ALIVE, S.OPEN),
    Row(S.OPEN, E.CLOSE_FOR_OWNER, False, R.RECORDED, S.CLOSED),
    Row(S.OPEN, E.CLOSE_FOR_OTHER_OWNER, False, R.MOVED, S.OPEN),
    Row(S.CLOSED, E.REPEAT, False, R.REPLAYED, S.CLOSED),
    Row(S.CLOSED, E.TOO_OLD, False, R.REFUSED_TOO_OLD, S.CLOSED),
    Row(S.CLOSED, E.INITIATE, False, R.UNKNOWN_SESSION, S.CLOSED),
    Row(S.CLOSED, E.UPDATE, False, R.UNKNOWN_SESSION, S.CLOSED),
    Row(S.CLOSED, E.UPDATE_WITH_SUBSCRIBER, False, R.UNKNOWN_SESSION, S.CLOSED),
    Row(S.CLOSED, E.TERMINATE, False, R.UNKNOWN_SESSION, S.CLOSED),
    Row(S.CLOSED, E.TERMINATE_WITH_SUBSCRIBER, False, R.UNKNOWN_SESSION, S.CLOSED),
    Row(S.CLOSED, E.ABANDON, False, R.GONE, S.CLOSED),
    Row(S.CLOSED, E.DAY_PASSES, False, R.FORGOTTEN, S.IDLE),
)

CLOSED_KEPT = 86400  # seconds a closed session and its answers are kept


async def read_state(client: Store, keys: AccountKeys, session_id: str) -> State:
    """The state the store holds for one session (for tools and tests)."""
    async with storage_errors():
        st = await client.hget(keys.session(session_id), "st")
    if st is None:
        return State.IDLE
    return State.OPEN if text(st) == "open" else State.CLOSED
