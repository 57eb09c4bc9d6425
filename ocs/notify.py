"""Notifications for pushes: top-ups, blocks and policy changes of live sessions.

The account scripts (credit.lua, status.lua) PUBLISH one message per live
session on ``ocs:notify`` in the same call as the change, and append it to the
partition's notifications stream for integrations. The protocol front ends
subscribe here and turn them into Diameter RAR/ASR or RADIUS CoA/Disconnect;
so a top-up made by the CLI in another process reaches the gateway at once.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import msgpack
import structlog
from redis import exceptions as rexc
from redis.asyncio import Redis

from ocs.charging.types import Notification, NotificationKind
from ocs.store.keys import NOTIFY_CHANNEL

log = structlog.get_logger("ocs.notify")


def decode_notification(data: bytes) -> Notification:
    m: dict[str, Any] = msgpack.unpackb(data, raw=False, strict_map_key=False)
    attrs = m.get("at") or []
    return Notification(
        kind=NotificationKind(str(m["k"])),
        account_id=str(m["a"]),
        session_id=str(m["s"]),
        owner=str(m.get("o", "")),
        attributes=tuple((str(a[0]), str(a[1])) for a in attrs if len(a) == 2),
    )


async def subscribe(client: Redis, retry_delay: float = 0.5) -> AsyncIterator[Notification]:
    """Yield notifications as they are published; reconnects when Redis drops."""
    while True:
        pubsub = client.pubsub(ignore_subscribe_messages=True)
        try:
            await pubsub.subscribe(NOTIFY_CHANNEL)
            while True:
                msg = await pubsub.get_message(timeout=1.0)
                if msg is None or msg.get("type") != "message":
                    continue
                try:
                    yield decode_notification(msg["data"])
                except (KeyError, ValueError, TypeError, IndexError) as exc:
                    log.warning("notification_undecodable", error=repr(exc))
        except (rexc.ConnectionError, rexc.TimeoutError, OSError) as exc:
            log.warning("notification_subscription_lost", error=repr(exc))
            await asyncio.sleep(retry_delay)
        finally:
            with contextlib.suppress(rexc.RedisError, OSError):
                await pubsub.aclose()  # type: ignore[no-untyped-call]
