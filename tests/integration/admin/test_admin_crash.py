"""kill -9 of Redis between admin API calls loses neither a change nor its audit entry
alone (issue 14 item 4: the entry is written in the same script call as the change).

A real Redis (the embedded launcher, appendfsync always, its own directory and port),
``ocs serve`` with the admin API on it, thirty top-ups each under its own
Idempotency-Key, Redis killed with SIGKILL and restarted on the same data after every
fifth. A call the outage interrupts is sent again under its key until it answers. Then
the balance is the opening plus exactly the thirty top-ups, and the audit trail holds
exactly thirty top-up entries, one per key, whose money before/after chain from the
opening to the balance.
"""

from __future__ import annotations

import itertools
import time
import uuid
from pathlib import Path

import httpx

from ocs.store.embedded import EmbeddedRedis, free_port
from tests.integration.admin.conftest import admin_config, wait_for_port
from tests.serve_harness import cli, serving, wait_for_health

CALLS = 30
STEP = 10_000  # micro-units per top-up (0.01 EUR)


def topup(client: httpx.Client, acct: str, key: str, deadline: float) -> None:
    """Send until answered (a 503 or a cut connection during the outage: again, same key)."""
    while True:
        try:
            r = client.post(
                f"/accounts/{acct}/topups",
                json={"amount_micro": STEP},
                headers={"Idempotency-Key": key},
            )
            if r.status_code == 200:
                return
            assert r.status_code == 503, r.text
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, f"{key}: no answer after the restart"
        time.sleep(0.2)


def test_kill9_redis_between_calls_keeps_changes_and_entries_together(tmp_path: Path) -> None:
    """30 top-ups, Redis kill -9'd after every 5th: balance = opening + 30 steps, 30 audit
    entries (one per key), their before/after a chain from the opening to the balance."""
    redis_port = free_port()
    server = EmbeddedRedis(tmp_path / "redis", appendfsync="always", port=redis_port)
    server.start()
    port, metrics = free_port(), free_port()
    cfg = admin_config(tmp_path, server.url, port, metrics)
    token = cli(cfg, "admin", "token", "add", "crash", "--role", "admin").stdout.strip()
    try:
        with serving(cfg) as proc:
            wait_for_health(metrics)
            wait_for_port(port)
            client = httpx.Client(
                base_url=f"http://127.0.0.1:{port}",
                headers={"Authorization": f"Bearer {token}"},
                timeout=10,
            )
            ident = "e164:9916" + str(uuid.uuid4().int)[:10]
            made = client.post(
                "/accounts", json={"identities": [ident], "plan": "basic", "money": "1.00"}
            )
            assert made.status_code == 201, made.text
            acct = made.json()["account"]
            keys = [f"crash-{n}-{uuid.uuid4().hex[:8]}" for n in range(CALLS)]
            for n, key in enumerate(keys):
                topup(client, acct, key, time.monotonic() + 60)
                if n % 5 == 4:
                    server.kill()
                    server = EmbeddedRedis(
                        tmp_path / "redis", appendfsync="always", port=redis_port
                    )
                    server.start()
            view = client.get(f"/accounts/{acct}").json()
            entries = client.get(f"/accounts/{acct}/history").json()["entries"]
            assert proc.poll() is None, "ocs serve died with its Redis"
    finally:
        server.kill()
    assert view["money"]["micro"] == 1_000_000 + CALLS * STEP
    topups = [e for e in entries if e["op"] == "topup"]
    assert sorted(e["reference"] for e in topups) == sorted(keys)
    chain = [(e["money_before"], e["money_after"]) for e in topups]
    assert chain[0][0] == 1_000_000 and chain[-1][1] == view["money"]["micro"]
    assert all(a[1] == b[0] for a, b in itertools.pairwise(chain))
    assert all(after - before == STEP for before, after in chain)
