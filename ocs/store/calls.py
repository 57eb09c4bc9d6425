"""What the balance scripts take and what they answer.

The charging layer hands the store plain values (:class:`SessionArgs`,
:class:`EventArgs`, :class:`AbandonArgs`: integers, strings, a service's
tariff as six integers) and gets plain values back (:class:`SessionReply`,
:class:`EventReply`, :class:`AbandonReply`); how they travel to the Lua
scripts (the argument's encoding, the reply's) is known here only.

A script refuses a request with a short error code. The codes a request can
meet are raised as the charging API's errors; ``stale`` (the account's plan or
identities moved since the caller resolved them) as :class:`Stale`, which the
caller answers by resolving again; ``migrate`` (state of an older layout) as
:class:`~ocs.store.layout.StoreMigrationNeeded`; any other code is a defect
or a version mix and raises :class:`StoreProtocolError` naming it, never a
guess.

The session scripts (the hot path) take one msgpack *list*, positional, and
answer one: no map to build or unpack on either side, and numbers travel as
msgpack integers. Why not one ARGV entry per value: the server turns each
ARGV entry into a Lua string and the script pays ``tonumber`` on it, about
160 ns a number inside Valkey against about 60 for a list element
(measured with a loop in EVAL); a CCR-U with two services carries about 40.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import msgpack

from ocs.store.layout import StoreMigrationNeeded, script_key
from ocs.vocabulary import errors

# A price reduced to the script's integers: first units, first price, block
# units, block price, rounding (0 up, 1 down, 2 nearest), free (0/1).
TariffInts = tuple[int, int, int, int, int, int]

_pack = msgpack.Packer(use_bin_type=True).pack  # one packer: the loop is single-threaded
# The session list carries packed bytes (attributes, identities) as strings:
# the server's cmsgpack reads no bin type.
_pack_list = msgpack.Packer(use_bin_type=False).pack


class StoreProtocolError(RuntimeError):
    """The store answered something this version does not know (an unknown
    script error code, a malformed reply): a defect or two ocs versions
    sharing one Redis. Never mapped to a charging outcome."""


class Stale(Exception):
    """The account's plan or identities changed since the caller resolved
    them: resolve again and retry (the script changed nothing)."""


_REFUSALS: dict[str, type[errors.ChargingError]] = {
    "user_unknown": errors.UserUnknown,
    "blocked": errors.AccountBlocked,
    "unknown_session": errors.UnknownSession,
    "too_old": errors.RequestTooOld,
}


def refuse(code: object, subject: str) -> Exception:
    """The exception for a script's error code (``subject`` names the request)."""
    if code == "stale":
        return Stale(subject)
    if code == "migrate":
        return StoreMigrationNeeded(subject)
    kind = _REFUSALS.get(str(code))
    if kind is None:
        return StoreProtocolError(f"{subject}: unknown script error {code!r}")
    return kind(f"{subject}: {code}")


def _decode(raw: object, what: str) -> dict[str, Any]:
    if not isinstance(raw, bytes):
        raise StoreProtocolError(f"{what}: reply of type {type(raw).__name__}, expected bytes")
    try:
        value = msgpack.unpackb(raw, raw=False, strict_map_key=False)
    except (ValueError, msgpack.exceptions.ExtraData) as exc:
        raise StoreProtocolError(f"{what}: undecodable reply: {exc}") from exc
    if not isinstance(value, dict):
        raise StoreProtocolError(f"{what}: reply is not a map")
    return value


# -- sessions (initiate, update, terminate) -----------------------------------


class ReportArg(NamedTuple):
    """One usage report of one service, with the tariff(s) that rate it."""

    used: dict[str, int]  # unit name -> units (the rated unit filled in)
    cumulative: bool = False  # RADIUS counters: totals since the session began
    tariff: TariffInts | None = None  # None: the service's own tariff
    segments: tuple[tuple[int, TariffInts], ...] = ()  # (start, tariff): split by time


class ServiceArg(NamedTuple):
    """One service of a session request, rated: what to charge and reserve."""

    key: str  # ServiceKey.key(): "rg/sid"
    name: str  # the policy's service name (for the record)
    rating_group: int | None
    service_id: int | None
    unit: str  # the rated unit's name
    want: int  # units to reserve; -1: none asked
    tariff: TariffInts
    reports: tuple[ReportArg, ...] = ()
    dynamic: tuple[int, int] | None = None  # (balance share percent, minimum grant)


