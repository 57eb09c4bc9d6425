"""The audit trail: who changed an account, when, how, why, and by how much.

Every operator change (create, top-up, adjustment, bucket expiry, block,
unblock, delete, plan change and renewal, identity added or removed,
session terminated) is made by one account script that appends one entry to
its partition's audit stream ``ocs:{pNN}:audit`` in the same call
(``ocs/store/lua/audit.lua``): a change is never without its entry, nor an
entry without its change. An entry is one field ``a`` holding a msgpack map;
its stream id is its time (milliseconds, Redis clock).

Who: the API token's name (``token:<name>``), the OS user of a CLI run
(``os:<user>``), or ``system`` (renewals, library callers). Via: ``api``,
``cli``, ``import`` or ``system``. Every call carries a request id (the
API's ``X-Request-Id``, else a new one) and, where given, a reason (required
for adjustments) and its idempotency reference.

Money: ``money_before`` / ``money_after`` are the account's money (every
money bucket's amount, micro-units) around the change: the statement
(:mod:`ocs.statement`) is built from them and from the charged records.
"""

from __future__ import annotations

import getpass
import uuid
from dataclasses import dataclass, field
from typing import Any

import msgpack

from ocs.store.client import Store
from ocs.store.keys import audit_stream, partition_of

AUDIT_FIELD = b"a"
AUDIT_VERSION = 1

# Operations and what they change.
OPS = (
    "create",
    "topup",
    "adjust",
    "expire",
    "block",
    "unblock",
    "delete",
    "plan",
    "renew",
    "identity_add",
    "identity_remove",
    "terminate",
)


def _new_request_id() -> str:
    return uuid.uuid4().hex


@dataclass(frozen=True, slots=True)
class Actor:
    """Who makes a change, through what, in which request, and why."""

    who: str
    via: str
    request_id: str = field(default_factory=_new_request_id)
    reason: str = ""

    def to_lua(self) -> dict[str, str]:
        return {"who": self.who, "via": self.via, "rid": self.request_id, "why": self.reason}

    def because(self, reason: str) -> Actor:
        return Actor(self.who, self.via, self.request_id, reason)

    @classmethod
    def cli(cls, reason: str = "") -> Actor:
        """The OS user running the ``ocs`` command."""
        try:
            user = getpass.getuser()
        except (KeyError, OSError):  # no name for this uid (a container)
            import os

            user = str(os.getuid())
        return cls(f"os:{user}", "cli", reason=reason)

    @classmethod
    def system(cls, reason: str = "") -> Actor:
        """ocs itself (renewals) or a library caller that names nobody."""
        return cls("system", "system", reason=reason)


class AuditDecodeError(ValueError):
    """A stream entry that is not an audit entry of a known version."""


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One audit entry as read back from its stream."""

    entry_id: str
    partition: int
    op: str
    account: str
    at_ms: int  # the stream id's time
    who: str
    via: str
    request_id: str
    reason: str
    reference: str
    currency: str
    bucket: str = ""
    unit: str = ""
    delta: int | None = None
    before: int | None = None
    after: int | None = None
    expires: int | None = None
    money_before: int | None = None
    money_after: int | None = None
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def money_change(self) -> int:
        """What the change did to the account's money (0 when it touched none)."""
        if self.money_before is None or self.money_after is None:
            return 0
        return self.money_after - self.money_before

    def view(self) -> dict[str, Any]:
        """The JSON form (API, ``ocs account history --json``): integers kept."""
        out: dict[str, Any] = {
            "id": f"{self.partition}:{self.entry_id}",
            "at_ms": self.at_ms,
            "op": self.op,
            "account": self.account,
            "who": self.who,
            "via": self.via,
            "request_id": self.request_id,
            "reason": self.reason,
            "reference": self.reference,
            "currency": self.currency,
        }
        for name in ("bucket", "unit"):
            if getattr(self, name):
                out[name] = getattr(self, name)
        for name in ("delta", "before", "after", "expires", "money_before", "money_after"):
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        out.update(self.details)
        return out


