"""``Idempotency-Key`` for the admin API's mutating calls.

The same semantics as the CLI's ``--ref``, one level up. A call with a key:

1. its fingerprint (method, path, body bytes: SHA-256) is compared with the
   key's record in Redis (``ocs:{idem:<hash>}``, kept ``admin.idempotency_ttl``
   seconds). A different fingerprint under the same key is **409**, whatever
   token sent it; a finished record is **replayed**: the first status and
   body, with ``Idempotent-Replayed: true``;
2. otherwise the record is claimed (``pending``) and the call runs with the
   key passed to its account script as its reference, so the change itself
   happens once even when two calls race or the first one died between its
   script and its record: the script answers the repeat from its own record
   (``dup``) and changes nothing, audit trail included;
3. its answer (2xx, and 4xx decided by the store: 404, 409, 422) is kept
   under the key; a 5xx is not (the call may be tried again).

A key is 1 to 255 printable ASCII characters. It is also the account-level
reference: ``Idempotency-Key: pay-0001`` and ``--ref pay-0001`` on the same
account apply a top-up once.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import msgpack

from ocs.store.client import Store, storage_errors

KEY_RULE = re.compile(r"[!-~]{1,255}")
HEADER = "Idempotency-Key"


class KeyReused(Exception):
    """The key was used for another request (another path or body)."""


class BadKey(ValueError):
    """The header's value is not a usable key."""


@dataclass(frozen=True, slots=True)
class Outcome:
    status: int
    body: Any
    replayed: bool = False


def check_key(key: str) -> str:
    if not KEY_RULE.fullmatch(key):
        raise BadKey(f"{HEADER}: expected 1 to 255 printable ASCII characters without spaces")
    return key


def record_key(key: str) -> str:
    h = hashlib.sha256(key.encode()).hexdigest()
    return f"ocs:{{idem:{h[:4]}}}:{h}"


def fingerprint(method: str, path: str, body: bytes) -> str:
    return hashlib.sha256(b"\0".join((method.encode(), path.encode(), body))).hexdigest()


class Idempotency:
    """Runs a mutating call at most once per key (see module docstring)."""

    def __init__(self, client: Store, ttl: int) -> None:
        self.redis = client
        self.ttl = ttl

    async def run(
        self,
        key: str | None,
        fp: str,
        call: Callable[[str], Awaitable[Outcome]],
    ) -> Outcome:
        """``call(ref)`` once for ``key`` (``ref`` = the key, or "" without one)."""
        if not key:
            return await call("")
        rk = record_key(check_key(key))
        async with storage_errors():
            found = await self._read(rk)
            if found is None and not await self.redis.set(
                rk, msgpack.packb({"fp": fp}), nx=True, ex=self.ttl
            ):
                found = await self._read(rk)  # claimed meanwhile by a racing call
        if found is not None:
            if found.get("fp") != fp:
                raise KeyReused(key)
            if "status" in found:
                return Outcome(int(found["status"]), json.loads(found["body"]), replayed=True)
        outcome = await call(key)
        if outcome.status < 500:
            record = {"fp": fp, "status": outcome.status, "body": json.dumps(outcome.body)}
            async with storage_errors():
                await self.redis.set(rk, msgpack.packb(record), ex=self.ttl)
        return outcome

    async def _read(self, rk: str) -> dict[str, Any] | None:
        raw = await self.redis.get(rk)
        if raw is None:
            return None
        value = msgpack.unpackb(raw, raw=False)
        return value if isinstance(value, dict) else None
