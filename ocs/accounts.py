"""Accounts, identities and balance buckets: the administration side.

An account holds buckets (DESIGN.md "Data flow" 3): each has a
unit (money in micro-units of the account currency, octets, seconds,
events), an amount, what is reserved of it, an optional expiry, a priority
(lower is consumed first) and the services it applies to (rating group
and/or service id; none = all). Several identities (E.164, IMSI, NAI, SIP
URI) point to one account. Every balance change is one Lua script
(credit.lua, status.lua, create.lua, plan.lua, identity.lua, expire.lua,
kick.lua); identity indexes live in their own Cluster slots and are written
beside them.

Each of those scripts appends the change's audit entry (:mod:`ocs.audit`)
in the same call, with the :class:`~ocs.audit.Actor` the caller names
(``system`` when it names none). A call with a reference (the CLI's
``--ref``, the admin API's ``Idempotency-Key``) is applied once: a repeat
answers the first reply with ``dup`` set and changes nothing.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import msgpack

from ocs.audit import Actor
from ocs.store import layout
from ocs.store.client import Store, storage_errors, text
from ocs.store.client import partitions as read_partitions
from ocs.store.keys import ACCOUNTS_INDEX, AccountKeys, identity_index
from ocs.store.layout import StoreMigrationNeeded
from ocs.store.scripts import Scripts
from ocs.vocabulary.errors import ChargingError, UserUnknown
from ocs.vocabulary.types import Identity, NotificationKind, UnitType

AccountIds = list[str]


class AccountError(ChargingError):
    """An administrative request that cannot be done (message says why)."""


class Conflict(AccountError):
    """The request contradicts the account's state (exists, identity taken, ...)."""


@dataclass(frozen=True, slots=True)
class Created:
    """The account a create made, and whether it was a repeat of a referenced create."""

    account_id: str
    replayed: bool = False


def id_for_reference(ref: str) -> str:
    """The account id a referenced create without an id gets: the same on every repeat."""
    return hashlib.sha256(f"ocs-create:{ref}".encode()).hexdigest()[:16]


def _pack(request: dict[str, Any]) -> bytes:
    packed: bytes = msgpack.packb(request, use_bin_type=True)
    return packed


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

    def services(self) -> list[int]:
        """[rg, sid, rg, sid, ...] with -1 as "any" (msgpack arrays must not hold nil)."""
        out: list[int] = []
        for rg in self.rating_groups:
            out += (rg, -1)
        for sid in self.service_ids:
            out += (-1, sid)
        return out

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


def _request(account_id: str, actor: Actor | None, ref: str, **fields: Any) -> dict[str, Any]:
    """An administration script's argument: the change's fields, with the time,
    the account, the reference and who asked (``system`` when no one is named)."""
    return {
        "now": int(time.time()),
        "acct": account_id,
        **fields,
        "ref": ref,
        "au": (actor or Actor.system()).to_lua(),
    }


def _decode(raw: bytes | None) -> dict[str, Any]:
    """A script's reply; an account of an older layout raised (nothing changed)."""
    if raw is None:
        return {}
    value = msgpack.unpackb(raw, raw=False, strict_map_key=False)
    if not isinstance(value, dict):
        return {}
    if value.get("e") == "migrate":
        raise StoreMigrationNeeded("an account of this store")
    return value


