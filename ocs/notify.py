"""Notifications for pushes: top-ups, blocks and policy changes of live sessions.

The account scripts (credit.lua, status.lua) append one message per live
session to the partition's notifications stream ``ocs:{pNN}:notifications``
in the same call as the change, so a change is never without its message.
The protocol front ends read every partition's stream (XREAD, no consumer
group: each worker must see every message and keeps those of the sessions
it owns) and turn them into Diameter RAR/ASR or RADIUS CoA/Disconnect; so a
top-up made by the CLI in another process reaches the gateway at once.

Unlike pub/sub, a stream keeps what was written while a reader was not
listening: a reader starts at the moment it was asked for (stream ids are
times; ocs and Redis share a clock on one host, give or take NTP across
hosts), so nothing written after that is missed even before its first read,
and after a Redis outage it resumes from the last entry it saw. Balance events for integrations
(low_balance, exhausted) share the stream and are not yielded here.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import msgpack
import structlog
from redis import exceptions as rexc
from redis.asyncio.cluster import RedisCluster

from ocs.store.client import Store, is_unavailable, text
from ocs.store.cluster_pipe import ClusterPipes
from ocs.store.keys import notifications_stream
from ocs.vocabulary.types import Notification, NotificationKind

log = structlog.get_logger("ocs.notify")

PUSH_KINDS = frozenset(
    {
        NotificationKind.TOPUP,
        NotificationKind.ADJUST,
        NotificationKind.POLICY_CHANGE,
        NotificationKind.BLOCKED,
        NotificationKind.DELETED,
        NotificationKind.TERMINATE,
    }
)


def decode_notification(data: bytes) -> Notification:
    m = msgpack.unpackb(data, raw=False, strict_map_key=False)
    if not isinstance(m, dict):
        raise ValueError(f"a notification is a map, not {type(m).__name__}")
    attrs = m.get("at") or []
    return Notification(
        kind=NotificationKind(str(m["k"])),
        account_id=str(m["a"]),
        session_id=str(m["s"]),
        owner=str(m.get("o", "")),
        attributes=tuple((str(a[0]), str(a[1])) for a in attrs if len(a) == 2),
        rating_groups=tuple(int(rg) for rg in m.get("rg") or ()),
    )


CLUSTER_POLL = 0.1  # seconds between reads of every partition's stream on a cluster


async def subscribe(
    client: Store, partitions: int, since_ms: int | None = None, retry_delay: float = 0.5
) -> AsyncIterator[Notification]:
    """Yield push notifications from every partition written from ``since_ms`` on."""
    start = int(time.time() * 1000) if since_ms is None else since_ms
    cursor: dict[str, str] = {
        # XREAD returns ids after the one given: the last possible id of the
        # millisecond before `start`, so everything from `start` on is read.
        notifications_stream(p): f"{max(start - 1, 0)}-{2**64 - 1}"
        for p in range(partitions)
    }
    pipes = ClusterPipes(client, timeout=5.0) if isinstance(client, RedisCluster) else None
    try:
        async for note in _follow(client, cursor, pipes, retry_delay):
            yield note
    finally:
        if pipes is not None:
            pipes.close()


async def _follow(
    client: Store, cursor: dict[str, str], pipes: ClusterPipes | None, retry_delay: float
) -> AsyncIterator[Notification]:
    while True:
        try:
            reply = await _read(client, cursor, pipes)
        except (rexc.RedisError, rexc.RedisClusterException, OSError) as exc:
            if not is_unavailable(exc):
                raise
            if _cancelling():
                raise
            log.warning("notification_read_failed", error=repr(exc))
            await asyncio.sleep(retry_delay)
            continue
        if _cancelling():
            # A layer under the read lost the cancel (Python 3.11: async-timeout
            # turns one racing the read's own timeout into a timeout or a plain
            # return); the task still counts it: honour it.
            raise asyncio.CancelledError
        for stream, entries in reply or ():
            for entry_id, fields in entries:
                cursor[text(stream)] = text(entry_id)
                note = _decode_entry(fields)
                if note is not None and note.kind in PUSH_KINDS:
                    yield note


def _cancelling() -> bool:
    """Whether this task has a cancel pending (one a layer below may have swallowed)."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


async def _read(client: Store, cursor: dict[str, str], pipes: ClusterPipes | None) -> Any:
    """New entries of every stream after its cursor (waiting up to 1 s for one).

    One server: one blocking XREAD over every partition. A cluster refuses a
    command over keys of several slots (each partition is a slot), so there:
    one XREAD per partition, every :data:`CLUSTER_POLL` seconds while nothing
    is new, through the hot path's kind of pipes (one write per primary,
    hiredis): redis-py's cluster pipeline cost 19 ms of CPU a second for these
    polls on an idle server (about 8 µs per request at 2,500 Gy CCR/s).
    """
    if pipes is None:
        return await client.xread(cursor, count=500, block=1000)  # type: ignore[arg-type]
    streams = list(cursor.items())
    replies = await pipes.execute(
        [("XREAD", "COUNT", 500, "STREAMS", stream, after) for stream, after in streams]
    )
    found = []
    for reply in replies:
        if isinstance(reply, Exception):
            raise reply
        for stream, entries in reply or ():
            found.append((stream, [(eid, _fields(flat)) for eid, flat in entries]))
    if not found:
        await asyncio.sleep(CLUSTER_POLL)
    return found


def _fields(flat: list[Any]) -> dict[Any, Any]:
    """A stream entry's fields as redis-py gives them (a mapping), from RESP's flat list."""
    return dict(zip(flat[::2], flat[1::2], strict=False))


def _decode_entry(fields: dict[Any, Any]) -> Notification | None:
    try:
        return decode_notification(fields[b"n"])
    except (KeyError, ValueError, TypeError, IndexError) as exc:
        log.warning("notification_undecodable", error=repr(exc))
        return None
