"""Accounts, identities and balance buckets: the administration side.

An account holds buckets (DESIGN.md; issue "charging core" 3): each has a
unit (money in micro-units of the account currency, octets, seconds,
events), an amount, what is reserved of it, an optional expiry, a priority
(lower is consumed first) and the services it applies to (rating group
and/or service id; none = all). Several identities (E.164, IMSI, NAI, SIP
URI) point to one account. Every balance change is one Lua script
(credit.lua, status.lua, create.lua); identity indexes live in their own
Cluster slots and are written beside them.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import msgpack
from redis.asyncio import Redis

from ocs.store.client import blob, storage_errors, text
from ocs.store.client import partitions as read_partitions
from ocs.store.keys import ACCOUNTS_INDEX, AccountKeys, identity_index
from ocs.store.scripts import Scripts
from ocs.vocabulary.errors import ChargingError, UserUnknown
from ocs.vocabulary.types import Identity, NotificationKind, UnitType


class AccountError(ChargingError):
    """An administrative request that cannot be done (message says why)."""


@dataclass(frozen=True, slots=True)
class BucketSpec:
    """A bucket to create or top up."""

    unit: UnitType
    amount: int
    bucket_id: str | None = None
    expires: int = 0  # unix seconds, 0 = never
    priority: int = 100
    rating_groups: tuple[int, ...] = ()
    service_ids: tuple[int, ...] = ()
    floor: int = 0  # lowest the amount may reach (negative: overdraft)

    def resolved_id(self) -> str:
        if self.bucket_id:
            return self.bucket_id
        if self.unit is UnitType.MONEY and not self.expires and not self.rating_groups:
            return "main"
        return f"{self.unit.value}-{uuid.uuid4().hex[:8]}"

    def services(self) -> list[list[int]]:
        """[[rg, sid], ...] with -1 as "any" (msgpack arrays must not hold nil)."""
        pairs = [[rg, -1] for rg in self.rating_groups] + [[-1, sid] for sid in self.service_ids]
        return pairs

    def to_lua(self) -> dict[str, Any]:
        return {
            "id": self.resolved_id(),
            "unit": self.unit.value,
            "amt": self.amount,
            "res": 0,
            "exp": self.expires,
            "pri": self.priority
            if self.unit is not UnitType.MONEY or self.bucket_id or self.expires
            else 1_000_000,
            "svc": self.services(),
            "floor": self.floor,
        }


def _decode(raw: bytes | None) -> dict[str, Any]:
    if raw is None:
        return {}
    value = msgpack.unpackb(raw, raw=False, strict_map_key=False)
    return value if isinstance(value, dict) else {}


class Accounts:
    """Create, show, list, credit, adjust, block and delete accounts."""

    def __init__(self, client: Redis, partitions: int) -> None:
        self.redis = client
        self.partitions = partitions
        self.scripts = Scripts.register(client)

    @classmethod
    async def connect(cls, client: Redis) -> Accounts:
        return cls(client, await read_partitions(client))

    def keys(self, account_id: str) -> AccountKeys:
        return AccountKeys(account_id, self.partitions)

    async def create(
        self,
        identities: Sequence[Identity],
        plan: str,
        currency: str,
        buckets: Sequence[BucketSpec] = (),
        account_id: str | None = None,
    ) -> str:
        """Create an account; every identity must be free. Returns its id."""
        if not identities:
            raise AccountError("an account needs at least one identity")
        acct = account_id or uuid.uuid4().hex[:16]
        claimed: list[str] = []
        async with storage_errors():
            for ident in identities:
                if not await self.redis.set(identity_index(ident.key()), acct, nx=True):
                    for key in claimed:
                        await self.redis.delete(key)
                    raise AccountError(f"identity {ident.key()} already belongs to an account")
                claimed.append(identity_index(ident.key()))
            keys = self.keys(acct)
            request = {
                "now": int(time.time()),
                "currency": currency,
                "plan": plan,
                "ids": [i.key() for i in identities],
                "buckets": [b.to_lua() for b in buckets],
            }
            reply = _decode(
                await self.scripts.create(
                    keys=[keys.account, keys.balance, keys.ids],
                    args=[msgpack.packb(request, use_bin_type=True)],
                )
            )
            if reply.get("e") == "exists":
                for key in claimed:
                    await self.redis.delete(key)
                raise AccountError(f"account {acct} already exists")
            await self.redis.sadd(ACCOUNTS_INDEX, acct)
        return acct

    async def resolve(self, ref: str) -> str:
        """An account id from an id or an identity (``e164:336...``)."""
        async with storage_errors():
            if ":" in ref:
                raw = await self.redis.get(identity_index(Identity.parse(ref).key()))
                if raw is None:
                    raise UserUnknown(f"no account has identity {ref}")
                return str(text(raw))
            if not await self.redis.exists(self.keys(ref).account):
                raise UserUnknown(f"no account {ref}")
        return ref

    async def credit(
        self,
        account_id: str,
        spec: BucketSpec,
        delta: int,
        kind: NotificationKind = NotificationKind.TOPUP,
        ref: str = "",
    ) -> dict[str, Any]:
        """Add ``delta`` (negative for an adjustment down) to one bucket, and
        notify the account's live sessions. ``ref`` makes it idempotent."""
        keys = self.keys(account_id)
        request = {
            "now": int(time.time()),
            "delta": delta,
            "b": spec.to_lua(),
            "kind": kind.value,
            "ref": ref,
        }
        async with storage_errors():
            reply = _decode(
                await self.scripts.credit(
                    keys=[
                        keys.account,
                        keys.balance,
                        keys.sessions,
                        f"{keys.base}:ref:{ref}",
                        keys.notifications,
                    ],
                    args=[msgpack.packb(request, use_bin_type=True)],
                )
            )
        err = reply.get("e")
        if err == "user_unknown":
            raise UserUnknown(f"no account {account_id}")
        if err == "below_floor":
            raise AccountError(
                f"bucket {spec.resolved_id()} has only {reply.get('available')} available"
            )
        if err == "no_bucket":
            raise AccountError(f"no bucket {spec.resolved_id()} to adjust down")
        if err == "unit_mismatch":
            raise AccountError(
                f"bucket {spec.resolved_id()} counts {reply.get('unit')}, not {spec.unit.value}"
            )
        return reply

    async def set_status(self, account_id: str, status: str) -> int:
        """Activate, block or delete; returns how many live sessions were told."""
        kind = {
            "blocked": NotificationKind.BLOCKED,
            "deleted": NotificationKind.DELETED,
            "active": NotificationKind.POLICY_CHANGE,
        }[status]
        keys = self.keys(account_id)
        request = {
            "now": int(time.time()),
            "status": status,
            "kind": kind.value,
        }
        async with storage_errors():
            reply = _decode(
                await self.scripts.status(
                    keys=[keys.account, keys.sessions, keys.notifications],
                    args=[msgpack.packb(request, use_bin_type=True)],
                )
            )
            if reply.get("e") == "user_unknown":
                raise UserUnknown(f"no account {account_id}")
            if status == "deleted":
                for ident in await self.redis.smembers(keys.ids):
                    index = identity_index(text(ident))
                    if await self.redis.get(index) == account_id.encode():
                        await self.redis.delete(index)
                await self.redis.srem(ACCOUNTS_INDEX, account_id)
        return int(reply.get("sessions", 0))

    async def show(self, account_id: str) -> dict[str, Any]:
        """Everything about one account: status, identities, buckets, sessions."""
        keys = self.keys(account_id)
        async with storage_errors():
            info = await self.redis.hgetall(keys.account)
            if not info:
                raise UserUnknown(f"no account {account_id}")
            bal = _decode(blob(await self.redis.get(keys.balance)))
            ids = sorted(text(i) for i in await self.redis.smembers(keys.ids))
            sessions = []
            for sid in sorted(await self.redis.smembers(keys.sessions)):
                sess = _decode(blob(await self.redis.get(keys.session(text(sid)))))
                if sess:
                    sessions.append(_session_view(sess))
        buckets = [_bucket_view(b) for b in (bal.get("b") or [])]
        return {
            "account": account_id,
            **{text(k): text(v) for k, v in info.items()},
            "identities": ids,
            "buckets": buckets,
            "reserved": {
                u: sum(b["reserved"] for b in buckets if b["unit"] == u)
                for u in sorted({b["unit"] for b in buckets})
            },
            "sessions": sessions,
        }

    async def list(self, limit: int = 1000) -> list[str]:
        async with storage_errors():
            members = await self.redis.smembers(ACCOUNTS_INDEX)
        return sorted(text(m) for m in members)[:limit]


def _bucket_view(b: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": b.get("id"),
        "unit": b.get("unit"),
        "amount": b.get("amt", 0),
        "reserved": b.get("res", 0),
        "available": b.get("amt", 0) - b.get("res", 0) - b.get("floor", 0),
        "expires": b.get("exp", 0) or None,
        "priority": b.get("pri"),
        "services": [
            {
                "rating_group": None if p[0] == -1 else p[0],
                "service_id": None if p[1] == -1 else p[1],
            }
            for p in b.get("svc") or []
        ],
        "floor": b.get("floor", 0),
    }


def _session_view(s: dict[str, Any]) -> dict[str, Any]:
    svc = s.get("svc") or {}
    return {
        "session": s.get("sid"),
        "owner": s.get("owner"),
        "started": s.get("start"),
        "last_seen": s.get("last"),
        "deadline": s.get("dl"),
        "policy_version": s.get("pv"),
        "services": {
            k: {
                "name": v.get("nm"),
                "reserved": v.get("res") or {},
                "used": v.get("used") or {},
                "charged": v.get("ch", 0),
            }
            for k, v in (svc.items() if isinstance(svc, dict) else [])
        },
    }