class Accounts:
    """Create, show, list, credit, adjust, block and delete accounts."""

    def __init__(self, client: Store, partitions: int) -> None:
        self.redis = client
        self.partitions = partitions
        self.scripts = Scripts.register(client)

    @classmethod
    async def connect(cls, client: Store) -> Accounts:
        """Accounts of ``client``'s store; StoreMigrationNeeded if it holds an
        older layout (``ocs store migrate``)."""
        await layout.check_layout(client)
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
        *,
        actor: Actor | None = None,
        ref: str = "",
        test: bool = False,
    ) -> str:
        """Create an account; every identity must be free. Returns its id."""
        made = await self.create_account(
            identities, plan, currency, buckets, account_id, actor=actor, ref=ref, test=test
        )
        return made.account_id

    async def create_account(
        self,
        identities: Sequence[Identity],
        plan: str,
        currency: str,
        buckets: Sequence[BucketSpec] = (),
        account_id: str | None = None,
        *,
        actor: Actor | None = None,
        ref: str = "",
        test: bool = False,
    ) -> Created:
        """Create an account (see :meth:`create`); a referenced repeat is a replay.

        ``test`` marks a load-test account: ``ocs export`` leaves its records
        out (``export.exclude_test_accounts``).
        """
        if not identities:
            raise AccountError("an account needs at least one identity")
        acct = account_id or (id_for_reference(ref) if ref else uuid.uuid4().hex[:16])
        keys = self.keys(acct)
        async with storage_errors():
            claimed = await self._claim(identities, acct)
            request = _request(
                acct,
                actor,
                ref,
                currency=currency,
                plan=plan,
                ids=[i.key() for i in identities],
                buckets=[b.to_lua() for b in buckets],
                test=1 if test else 0,
            )
            try:
                reply = _decode(
                    await self.scripts.create(
                        keys=[keys.account, keys.ids, keys.ref(ref), keys.audit],
                        args=[_pack(request)],
                    )
                )
            except BaseException:
                # Made or not (a lost reply)? What the account holds stays.
                await asyncio.shield(self._let_go(claimed, acct))
                raise
            if reply.get("e") == "exists":
                # Another create made this account first (a concurrent one of the
                # same id, or an earlier one): its identities are its own.
                await self._let_go(claimed, acct)
                raise Conflict(f"account {acct} already exists")
            await self.redis.sadd(ACCOUNTS_INDEX, acct)
        return Created(acct, bool(reply.get("dup")))

    async def _claim(self, identities: Sequence[Identity], acct: str) -> list[str]:
        """Point every identity at ``acct``; returns the identity keys this call
        claimed (one already pointing there is not: a concurrent create of the
        same account, or a repeat after a crash). A taken identity lets go of
        the claimed ones and raises Conflict.

        Each identity index is a slot of its own, so no one script can claim
        them all on a cluster: they are claimed one by one (claim.lua), in the
        order of their keys, so two creates sharing identities meet at the
        first shared one and only one goes past it (claimed in the caller's
        order, [x, y] and [y, x] could each take one and both fail)."""
        claimed: list[str] = []
        try:
            for key in sorted({i.key() for i in identities}):
                got = text(
                    await self.scripts.claim(keys=[identity_index(key)], args=[acct, "claim"])
                )
                if got == "new":
                    claimed.append(key)
                elif got != "ours":
                    raise Conflict(f"identity {key} already belongs to an account")
        except BaseException:
            await asyncio.shield(self._release(claimed, acct))
            raise
        return claimed

    async def _let_go(self, claimed: Sequence[str], acct: str) -> None:
        """Release the claimed identities that the account ``acct`` does not
        hold (none if it does not exist): a create that did not make it."""
        held = {text(i) for i in await self.redis.smembers(self.keys(acct).ids)}
        await self._release([k for k in claimed if k not in held], acct)

    async def _release(self, identity_keys: Sequence[str], acct: str) -> None:
        """Free each identity while its index still names ``acct`` (compare and
        delete: never another account's)."""
        for key in identity_keys:
            await self.scripts.claim(keys=[identity_index(key)], args=[acct, "release"])

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
        *,
        actor: Actor | None = None,
    ) -> dict[str, Any]:
        """Add ``delta`` (negative for an adjustment down) to one bucket, and
        notify the account's live sessions. ``ref`` makes it idempotent (a
        repeat answers ``dup``). An adjustment needs a reason (the actor's)."""
        who = actor or Actor.system()
        if kind is NotificationKind.ADJUST and not who.reason.strip():
            raise AccountError("an adjustment needs a reason")
        keys = self.keys(account_id)
        request = _request(account_id, who, ref, delta=delta, b=spec.to_lua(), kind=kind.value)
        # credit.lua takes the reference before the notifications.
        credit_keys = [keys.account, keys.sessions, keys.ref(ref), keys.notifications, keys.audit]
        reply = await self._run("credit", credit_keys, request)
        err = reply.get("e")
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

    async def set_status(
        self, account_id: str, status: str, *, actor: Actor | None = None, ref: str = ""
    ) -> int:
        """Activate, block or delete; returns how many live sessions were told."""
        reply = await self.change_status(account_id, status, actor=actor, ref=ref)
        return int(reply.get("sessions", 0))

    async def change_status(
        self, account_id: str, status: str, *, actor: Actor | None = None, ref: str = ""
    ) -> dict[str, Any]:
        """Activate, block or delete (see :meth:`set_status`); the script's reply."""
        kind = {
            "blocked": NotificationKind.BLOCKED,
            "deleted": NotificationKind.DELETED,
            "active": NotificationKind.POLICY_CHANGE,
        }[status]
        keys = self.keys(account_id)
        request = _request(account_id, actor, ref, status=status, kind=kind.value)
        reply = await self._run("status", self._pushing_keys(account_id, ref), request)
        async with storage_errors():
            if status == "deleted" and not reply.get("dup"):
                held = [text(i) for i in await self.redis.smembers(keys.ids)]
                await self._release(held, account_id)
                await self.redis.srem(ACCOUNTS_INDEX, account_id)
        return reply

    async def assign_plan(
        self,
        account_id: str,
        plan: str,
        currency: str,
        *,
        actor: Actor | None = None,
        ref: str = "",
    ) -> dict[str, Any]:
        """Move an account to ``plan`` (of the account's ``currency``); live
        sessions are re-authorised. The caller renews the new plan's allowances."""
        request = _request(account_id, actor, ref, plan=plan, currency=currency)
        reply = await self._run("plan", self._pushing_keys(account_id, ref), request)
        if reply.get("e") == "currency":
            raise Conflict(
                f"plan {plan} charges in {currency}, account {account_id} holds "
                f"{reply.get('currency')}"
            )
        return reply

    async def add_identity(
        self, account_id: str, ident: Identity, *, actor: Actor | None = None, ref: str = ""
    ) -> dict[str, Any]:
        """Give the account one more identity (free, or already its own)."""
        keys = self.keys(account_id)
        async with storage_errors():
            if not await self.redis.exists(keys.account):
                raise UserUnknown(f"no account {account_id}")
            claimed = await self._claim([ident], account_id)
        request = self._identity_request(account_id, ident, False, actor, ref)
        try:
            reply = await self._run(
                "identity",
                [keys.account, keys.ids, keys.ref(ref), keys.audit],
                request,
            )
        except BaseException:
            async with storage_errors():
                await asyncio.shield(self._let_go(claimed, account_id))
            raise
        if reply.get("e") == "present":
            raise Conflict(f"account {account_id} already has identity {ident.key()}")
        return reply

    async def remove_identity(
        self, account_id: str, ident: Identity, *, actor: Actor | None = None, ref: str = ""
    ) -> dict[str, Any]:
        """Take one identity from the account (never its last), and free it."""
        keys = self.keys(account_id)
        request = self._identity_request(account_id, ident, True, actor, ref)
        reply = await self._run(
            "identity", [keys.account, keys.ids, keys.ref(ref), keys.audit], request
        )
        if reply.get("e") == "not_found":
            raise UserUnknown(f"account {account_id} has no identity {ident.key()}")
        if reply.get("e") == "last_identity":
            raise Conflict(f"{ident.key()} is the last identity of account {account_id}")
        async with storage_errors():
            await self._release([ident.key()], account_id)
        return reply

    @staticmethod
    def _identity_request(
        account_id: str, ident: Identity, remove: bool, actor: Actor | None, ref: str
    ) -> dict[str, Any]:
        return _request(account_id, actor, ref, ident=ident.key(), remove=1 if remove else 0)

    def _pushing_keys(self, account_id: str, ref: str) -> list[str]:
        """KEYS of the scripts that tell live sessions (status, plan, expire)."""
        keys = self.keys(account_id)
        return [keys.account, keys.sessions, keys.notifications, keys.ref(ref), keys.audit]

    async def expire_bucket(
        self,
        account_id: str,
        bucket_id: str,
        at: int,
        *,
        actor: Actor | None = None,
        ref: str = "",
    ) -> dict[str, Any]:
        """Give a bucket a new expiry; at or before now it expires at once and
        what it held is forfeited (see expire.lua)."""
        request = _request(account_id, actor, ref, bucket=bucket_id, at=at)
        reply = await self._run("expire", self._pushing_keys(account_id, ref), request)
        if reply.get("e") == "no_bucket":
            raise UserUnknown(f"account {account_id} has no bucket {bucket_id}")
        return reply

    async def terminate_session(
        self, account_id: str, session_id: str, *, actor: Actor | None = None, ref: str = ""
    ) -> dict[str, Any]:
        """Ask the session's front end to end it (ASR, Disconnect, abort notify)."""
        keys = self.keys(account_id)
        request = _request(account_id, actor, ref, sid=session_id)
        reply = await self._run(
            "kick",
            [
                keys.account,
                keys.session(session_id),
                keys.notifications,
                keys.ref(ref),
                keys.audit,
            ],
            request,
        )
        if reply.get("e") == "no_session":
            raise UserUnknown(f"account {account_id} has no live session {session_id}")
        return reply

    async def _run(self, script: str, keys: list[str], request: dict[str, Any]) -> dict[str, Any]:
        """One administration script; user_unknown raised, other replies returned."""
        async with storage_errors():
            reply = _decode(await getattr(self.scripts, script)(keys=keys, args=[_pack(request)]))
        if reply.get("e") == "user_unknown":
            raise UserUnknown(f"no account {request['acct']}")
        return reply

    async def show(self, account_id: str) -> dict[str, Any]:
        """Everything about one account: status, identities, buckets, sessions."""
        keys = self.keys(account_id)
        async with storage_errors():
            fields = layout.account_fields(await self.redis.hgetall(keys.account))
            if not fields:
                raise UserUnknown(f"no account {account_id}")
            if "m" not in fields:
                raise StoreMigrationNeeded(f"account {account_id}")
            ids = sorted(text(i) for i in await self.redis.smembers(keys.ids))
            stored = layout.buckets(fields)
            handles = {b.handle: b.id for b in stored}
            sessions = []
            for sid in sorted(text(s) for s in await self.redis.smembers(keys.sessions)):
                sess = await self.redis.hgetall(keys.session(sid))
                if sess:
                    sessions.append({"session": sid, **layout.session_view(sess, handles)})
        # In the order they were made (a bucket's handle grows with each new one),
        # not the order they are consumed in.
        buckets = [_bucket_view(b) for b in sorted(stored, key=lambda b: b.handle)]
        return {
            "account": account_id,
            **layout.info_fields(fields),
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

    async def page(self, cursor: int = 0, count: int = 100) -> tuple[int, AccountIds]:
        """One page of account ids (SSCAN: no order; each id once over a whole
        walk begun at 0, cursor 0 back at the end)."""
        out: list[str] = []
        async with storage_errors():
            while True:
                cursor, members = await self.redis.sscan(ACCOUNTS_INDEX, cursor, count=count)
                out.extend(text(m) for m in members)
                if cursor == 0 or len(out) >= count:
                    return int(cursor), out


def _bucket_view(b: layout.Bucket) -> dict[str, Any]:
    return {
        "id": b.id,
        "unit": b.unit,
        "amount": b.amount,
        "reserved": b.reserved,
        "available": b.amount - b.reserved - b.floor,
        "expires": b.expires or None,
        "priority": b.priority,
        "services": [
            {
                "rating_group": None if rg == -1 else rg,
                "service_id": None if sid == -1 else sid,
            }
            for rg, sid in b.services
        ],
        "floor": b.floor,
    }
