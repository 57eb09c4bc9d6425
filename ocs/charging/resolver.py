"""Who is charged: identity or session -> (account, plan), cached.

The balance scripts must touch one Cluster slot, so the identity and session
indexes (other slots) are read before the script. To keep one round trip per
request on the normal path, the answers are cached per process; the script
re-checks them against the account's own data and answers ``stale`` when they
moved, and the caller then re-resolves once (DESIGN.md "Data flow" 2).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

from ocs.store.batch import Batcher
from ocs.store.client import Store, storage_errors, text
from ocs.store.keys import AccountKeys, identity_index, session_index
from ocs.vocabulary.errors import UnknownSession, UserUnknown
from ocs.vocabulary.types import Identity


@dataclass(frozen=True, slots=True)
class Target:
    """The account a request charges, and the plan it was rated with."""

    account_id: str
    plan: str
    identity_key: str  # which identity matched ("" when found by session)


class _Lru(OrderedDict[str, Target]):
    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = size

    def put(self, key: str, value: Target) -> None:
        self[key] = value
        self.move_to_end(key)
        while len(self) > self.size:
            self.popitem(last=False)


class Resolver:
    """Identity and session lookups with a bounded per-process cache."""

    def __init__(
        self, client: Store, partitions: int, size: int = 200_000, batch: Batcher | None = None
    ) -> None:
        self._client = client
        self._batch = batch or Batcher(client)  # lookups ride the hot path's batches
        self._partitions = partitions
        self._identities = _Lru(size)
        self._sessions = _Lru(size)
        self._owners: OrderedDict[str, str] = OrderedDict()
        self._size = size

    async def by_identity(self, identities: Sequence[Identity]) -> Target:
        for ident in identities:
            hit = self._identities.get(ident.key())
            if hit is not None:
                return hit
        for ident in identities:
            raw = await self._get(identity_index(ident.key()))
            if raw is not None:
                target = await self._with_plan(text(raw), ident.key())
                if target is not None:
                    self._identities.put(ident.key(), target)
                    return target
        raise UserUnknown(", ".join(i.key() for i in identities) or "no identity")

    async def by_session(self, session_id: str) -> Target:
        hit = self._sessions.get(session_id)
        if hit is not None:
            return hit
        raw = await self._get(session_index(session_id))
        if raw is None:
            raise UnknownSession(session_id)
        target = await self._with_plan(text(raw), "")
        if target is None:
            raise UnknownSession(session_id)
        self._sessions.put(session_id, target)
        return target

    def cached_session(self, session_id: str) -> Target | None:
        """The cached target of a session, without a lookup (None if not cached)."""
        return self._sessions.get(session_id)

    def remember_session(self, session_id: str, target: Target) -> None:
        hit = self._sessions.get(session_id)
        if hit is not None and hit.account_id == target.account_id and hit.plan == target.plan:
            self._sessions.move_to_end(session_id)  # the common case: already known
            return
        self._sessions.put(session_id, Target(target.account_id, target.plan, ""))

    def owner_is_new(self, session_id: str, owner: str) -> bool:
        """Has this process not yet indexed the session under this owner?"""
        if self._owners.get(session_id) == owner:
            return False
        self._owners[session_id] = owner
        self._owners.move_to_end(session_id)
        while len(self._owners) > self._size:
            self._owners.popitem(last=False)
        return True

    def forget(self, identities: Sequence[Identity] = (), session_id: str | None = None) -> None:
        for ident in identities:
            self._identities.pop(ident.key(), None)
        if session_id is not None:
            self._sessions.pop(session_id, None)

    async def _get(self, key: str) -> object:
        return await self._run(("GET", key))

    async def _run(self, command: tuple[str, ...]) -> object:
        async with storage_errors():
            (reply,) = await self._batch.submit([command])
            if isinstance(reply, Exception):
                raise reply
        return reply

    async def _with_plan(self, account_id: str, identity_key: str) -> Target | None:
        keys = AccountKeys(account_id, self._partitions)
        plan = await self._run(("HGET", keys.account, "plan"))
        if plan is None:
            return None
        return Target(account_id, text(plan), identity_key)
