"""After a Redis restart, every path that talks to Redis succeeds on its first try (issue 13
item 10: "the pool keeps dead connections: the sweeper, renewals, pushes and account
commands fail once after every restart").

A real server (the embedded launcher, on its unix socket as ``ocs serve`` uses it, or on
a TCP port), one client as the runtime builds it (:func:`ocs.store.client.connect`),
every pooled connection and the charging pipe used before the restart. Then kill -9 and
a restart on the same data directory, and each path once: account commands on every
pooled connection at once, a charging call (the pipelined connection), a sweep, an
allowance renewal, and the notification reader (no read failure after the restart, and
the push written after it delivered).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from ocs.accounts import Accounts, BucketSpec
from ocs.charging.api import ChargingService
from ocs.charging.supervision import sweep
from ocs.notify import subscribe
from ocs.plans import Renewals
from ocs.policy.loader import PolicySet
from ocs.store.client import connect
from ocs.store.embedded import EmbeddedRedis, free_port
from ocs.vocabulary.types import (
    EventAction,
    Identity,
    IdentityType,
    NotificationKind,
    ServiceKey,
    ServiceRequest,
    SessionRef,
    UnitType,
    Usage,
)

POOLED = 12  # connections in the pool before the restart


@pytest.mark.parametrize("transport", ["unix", "tcp"])
async def test_every_path_succeeds_first_time_after_a_restart(
    tmp_path: Path, test_policies: PolicySet, transport: str
) -> None:
    """kill -9 + restart of Redis: accounts x12 at once, charging, sweep, renewal, pushes: no
    failure, first try."""
    port = free_port() if transport == "tcp" else 0
    server = EmbeddedRedis(tmp_path / "redis", port=port)
    server.start()
    client = connect(server.url, timeout=2.0, max_connections=64)
    reader: asyncio.Task[None] | None = None
    try:
        accounts = await Accounts.connect(client)
        charging = await ChargingService.connect(client, test_policies)
        ident = Identity(IdentityType.E164, "1" + str(uuid.uuid4().int)[:11])
        acct = await accounts.create(
            [ident], "basic", "EUR", [BucketSpec(UnitType.MONEY, 10_000_000)]
        )
        session = SessionRef(f"gw;restart;{uuid.uuid4().hex}", owner="diameter:gw.test")
        await charging.initiate(session, ident, [ServiceRequest(ServiceKey(10), Usage())])
        await asyncio.gather(*(accounts.show(acct) for _ in range(POOLED)))  # fill the pool
        await charging.event(
            uuid.uuid4().hex, ident, ServiceKey(40), EventAction.DIRECT_DEBIT, Usage(events=1)
        )
        pushed: list[Any] = []

        async def read() -> None:
            async for note in subscribe(client, charging.partitions, retry_delay=0.2):
                pushed.append(note)

        with capture_logs() as logs:
            reader = asyncio.create_task(read())
            await asyncio.sleep(0.3)  # the reader is blocked in XREAD on its connection
            server.kill()
            await asyncio.sleep(0.5)  # the client sees the connections close
            server = EmbeddedRedis(tmp_path / "redis", port=port)
            await asyncio.to_thread(server.start)
            restarted = time.monotonic()
            await asyncio.sleep(0.5)  # the reader's back-off after the outage
            read_failures = lambda: sum(  # noqa: E731
                e["event"] == "notification_read_failed" for e in logs
            )
            during_outage = read_failures()

            failures: list[str] = []

            async def first_try(name: str, call: Any) -> Any:
                try:
                    return await call
                except Exception as exc:  # every path reports its own failure
                    failures.append(f"{name}: {exc!r}")
                    return None

            shows = await asyncio.gather(
                *(first_try(f"account show {i}", accounts.show(acct)) for i in range(POOLED))
            )
            await first_try(
                "direct debit",
                charging.event(
                    uuid.uuid4().hex, ident, ServiceKey(40), EventAction.DIRECT_DEBIT, Usage(1)
                ),
            )
            await first_try("sweep", sweep(charging))
            renewals = Renewals(client, charging.partitions, charging.policies)
            await first_try("renewal", renewals.renew_account(acct))
            await first_try("account block", accounts.set_status(acct, "blocked"))  # a push
            deadline = time.monotonic() + 10
            while not pushed and time.monotonic() < deadline:  # noqa: ASYNC110 - reader fills it
                await asyncio.sleep(0.05)
        after = read_failures() - during_outage
        print(
            f"after the restart ({time.monotonic() - restarted:.1f} s): {len(failures)} failed "
            f"calls, {len(pushed)} pushes, {after} notification read failures "
            f"({during_outage} during the outage)"
        )
        assert failures == []
        assert after == 0
        assert all(view is not None for view in shows)
        assert [n.kind for n in pushed] == [NotificationKind.BLOCKED]
    finally:
        if reader is not None:
            await _stop(reader)
        await client.aclose()
        with contextlib.suppress(Exception):
            server.stop()
        server.kill()


async def _stop(task: asyncio.Task[None]) -> None:
    """Cancel ``task``, again if needed: on Python 3.11 ``asyncio.wait_for`` (redis-py's
    socket writes) can swallow a cancellation that lands as its inner future completes
    (CPython gh-86296, fixed in 3.12), and the reader then carries on."""
    for _ in range(5):
        task.cancel()
        done, _ = await asyncio.wait({task}, timeout=1.0)
        if done:
            return
