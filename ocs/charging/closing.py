"""Closing sessions the gateway will not close.

Supervision (RFC 4006 §5.5 Tcc: a session silent past its deadline), a
Diameter peer that restarted (its Origin-State-Id increased, RFC 6733
§5.3.1: its old sessions are gone) and a RADIUS NAS that rebooted
(Accounting-On/Off, RFC 2866 §5.1): the abandon script releases the
reservations and writes the record with the cause; a later update for the
session gets UNKNOWN_SESSION.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import msgpack
import structlog

from ocs.store.client import storage_errors, text
from ocs.store.keys import owner_index, supervision_shard
from ocs.vocabulary.types import TerminationCause

if TYPE_CHECKING:
    from ocs.charging.api import ChargingService

log = structlog.get_logger("ocs.charging")


async def abandon(
    svc: ChargingService,
    account_id: str,
    session_id: str,
    cause: TerminationCause,
    now: int,
    force: bool = False,
    opened_before: int | None = None,
    owner: str = "",
) -> dict[str, Any]:
    """Run abandon.lua on one session; its reply: closed, alive (deadline),
    moved (forced for an owner it no longer has) or gone."""
    keys = svc.keys(account_id)
    request = {
        "sid": session_id,
        "now": now,
        "cause": cause.value,
        "force": int(force),
        "before": opened_before or 0,
        "owner": owner,
        "tax": 0,
    }
    async with storage_errors():
        plan = await svc.redis.hget(keys.account, "plan")
    if plan is not None and text(plan) in svc.policies.plans:
        request["tax"] = svc.policies.tax_ppm(text(plan))
    blob, answers, order = keys.session_keys(session_id)
    async with storage_errors():
        raw = await svc.scripts.abandon(
            keys=[keys.account, keys.balance, keys.sessions, blob, keys.records, answers, order],
            args=[msgpack.packb(request, use_bin_type=True)],
        )
    value = msgpack.unpackb(raw, raw=False, strict_map_key=False)
    return value if isinstance(value, dict) else {}


async def close_owner_sessions(
    svc: ChargingService, owner: str, cause: TerminationCause, opened_before: int | None = None
) -> int:
    """Close every open session of one owner; returns how many were closed."""
    async with storage_errors():
        members = await svc.redis.smembers(owner_index(owner))
    closed = 0
    for raw in members:
        member = text(raw)
        account_id, _, session_id = member.partition("\0")
        reply = await abandon(
            svc, account_id, session_id, cause, int(svc.clock()), True, opened_before, owner
        )
        if reply.get("alive") is None:
            async with storage_errors():
                await svc.redis.srem(owner_index(owner), member)
                if "moved" not in reply:
                    await svc.redis.zrem(supervision_shard(account_id), member)
        closed += int(bool(reply.get("closed")))
    if closed:
        log.info("owner_sessions_closed", owner=owner, cause=cause.value, sessions=closed)
    return closed
