"""Session supervision: close sessions whose gateway fell silent.

RFC 4006 §5.5 (Tcc, about 2 x Validity-Time; standards §2.6): a session with
no request before its deadline gets its reservations released and its record
written with cause ``abandoned``; a later update gets UNKNOWN_SESSION. The
deadlines live in Redis (sharded ZSETs, ``ocs:{sup:NN}``), so supervision
survives restarts and any worker of any node may sweep: the abandon script
re-checks the authoritative deadline in the session itself, so two sweepers
racing, or an index entry left behind, never close a live session.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

import structlog

from ocs.charging.api import ChargingService
from ocs.metrics import SESSIONS_ABANDONED
from ocs.store.client import storage_errors, text
from ocs.store.keys import SUPERVISION_SHARDS, supervision_shard_key
from ocs.vocabulary.errors import StorageUnavailable
from ocs.vocabulary.types import TerminationCause

log = structlog.get_logger("ocs.supervision")


async def sweep(charging: ChargingService, now: int | None = None, batch: int = 200) -> int:
    """Abandon every session past its deadline; returns how many were closed."""
    ts = int(time.time()) if now is None else now
    store = charging.store
    closed = 0
    for shard in range(SUPERVISION_SHARDS):
        key = supervision_shard_key(shard)
        async with storage_errors():
            due = await store.redis.zrangebyscore(key, "-inf", ts, start=0, num=batch)
        for raw in due:
            member = text(raw)
            account_id, _, session_id = member.partition("\0")
            reply = await charging.abandon(
                account_id, session_id, TerminationCause.ABANDONED, now=ts
            )
            if reply.alive is not None:
                # Moved on since the index was written: re-arm at the real deadline.
                await store.submit([("ZADD", key, reply.alive, member)])
            else:
                await store.submit([("ZREM", key, member)])
            if reply.closed:
                closed += 1
                SESSIONS_ABANDONED.inc()
                log.info("session_abandoned", session=session_id, account=account_id)
    return closed


async def run_supervisor(charging: ChargingService, interval: float, stop: asyncio.Event) -> None:
    """Sweep every ``interval`` seconds until ``stop`` is set; survives Redis outages."""
    while not stop.is_set():
        try:
            await sweep(charging)
        except StorageUnavailable as exc:
            log.warning("supervision_sweep_failed", error=str(exc))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=interval)
