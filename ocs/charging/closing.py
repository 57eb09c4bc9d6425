"""Closing sessions the gateway will not close.

Supervision (RFC 4006 §5.5 Tcc: a session silent past its deadline), a
Diameter peer that restarted (its Origin-State-Id increased, RFC 6733
§5.3.1: its old sessions are gone) and a RADIUS NAS that rebooted
(Accounting-On/Off, RFC 2866 §5.1): the abandon script releases the
reservations and writes the record with the cause; a later update for the
session gets UNKNOWN_SESSION. The script runs through the store's gateway,
on the same batches as the charging calls.
"""

from __future__ import annotations

from collections.abc import Callable

import structlog

from ocs.policy.loader import PolicySet
from ocs.store.calls import AbandonArgs, AbandonReply
from ocs.store.client import storage_errors, text
from ocs.store.gateway import ScriptGateway
from ocs.store.keys import owner_index, supervision_shard
from ocs.vocabulary.types import TerminationCause

log = structlog.get_logger("ocs.charging")


def taxes(policies: PolicySet) -> dict[str, int]:
    """The tax rate of every plan (the script picks the account's own)."""
    return {name: policies.tax_ppm(name) for name in policies.plans}


async def abandon(
    store: ScriptGateway,
    policies: PolicySet,
    account_id: str,
    session_id: str,
    cause: TerminationCause,
    now: int,
    force: bool = False,
    opened_before: int | None = None,
    owner: str = "",
) -> AbandonReply:
    """Run the abandon script on one session: closed, alive (its deadline),
    moved (forced for an owner it no longer has) or gone."""
    args = AbandonArgs(
        account_id,
        session_id,
        now,
        cause.value,
        force,
        opened_before or 0,
        owner,
        taxes(policies),
    )
    return await store.abandon(args)


async def close_owner_sessions(
    store: ScriptGateway,
    policies: PolicySet,
    owner: str,
    cause: TerminationCause,
    clock: Callable[[], float],
    opened_before: int | None = None,
) -> int:
    """Close every open session of one owner; returns how many were closed."""
    index = owner_index(owner)
    async with storage_errors():
        members = await store.redis.smembers(index)
    closed = 0
    for raw in members:
        member = text(raw)
        account_id, _, session_id = member.partition("\0")
        reply = await abandon(
            store, policies, account_id, session_id, cause, int(clock()), True, opened_before, owner
        )
        if reply.alive is None:
            cleanup = [("SREM", index, member)]
            if not reply.moved:
                cleanup.append(("ZREM", supervision_shard(account_id), member))
            await store.submit(cleanup)
        closed += int(reply.closed)
    if closed:
        log.info("owner_sessions_closed", owner=owner, cause=cause.value, sessions=closed)
    return closed