class SessionArgs(NamedTuple):
    """One initiate / update / terminate, ready for its script."""

    session_id: str
    request_key: str
    now: int
    account_id: str
    identity_key: str  # the identity that found the account ("" when found by session)
    plan: str  # the plan the services were rated with (checked by the script)
    ids: tuple[str, ...]  # identity keys kept with a session that opens
    owner: str
    attributes: tuple[tuple[str, str], ...]
    policy_version: str
    supervision: int  # seconds of silence before the session is abandoned
    services: Sequence[ServiceArg]
    cause: str = "normal"  # TerminationCause.value (terminate)
    create: bool = False  # may open (update) or record (terminate) an unknown session
    tax_ppm: int = 0
    low_balance: Sequence[int] = ()  # money thresholds announced when crossed


class ServiceReply(NamedTuple):
    """What the script did for one service."""

    status: str  # ServiceStatus.value
    granted: int  # units reserved
    final: bool  # the grant is the last the balance allows
    charged: int  # money debited for the reported usage
    shortfall: int  # money the balance could not cover


class SessionReply(NamedTuple):
    services: dict[str, ServiceReply]  # by service key
    opened: bool  # this call opened the session
    replayed: bool  # answered from the stored first answer, nothing changed


_NONE = -1  # a rating group or service id the service does not have
# Units travel and are stored as codes (ocs/store/lua/lib.lua UNIT_NAMES).
UNIT_CODES = {
    "money": 1,
    "total_octets": 2,
    "input_octets": 3,
    "output_octets": 4,
    "seconds": 5,
    "events": 6,
}
UNIT_NAMES = {code: name for name, code in UNIT_CODES.items()}
_STATUS_CODES = ("granted", "credit_limit_reached", "service_denied")
_ATTRS: dict[tuple[tuple[str, str], ...], bytes] = {}  # attributes, packed once


def _attributes(attrs: tuple[tuple[str, str], ...]) -> bytes:
    packed = _ATTRS.get(attrs)
    if packed is None:
        if len(_ATTRS) > 10_000:
            _ATTRS.clear()  # a bound, not an LRU: packing again is cheap
        packed = _ATTRS[attrs] = _pack(attrs) if attrs else b""
    return packed


def _service(out: list[Any], s: ServiceArg) -> None:
    out += (
        s.key,
        s.name,
        _NONE if s.rating_group is None else s.rating_group,
        _NONE if s.service_id is None else s.service_id,
        UNIT_CODES[s.unit],
        s.want,
        *s.tariff,
        _NONE if s.dynamic is None else s.dynamic[0],
        0 if s.dynamic is None else s.dynamic[1],
        len(s.reports),
    )
    for r in s.reports:
        out += (int(r.cumulative), len(r.used))
        for unit, n in r.used.items():
            out += (UNIT_CODES[unit], n)
        if r.tariff is not None:
            out += (1, *r.tariff)
        elif r.segments:
            out += (2, len(r.segments))
            for start, t in r.segments:
                out += (start, *t)
        else:
            out.append(0)


def pack_session(op: str, a: SessionArgs) -> bytes:
    """The session script's one argument (ocs/store/lua/session_common.lua)."""
    # Identities are kept when a session opens; an update that may not open
    # one sends none.
    ids = _pack(list(a.ids)) if a.ids and (op != "update" or a.create) else b""
    out: list[Any] = [
        a.now,
        script_key(a.request_key),
        a.account_id,
        a.identity_key,
        a.plan,
        int(a.create),
        a.supervision,
        a.owner,
        _attributes(a.attributes),
        ids,
        a.policy_version,
        a.cause,
        a.tax_ppm,
        a.session_id,
        len(a.low_balance),
        *a.low_balance,
        len(a.services),
    ]
    for s in a.services:
        _service(out, s)
    return _pack_list(out)  # type: ignore[no-any-return]


