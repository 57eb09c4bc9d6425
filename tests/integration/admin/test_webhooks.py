"""The event feed (issue 14 item 7): balance events POSTed to a webhook, HMAC-signed,
retried with backoff, at least once with a stable event id.

``ocs serve`` (webhooks configured, on the suite's Redis) and a local receiver on
127.0.0.1 that refuses the first attempts of every event with 500. A top-up (audit
stream) and a low balance (notifications stream) reach it after the failures, each
attempt with the same X-OCS-Event-Id and a valid signature. Then the receiver is down,
``ocs serve`` is killed with SIGKILL while an event is pending, and started again: the
event is delivered once the receiver is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from ocs.accounts import Accounts, BucketSpec
from ocs.audit import Actor
from ocs.charging.api import ChargingService
from ocs.store.embedded import free_port
from ocs.vocabulary.types import (
    Identity,
    IdentityType,
    ServiceKey,
    ServiceRequest,
    SessionRef,
    UnitType,
    Usage,
)
from tests.serve_harness import ROOT, serving, wait_for_health

SECRET = b"webhook-test-secret"


class Receiver:
    """Records every POST; answers 500 to the first ``fail_first`` attempts of each event
    (or to every attempt while ``down``)."""

    def __init__(self, fail_first: int) -> None:
        self.fail_first = fail_first
        self.down = False
        self.attempts: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"]))
                with receiver.lock:
                    eid = self.headers["x-ocs-event-id"]
                    seen = sum(a["id"] == eid for a in receiver.attempts)
                    ok = not receiver.down and seen >= receiver.fail_first
                    receiver.attempts.append(
                        {"id": eid, "headers": dict(self.headers), "body": body, "ok": ok}
                    )
                self.send_response(200 if ok else 500)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def events(self, account: str) -> list[dict[str, Any]]:
        with self.lock:
            return [
                {**a, "json": json.loads(a["body"])}
                for a in self.attempts
                if json.loads(a["body"])["account"] == account
            ]

    def wait(self, account: str, kind: str, within: float = 30.0) -> list[dict[str, Any]]:
        """Every attempt of the first delivered event of ``kind`` for ``account``."""
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            got = [e for e in self.events(account) if e["json"]["type"] == kind]
            done = [e for e in got if e["ok"]]
            if done:
                return [e for e in got if e["id"] == done[0]["id"]]
            time.sleep(0.05)
        raise AssertionError(f"no {kind} event for {account} delivered within {within} s")


def verified(attempt: dict[str, Any]) -> bool:
    sig = dict(part.split("=", 1) for part in attempt["headers"]["x-ocs-signature"].split(","))
    mac = hmac.new(SECRET, sig["t"].encode() + b"." + attempt["body"], hashlib.sha256)
    return hmac.compare_digest(mac.hexdigest(), sig["v1"])


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver(fail_first=2)
    yield r
    r.server.shutdown()


async def sending(accounts: Accounts, group: str, within: float = 30.0) -> None:
    """Wait until the sender's consumer groups exist (events from then on are sent)."""
    from ocs.store.keys import audit_stream, notifications_stream

    last = accounts.partitions - 1  # the sender creates its groups in partition order
    deadline = time.monotonic() + within
    for stream in (audit_stream(last), notifications_stream(last)):
        while True:
            with contextlib.suppress(Exception):  # no such stream yet
                groups = await accounts.redis.xinfo_groups(stream)
                if any(g["name"] == f"{group}:crm".encode() for g in groups):
                    break
            assert time.monotonic() < deadline, "the webhook sender did not start"
            await asyncio.sleep(0.05)


