"""An account statement: opening balance, every change in time order, closing balance.

The balance is the account's **booked money**: what its money buckets hold
plus what its open sessions have been charged so far. A session's charge is
booked when it closes, as one line (its charged-session record), whatever
its interim debits were; direct debits and refunds are booked when they
happen (their records), operator changes when they are made (their audit
entries: create, top-up, adjustment, expiry, renewal). So

    opening + sum(changes) = closing, exactly, in integer micro-units,

and the closing balance of a statement to now is the account's booked money
now. The statement is anchored at the present: one script
(``snapshot.lua``) reads the booked money and where the partition's record
and audit streams end, at one instant; every record and audit entry of the
account after ``to`` (up to that instant) is taken back from it to get the
closing balance, and those between ``from`` and ``to`` from that to get the
opening one. What the streams still hold bounds ``from`` (``export``'s
retention, 7 days by default: :class:`ocs.history.Trimmed` before that).

Not a line, by design: money a bucket loses by reaching its expiry time
inside a charging script (that script writes no audit entry); an operator's
expiry (``expire``) is one. An open session's usage shows as ``pending``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import msgpack

from ocs.audit import AuditEntry
from ocs.charging.records import ChargedRecord
from ocs.history import account_audit, account_records, id_key
from ocs.store.client import Store, storage_errors
from ocs.store.keys import AccountKeys
from ocs.store.layout import StoreMigrationNeeded
from ocs.store.scripts import Scripts
from ocs.vocabulary.errors import UserUnknown

MAX_ID_SEQ = 2**64 - 1


@dataclass(frozen=True, slots=True)
class Line:
    """One change of the booked money."""

    entry_id: str
    at_ms: int
    source: str  # "record" | "audit"
    kind: str  # session, event, refund | create, topup, adjust, expire, renew, ...
    change: int  # micro-units, signed
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Statement:
    account: str
    currency: str
    from_ms: int
    to_ms: int
    opening: int
    closing: int
    lines: tuple[Line, ...]
    booked_now: int  # money buckets now + pending
    pending: int  # charged so far by the open sessions (booked when they close)
    open_sessions: int


def record_line(entry_id: str, rec: ChargedRecord) -> Line:
    return Line(
        entry_id,
        id_key(entry_id)[0],
        "record",
        rec.kind,
        -rec.charged,
        record_detail(rec),
    )


def record_detail(rec: ChargedRecord) -> dict[str, Any]:
    """What a statement line (and ``ocs account records --json``) shows of a charged
    record: integers, each service's usage and charge."""
    return {
        "record_id": rec.record_id,
        "session": rec.session,
        "cause": rec.cause,
        "start": rec.start,
        "end": rec.end,
        "charged": rec.charged,
        "tax": rec.tax,
        "services": [
            {"service": s.service, "name": s.name, "used": s.used, "charged": s.charged}
            for s in rec.services
        ],
    }


def audit_line(entry: AuditEntry) -> Line:
    detail = {k: v for k, v in entry.view().items() if k not in ("id", "at_ms", "op")}
    return Line(entry.entry_id, entry.at_ms, "audit", entry.op, entry.money_change, detail)


async def snapshot(client: Store, scripts: Scripts, keys: AccountKeys) -> dict[str, Any]:
    async with storage_errors():
        raw = await scripts.snapshot(
            keys=[keys.account, keys.sessions, keys.records, keys.audit], args=[]
        )
    snap: dict[str, Any] = msgpack.unpackb(raw, raw=False)
    if snap.get("e") == "migrate":
        raise StoreMigrationNeeded(f"account {keys.base.rsplit(':', 1)[-1]}")
    if snap.get("e") == "user_unknown":
        raise UserUnknown(f"no account {keys.base.rsplit(':', 1)[-1]}")
    return snap


async def build(
    client: Store,
    partitions: int,
    account_id: str,
    from_ms: int,
    to_ms: int,
    scan_limit: int = 2_000_000,
    scripts: Scripts | None = None,
) -> Statement:
    """The statement of [from_ms, to_ms] (see module docstring)."""
    if to_ms < from_ms:
        raise ValueError("the statement's end is before its start")
    keys = AccountKeys(account_id, partitions)
    snap = await snapshot(client, scripts or Scripts.register(client), keys)
    records = await account_records(
        client, partitions, account_id, from_ms, snap["rec"], scan_limit
    )
    audits = await account_audit(client, partitions, account_id, from_ms, snap["aud"], scan_limit)
    lines = [record_line(i, r) for i, r in records] + [audit_line(e) for e in audits]
    # Time order; within one millisecond, the audit entry (create) before the records.
    lines.sort(key=lambda ln: (ln.at_ms, ln.source != "audit", id_key(ln.entry_id)))
    booked = int(snap["money"]) + int(snap["pending"])
    after = sum(ln.change for ln in lines if ln.at_ms > to_ms)
    inside = tuple(ln for ln in lines if ln.at_ms <= to_ms)
    closing = booked - after
    opening = closing - sum(ln.change for ln in inside)
    return Statement(
        account=account_id,
        currency=str(snap.get("cur", "")),
        from_ms=from_ms,
        to_ms=to_ms,
        opening=opening,
        closing=closing,
        lines=inside,
        booked_now=booked,
        pending=int(snap["pending"]),
        open_sessions=int(snap.get("open", 0)),
    )
