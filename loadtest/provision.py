"""Test subscribers for a load run: created under a run-unique prefix, or existing ones.

Created accounts get one E.164 identity of 15 digits (``99`` + five digits
unique to the run + an eight-digit index) and, when the RADIUS front end
looks User-Name up as another identity type (``radius.identity_type``), the
same digits under that type too; every value has the same width, as the
generator's templates need. Balances and buckets come from the options. A
balance snapshot reads every bucket of every account (amount and reserved)
in pipelined batches.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ocs.accounts import Accounts, BucketSpec
from ocs.audit import Actor
from ocs.store import layout
from ocs.vocabulary.types import Identity, IdentityType, UnitType

BATCH = 200
LOADTEST = Actor("loadtest", "system")


@dataclass(frozen=True, slots=True)
class Subscriber:
    account_id: str
    value: str  # the digits the gateways send (MSISDN / User-Name)


@dataclass(frozen=True, slots=True)
class Bucket:
    unit: str
    amount: int
    reserved: int


Balances = dict[str, dict[str, Bucket]]  # account -> bucket id -> bucket


def run_digits() -> str:
    """Five digits unique enough per run (a clash is refused by Accounts.create)."""
    return f"{secrets.randbelow(100_000):05d}"


async def create_subscribers(
    accounts: Accounts,
    count: int,
    plan: str,
    currency: str,
    money: int,
    octets: int = 0,
    octets_rating_groups: tuple[int, ...] = (),
    extra_identity: IdentityType | None = None,
    run: str | None = None,
) -> list[Subscriber]:
    """Create ``count`` accounts with ``money`` micro-units (and an octet bucket if asked)."""
    if count < 1 or count > 99_999_999:
        raise ValueError(f"subscriber count {count}: expected 1..99999999")
    prefix = "99" + (run or run_digits())
    run_tag = prefix[2:]

    async def one(i: int) -> Subscriber:
        value = f"{prefix}{i:08d}"
        ids = [Identity(IdentityType.E164, value)]
        if extra_identity is not None and extra_identity is not IdentityType.E164:
            ids.append(Identity(extra_identity, value))
        buckets = [BucketSpec(UnitType.MONEY, money)]
        if octets:
            buckets.append(
                BucketSpec(
                    UnitType.TOTAL_OCTETS,
                    octets,
                    bucket_id="lt-octets",
                    rating_groups=octets_rating_groups,
                )
            )
        # A load-test account: ocs export leaves its records and audit entries out.
        acct = await accounts.create(
            ids, plan, currency, buckets, f"lt{run_tag}x{i:08d}", actor=LOADTEST, test=True
        )
        return Subscriber(acct, value)

    out: list[Subscriber] = []
    for start in range(0, count, BATCH):
        batch = range(start, min(count, start + BATCH))
        out.extend(await asyncio.gather(*(one(i) for i in batch)))
    return out


async def existing_subscribers(
    accounts: Accounts, values: Sequence[str], identity_type: IdentityType = IdentityType.E164
) -> list[Subscriber]:
    """Resolve existing subscribers; all values must have the same width."""
    if not values:
        raise ValueError("no subscribers given")
    if len({len(v) for v in values}) != 1:
        raise ValueError("existing subscribers must all have the same length (template patching)")
    out = []
    for value in values:
        acct = await accounts.resolve(Identity(identity_type, value).key())
        out.append(Subscriber(acct, value))
    return out


def _buckets(fields: dict[Any, Any]) -> dict[str, Bucket]:
    return {
        b.id: Bucket(b.unit, b.amount, b.reserved)
        for b in layout.buckets(layout.account_fields(fields))
    }


async def balances(accounts: Accounts, account_ids: Sequence[str]) -> Balances:
    """Every bucket of every account, read in pipelined batches."""
    out: Balances = {}
    ids = list(account_ids)
    for start in range(0, len(ids), BATCH * 5):
        chunk = ids[start : start + BATCH * 5]
        pipe = accounts.redis.pipeline(transaction=False)
        for acct in chunk:
            pipe.hgetall(accounts.keys(acct).account)
        for acct, raw in zip(chunk, await pipe.execute(), strict=True):
            out[acct] = _buckets(raw)
    return out


async def delete_subscribers(accounts: Accounts, account_ids: Sequence[str]) -> None:
    """Delete test accounts (identities freed; their records stay in the streams)."""
    for start in range(0, len(account_ids), BATCH):
        chunk = account_ids[start : start + BATCH]
        await asyncio.gather(*(accounts.set_status(a, "deleted", actor=LOADTEST) for a in chunk))