def config(tmp: Path, store_url: str, receiver: Receiver) -> tuple[Path, int, str]:
    metrics = free_port()
    group = f"wh-{uuid.uuid4().hex[:8]}"
    cfg = tmp / "ocs.yaml"
    cfg.write_text(
        f"redis: {{url: '{store_url}'}}\n"
        f"policies: {{dir: '{ROOT / 'tests/policies'}'}}\n"
        f"metrics: {{port: {metrics}}}\nlogging: {{format: json}}\n"
        "supervision: {sweep_interval: 3600, renew_interval: 3600}\n"
        "admin:\n"
        f"  webhook_group: {group}\n"
        "  webhooks:\n"
        f"    - {{name: crm, url: 'http://127.0.0.1:{receiver.port}/events', "
        f"secret: {SECRET.decode()}, initial_backoff: 0.1, max_backoff: 0.4, retries: 20}}\n"
    )
    return cfg, metrics, group


async def new_account(accounts: Accounts, money: int) -> tuple[str, Identity]:
    ident = Identity(IdentityType.E164, "9917" + str(uuid.uuid4().int)[:11])
    acct = await accounts.create([ident], "basic", "EUR", [BucketSpec(UnitType.MONEY, money)])
    return acct, ident


async def test_events_are_signed_retried_and_delivered(
    store_url: str,
    tmp_path: Path,
    receiver: Receiver,
    accounts: Accounts,
    charging: ChargingService,
) -> None:
    """A top-up and a low balance: refused twice each, delivered on the third attempt,
    the same event id and a valid HMAC on every attempt; data in micro-units and money."""
    cfg, metrics, group = config(tmp_path, store_url, receiver)
    with serving(cfg) as proc:
        wait_for_health(metrics)
        await sending(accounts, group)
        acct, ident = await new_account(accounts, 300)  # + 250 = 550; a grant holds 100
        await accounts.credit(
            acct, BucketSpec(UnitType.MONEY, 0), 250, actor=Actor("token:crm", "api")
        )
        topups = receiver.wait(acct, "topup")
        await charging.initiate(
            SessionRef("wh;" + uuid.uuid4().hex, "test-owner"),
            ident,
            [ServiceRequest(ServiceKey(10), Usage())],
        )
        lows = receiver.wait(acct, "low_balance")
        assert proc.poll() is None
    for attempts in (topups, lows):
        assert [a["ok"] for a in attempts] == [False, False, True]
        assert len({a["id"] for a in attempts}) == 1
        assert all(verified(a) for a in attempts)
        assert all(a["headers"]["x-ocs-webhook"] == "crm" for a in attempts)
    topup = topups[-1]["json"]
    assert topup["id"].startswith("audit:") and topup["data"]["delta"] == 250
    assert topup["data"]["money_after"]["micro"] == 550 and topup["data"]["who"] == "token:crm"
    low = lows[-1]["json"]
    assert low["id"].startswith("notification:") and low["data"]["threshold_micro"] == 500
    assert low["data"]["available_micro"] == 450


async def test_an_event_pending_at_a_kill9_is_delivered_after_the_restart(
    store_url: str, tmp_path: Path, receiver: Receiver, accounts: Accounts
) -> None:
    """Receiver down, an event refused, ocs serve killed with SIGKILL, receiver back, ocs
    serve started again: the event arrives with the id it had."""
    cfg, metrics, group = config(tmp_path, store_url, receiver)
    receiver.down = True
    acct, _ = await new_account(accounts, 1_000)
    with serving(cfg) as proc:
        wait_for_health(metrics)
        await sending(accounts, group)
        await accounts.set_status(acct, "blocked", actor=Actor("token:crm", "api"))
        deadline = time.monotonic() + 30
        while not [e for e in receiver.events(acct) if e["json"]["type"] == "blocked"]:
            assert time.monotonic() < deadline, "no attempt made"
            await asyncio.sleep(0.05)
        proc.kill()
        proc.wait()
    refused = [e for e in receiver.events(acct) if e["json"]["type"] == "blocked"]
    assert refused and not any(e["ok"] for e in refused)
    receiver.down = False
    with serving(cfg):
        wait_for_health(metrics)
        delivered = receiver.wait(acct, "blocked")
    assert delivered[-1]["ok"] and delivered[-1]["id"] == refused[0]["id"]
    assert delivered[-1]["json"]["data"]["to"] == "blocked"
