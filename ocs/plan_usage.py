"""Plans in use: a policy reload never drops a plan an account still has (issue 13 item 4).

An account's plan is written once, when it is created (``plan`` in its
hash), and every request rates with that plan's tariff. A policy set that
lacks it would leave those accounts unrateable, so a reload that drops
plans the set in force has is checked against the store first and refused
(the old set stays, the error names the file and key) while any account
uses one of them.

Why a scan, and only then: a reload that edits prices or adds plans drops
none and costs nothing here. When plans are dropped, the account index is
walked (SSCAN, ``STEP`` ids per step, one pipelined HGET per step) and the
walk stops as soon as every dropped plan has been found on an account, so a
mistaken drop (a plans file moved away) is found in the first step; a
correct drop reads each account's plan once (a million accounts: about a
thousand round trips, seconds, on a reload, beside serving). No counter of
accounts per plan is kept instead: the account index is global while an
account's keys live in its partition's slot, so such a counter could not
move in the creating script's atomic call and could drift after a crash,
then refuse or allow the wrong reloads; the scan is exact and needs no
change to the account scripts.
"""

from __future__ import annotations

from collections.abc import Collection

from ocs.policy.loader import PolicyError, PolicySet
from ocs.store.client import Store, storage_errors, text
from ocs.store.keys import ACCOUNTS_INDEX, AccountKeys
from ocs.vocabulary.errors import StorageUnavailable

STEP = 1000  # account ids per SSCAN step (and per pipelined read of their plans)


async def accounts_on_plans(
    client: Store, partitions: int, plans: Collection[str], step: int = STEP
) -> dict[str, str]:
    """One account id for each of ``plans`` that some account uses (deleted
    accounts have left the index); stops once every plan is found."""
    wanted = set(plans)
    found: dict[str, str] = {}
    cursor = 0
    async with storage_errors():
        while wanted:
            cursor, members = await client.sscan(ACCOUNTS_INDEX, cursor, count=step)
            ids = [text(m) for m in members]
            if ids:
                async with client.pipeline(transaction=False) as pipe:
                    for account in ids:
                        pipe.hget(AccountKeys(account, partitions).account, "plan")
                    replies = await pipe.execute()
                for account, raw in zip(ids, replies, strict=True):
                    plan = text(raw) if raw is not None else ""
                    if plan in wanted:
                        found[plan] = account
                        wanted.discard(plan)
            if cursor == 0:
                break
    return found


async def check_dropped_plans(
    current: PolicySet, fresh: PolicySet, client: Store, partitions: int
) -> None:
    """Raise PolicyError when ``fresh`` lacks a plan of ``current`` that an
    account uses, or when the store cannot say (refusing is the safe side)."""
    dropped = sorted(set(current.plans) - set(fresh.plans))
    if not dropped:
        return
    try:
        users = await accounts_on_plans(client, partitions, dropped)
    except StorageUnavailable as exc:
        raise PolicyError(
            f"{_origin(current, dropped[0])}: plans.{dropped[0]}: dropped by the new set, "
            f"and the store could not be asked whether accounts use it ({exc})"
        ) from None
    in_use = [plan for plan in dropped if plan in users]
    if in_use:
        first = in_use[0]
        more = f" (and {len(in_use) - 1} more: {', '.join(in_use[1:])})" if len(in_use) > 1 else ""
        raise PolicyError(
            f"{_origin(current, first)}: plans.{first}: missing from the new set, but "
            f"account {users[first]} uses it{more}; a plan in use cannot be dropped"
        )


def _origin(policies: PolicySet, plan: str) -> str:
    return policies.origins.get(f"plans.{plan}", "policies")