def read_session(raw: object, subject: str) -> SessionReply:
    """The script's reply; its refusals raised (see :func:`refuse`)."""
    if not isinstance(raw, bytes) or not raw:
        raise StoreProtocolError(f"{subject}: reply {raw!r}, expected an answer")
    head = raw[:1]
    if head == b"E":
        raise refuse(raw[1:].decode(errors="replace"), subject)
    replayed = head == b"R"  # the stored answer, as first sent
    try:
        t = msgpack.unpackb(raw[1:] if replayed else raw)
        services = {}
        for i in range(1, len(t), 6):
            services[t[i]] = ServiceReply(
                _STATUS_CODES[t[i + 1]], t[i + 2], t[i + 3] == 1, t[i + 4], t[i + 5]
            )
    except (ValueError, TypeError, IndexError, KeyError, msgpack.exceptions.ExtraData) as exc:
        raise StoreProtocolError(f"{subject}: undecodable answer: {exc!r}") from exc
    return SessionReply(services, t[0] == 1, replayed)


# -- one-shot events ----------------------------------------------------------


class EventArgs(NamedTuple):
    """One direct debit, refund or balance check, rated."""

    event_id: str
    op: str  # "debit" | "refund" | "check"
    cause: str  # the action, recorded
    now: int
    account_id: str
    identity_key: str
    plan: str
    ids: tuple[str, ...]
    owner: str
    policy_version: str
    ttl: int  # seconds the answer is kept for repeats
    tax_ppm: int
    service: ServiceArg  # want = the units; one report with the units as given
    amount: int  # refund: money credited back


class EventReply(NamedTuple):
    status: str  # ServiceStatus.value
    units: int
    cost: int
    currency: str
    enough: bool  # check: the balance covers the price
    replayed: bool


def pack_event(a: EventArgs) -> bytes:
    s = a.service
    request = {
        "eid": a.event_id,
        "now": a.now,
        "acct": a.account_id,
        "ik": a.identity_key,
        "plan": a.plan,
        "ids": list(a.ids),
        "owner": a.owner,
        "pv": a.policy_version,
        "ttl": a.ttl,
        "tax": a.tax_ppm,
        "cause": a.cause,
        "op": "check" if a.op == "check" else "debit",
        "svc": {
            "k": s.key,
            "nm": s.name,
            "rg": s.rating_group,
            "sid": s.service_id,
            "ru": s.unit,
            "u": s.want,
            "t": list(s.tariff),
            "used": s.reports[0].used if s.reports else {},
        },
        "amount": a.amount,
    }
    return _pack(request)  # type: ignore[no-any-return]


def read_event(raw: object, subject: str) -> EventReply:
    reply = _decode(raw, subject)
    if "e" in reply:
        raise refuse(reply["e"], subject)
    return EventReply(
        str(reply.get("st", "granted")),
        int(reply.get("u", 0)),
        int(reply.get("cost", 0)),
        str(reply.get("cur", "")),
        bool(reply.get("enough")),
        bool(reply.get("replay")),
    )


# -- closing a session the gateway will not close -------------------------------


class AbandonArgs(NamedTuple):
    account_id: str
    session_id: str
    now: int
    cause: str
    force: bool = False  # close whatever its deadline (peer restart, NAS reboot)
    opened_before: int = 0  # force: only sessions opened before this (0: any)
    owner: str = ""  # force: only while the session still has this owner
    tax_by_plan: dict[str, int] | None = None  # the record's tax rate, by the account's plan


class AbandonReply(NamedTuple):
    closed: bool  # released and recorded now
    alive: int | None  # still alive: its deadline
    moved: bool  # forced for an owner it no longer has: left alone
    gone: bool  # not open (never was, or already closed)


def pack_abandon(a: AbandonArgs) -> bytes:
    request = {
        "acct": a.account_id,
        "sid": a.session_id,
        "now": a.now,
        "cause": a.cause,
        "force": int(a.force),
        "before": a.opened_before,
        "owner": a.owner,
        "taxes": a.tax_by_plan or {},
    }
    return _pack(request)  # type: ignore[no-any-return]


def read_abandon(raw: object, subject: str) -> AbandonReply:
    reply = _decode(raw, subject)
    if "e" in reply:
        raise refuse(reply["e"], subject)
    alive = reply.get("alive")
    return AbandonReply(
        bool(reply.get("closed")),
        None if alive is None else int(alive),
        bool(reply.get("moved")),
        bool(reply.get("gone")),
    )