_KNOWN = {
    "v",
    "op",
    "acct",
    "at",
    "who",
    "via",
    "rid",
    "why",
    "ref",
    "cur",
    "bucket",
    "unit",
    "delta",
    "before",
    "after",
    "exp",
    "mb",
    "ma",
}
_DETAILS = {
    "from": "from",
    "to": "to",
    "plan": "plan",
    "ids": "identities",
    "ident": "identity",
    "sess": "session",
    "owner": "owner",
    "sessions": "sessions_notified",
    "period": "period",
    "allowances": "allowances",
    "test": "test",
}


def _int_or_none(value: Any, name: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise AuditDecodeError(f"{name}: expected an integer, got {value!r}")
    return value


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def _detail(value: Any) -> Any:
    """Lua tables come back as lists or dicts; an empty one may be either."""
    if isinstance(value, dict) and not value:
        return []
    if isinstance(value, bytes):
        return _text(value)
    return value


def entry_ms(entry_id: str) -> int:
    return int(entry_id.partition("-")[0])


def decode_audit(entry_id: str, partition: int, raw: bytes) -> AuditEntry:
    """The entry of one stream item (field ``a``); AuditDecodeError when it is not one."""
    try:
        m = msgpack.unpackb(raw, raw=False, strict_map_key=False)
    except (ValueError, TypeError, msgpack.ExtraData, msgpack.FormatError) as exc:
        raise AuditDecodeError(f"not msgpack: {exc}") from None
    if not isinstance(m, dict):
        raise AuditDecodeError(f"expected a map, got {type(m).__name__}")
    if m.get("v") != AUDIT_VERSION:
        raise AuditDecodeError(f"unknown audit entry version {m.get('v')!r}")
    op, account = _text(m.get("op")), _text(m.get("acct"))
    if op not in OPS:
        raise AuditDecodeError(f"unknown operation {op!r}")
    if not account:
        raise AuditDecodeError("no account")
    details = {_DETAILS[k]: _detail(v) for k, v in m.items() if k in _DETAILS}
    details.update({k: _detail(v) for k, v in m.items() if k not in _KNOWN and k not in _DETAILS})
    return AuditEntry(
        entry_id=entry_id,
        partition=partition,
        op=op,
        account=account,
        at_ms=entry_ms(entry_id),
        who=_text(m.get("who")),
        via=_text(m.get("via")),
        request_id=_text(m.get("rid")),
        reason=_text(m.get("why")),
        reference=_text(m.get("ref")),
        currency=_text(m.get("cur")),
        bucket=_text(m.get("bucket")),
        unit=_text(m.get("unit")),
        delta=_int_or_none(m.get("delta"), "delta"),
        before=_int_or_none(m.get("before"), "before"),
        after=_int_or_none(m.get("after"), "after"),
        expires=_int_or_none(m.get("exp"), "exp"),
        money_before=_int_or_none(m.get("mb"), "mb"),
        money_after=_int_or_none(m.get("ma"), "ma"),
        details=details,
    )


async def read_history(
    client: Store,
    partitions: int,
    account_id: str,
    since_ms: int = 0,
    until_ms: int | None = None,
    limit: int = 1000,
    chunk: int = 1000,
) -> list[AuditEntry]:
    """The account's audit entries in [since_ms, until_ms] (oldest first, at most
    ``limit``), read from its partition's stream within its retention.

    Operator changes are rare next to charging, so a partition's stream is
    read in chunks and filtered here; an undecodable entry is skipped (the
    exporter dead-letters it with the reason)."""
    stream = audit_stream(partition_of(account_id, partitions))
    start = f"{since_ms}-0"
    end = "+" if until_ms is None else f"{until_ms}-{2**64 - 1}"
    out: list[AuditEntry] = []
    p = partition_of(account_id, partitions)
    needle = account_id.encode()
    while len(out) < limit:
        items: Any = await client.xrange(stream, min=start, max=end, count=chunk)
        for entry_id, fields in items:
            raw = fields.get(AUDIT_FIELD)
            if raw is None or needle not in raw:  # a byte test before decoding
                continue
            try:
                entry = decode_audit(_text(entry_id), p, raw)
            except AuditDecodeError:
                continue
            if entry.account == account_id:
                out.append(entry)
                if len(out) >= limit:
                    break
        if len(items) < chunk:
            break
        start = f"({_text(items[-1][0])}"
    return out
