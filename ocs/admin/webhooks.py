"""The event feed for the BSS: balance events POSTed to configured webhooks.

Sources, both already written by the balance scripts in the same call as
the change: the partitions' audit streams (one entry per operator change:
``topup``, ``adjust``, ``blocked``, ``unblocked``, ``deleted``) and their
notification streams (``low_balance``: money fell below a policy threshold;
``exhausted``: none left or a grant refused; one per session that saw it).

Delivery is **at least once**, in stream order per webhook:

* each webhook reads through its own consumer group
  (``<admin.webhook_group>:<name>``, created at the streams' end the first
  time: events from then on), so a slow receiver delays no other;
* an event is acknowledged only once its receiver answered 2xx, or after
  ``retries`` more attempts with exponential backoff (``initial_backoff``
  doubling up to ``max_backoff``), when it is moved to
  ``ocs:{pNN}:webhooks:dead`` with the reason and acknowledged;
* after a crash, what this node had read and not acknowledged is sent again
  (its consumer name is the host's, so its own pending entries come back
  first), and entries another node left pending that long are claimed.

Each request: ``POST`` of JSON ``{"id", "type", "created_ms", "account",
"data"}`` with headers ``X-OCS-Event-Id`` (the same on every attempt:
``audit:<partition>:<stream id>`` or ``notification:...``; receivers drop
repeats by it), ``X-OCS-Event-Type``, ``X-OCS-Webhook`` (its name) and
``X-OCS-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">``
keyed with the webhook's secret (verify with :func:`signature`, compare in
constant time, refuse an old ``t``). Streams are trimmed: the audit stream by
``ocs export`` after its retention (7 days), the notification streams at
about 10,000 entries per partition; a receiver down longer than that loses
the oldest events.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import msgpack
import structlog
from redis import exceptions as rexc
from redis.asyncio.cluster import RedisCluster

from ocs.admin.config import AdminConfig, WebhookConfig
from ocs.admin.views import money
from ocs.audit import AUDIT_FIELD, AuditDecodeError, decode_audit
from ocs.config import ConfigError
from ocs.store.client import Store, is_unavailable, text
from ocs.store.keys import PREFIX, audit_stream, notifications_stream, tag

log = structlog.get_logger("ocs.admin.webhooks")

AUDIT_EVENTS = {
    "topup": "topup",
    "adjust": "adjust",
    "block": "blocked",
    "unblock": "unblocked",
    "delete": "deleted",
}
NOTIFICATION_EVENTS = ("low_balance", "exhausted")
READ_COUNT = 100
CLAIM_IDLE_MS = 60_000


def dead_letter_stream(partition: int) -> str:
    return f"{PREFIX}:{tag(partition)}:webhooks:dead"


def signature(secret: bytes, timestamp: int, body: bytes) -> str:
    """The v1 signature: hex HMAC-SHA256 of ``b"<timestamp>." + body``."""
    return hmac.new(secret, str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()


@dataclass(frozen=True, slots=True)
class Event:
    id: str
    type: str
    created_ms: int
    account: str
    data: dict[str, Any]

    def body(self) -> bytes:
        return json.dumps(
            {
                "id": self.id,
                "type": self.type,
                "created_ms": self.created_ms,
                "account": self.account,
                "data": self.data,
            },
            separators=(",", ":"),
            sort_keys=True,
        ).encode()


def audit_event(partition: int, entry_id: str, fields: dict[bytes, bytes]) -> Event | None:
    raw = fields.get(AUDIT_FIELD)
    if raw is None:
        return None
    try:
        entry = decode_audit(entry_id, partition, raw)
    except AuditDecodeError:
        return None
    kind = AUDIT_EVENTS.get(entry.op)
    if kind is None:
        return None
    data = entry.view()
    data["money_change"] = money(entry.money_change, entry.currency)
    if entry.money_after is not None:
        data["money_after"] = money(entry.money_after, entry.currency)
    return Event(f"audit:{partition}:{entry_id}", kind, entry.at_ms, entry.account, data)


def notification_event(partition: int, entry_id: str, fields: dict[bytes, bytes]) -> Event | None:
    raw = fields.get(b"n")
    if raw is None:
        return None
    try:
        m = msgpack.unpackb(raw, raw=False, strict_map_key=False)
    except (ValueError, msgpack.ExtraData, msgpack.FormatError):
        return None
    kind = str(m.get("k", "")) if isinstance(m, dict) else ""
    if kind not in NOTIFICATION_EVENTS:
        return None
    data: dict[str, Any] = {"session": str(m.get("s", "")), "owner": str(m.get("o", ""))}
    if isinstance(m.get("bal"), int):
        data["available_micro"] = m["bal"]
    if isinstance(m.get("thr"), int):
        data["threshold_micro"] = m["thr"]
    ms = int(entry_id.partition("-")[0])
    return Event(f"notification:{partition}:{entry_id}", kind, ms, str(m.get("a", "")), data)


@dataclass(frozen=True, slots=True)
class _Source:
    name: str
    stream: Callable[[int], str]
    decode: Callable[[int, str, dict[bytes, bytes]], Event | None]


SOURCES = (
    _Source("audit", audit_stream, audit_event),
    _Source("notification", notifications_stream, notification_event),
)


class Webhook:
    """Deliver one webhook's events (see module docstring)."""

    def __init__(
        self,
        client: Store,
        partitions: int,
        cfg: WebhookConfig,
        group: str,
        http: httpx.AsyncClient,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.redis = client
        self.partitions = partitions
        self.cfg = cfg
        self.group = f"{group}:{cfg.name}"
        self.consumer = socket.gethostname()
        self.http = http
        self.clock = clock
        secret = cfg.secret if cfg.secret is not None else os.environ.get(cfg.secret_env or "", "")
        if not secret:
            raise ConfigError(
                f"admin.webhooks {cfg.name}: no secret (environment {cfg.secret_env} is empty)"
            )
        self.secret = secret.encode()
        self.events = set(cfg.events)
        self.delivered = 0
        self.dead = 0
        self.failing: str | None = None

    def streams(self) -> list[tuple[_Source, int, str]]:
        return [(s, p, s.stream(p)) for s in SOURCES for p in range(self.partitions)]

    async def ensure_groups(self) -> None:
        for _, _, stream in self.streams():
            try:
                await self.redis.xgroup_create(stream, self.group, id="$", mkstream=True)
            except rexc.ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise

    async def run(self, stop: asyncio.Event) -> None:
        """Deliver until ``stop``; a Redis outage waits and resumes."""
        ready = False
        backlog = True  # first this consumer's own pending entries (a restart)
        next_claim = 0.0
        while not stop.is_set():
            try:
                if not ready:
                    await self.ensure_groups()
                    ready = True
                if time.monotonic() >= next_claim:
                    backlog = await self._claim_idle() > 0 or backlog
                    next_claim = time.monotonic() + CLAIM_IDLE_MS / 1000
                got = await self._round("0" if backlog else ">", stop)
                if backlog and not got:
                    backlog = False
                elif not got:
                    await _sleep(stop, 0.2)
            except Exception as exc:  # a bug must not end the feed silently: say it, go on
                if is_unavailable(exc):  # the store (or a cluster's node) cannot serve now
                    log.warning("webhook_read_failed", webhook=self.cfg.name, error=repr(exc))
                else:
                    log.error("webhook_failed", webhook=self.cfg.name, error=repr(exc))
                await _sleep(stop, 1.0)

    async def _read(self, start: str, streams: list[str]) -> Any:
        """XREADGROUP of every stream; on a cluster one per stream, pipelined (one
        command over streams of several slots is refused there: each partition is
        a slot)."""
        if not isinstance(self.redis, RedisCluster):
            return await self.redis.xreadgroup(
                self.group, self.consumer, dict.fromkeys(streams, start), count=READ_COUNT
            )
        pipe = self.redis.pipeline()
        for stream in streams:
            pipe.xreadgroup(self.group, self.consumer, {stream: start}, count=READ_COUNT)
        replies: list[Any] = await pipe.execute()
        return [item for reply in replies for item in (reply or ())]

    async def _round(self, start: str, stop: asyncio.Event) -> int:
        streams = self.streams()
        reply = await self._read(start, [stream for _, _, stream in streams])
        by_stream = {stream: (src, p) for src, p, stream in streams}
        n = 0
        for stream_name, items in reply or ():
            src, p = by_stream[text(stream_name)]
            for entry_id, fields in items:
                if stop.is_set():
                    return n
                n += 1
                await self._deliver(src, p, text(stream_name), text(entry_id), fields or {}, stop)
        return n

    async def _claim_idle(self) -> int:
        """Take over entries another node read and left pending past CLAIM_IDLE_MS
        (they become this consumer's pending entries: read with "0")."""
        claimed = 0
        for _, _, stream in self.streams():
            with contextlib.suppress(rexc.ResponseError):
                reply: Any = await self.redis.xautoclaim(
                    stream,
                    self.group,
                    self.consumer,
                    CLAIM_IDLE_MS,
                    "0-0",
                    count=READ_COUNT,
                    justid=True,
                )
                claimed += len(reply[1]) if len(reply) > 1 else 0
        return claimed

    async def _deliver(
        self,
        src: _Source,
        p: int,
        stream: str,
        entry_id: str,
        fields: dict[bytes, bytes],
        stop: asyncio.Event,
    ) -> None:
        event = src.decode(p, entry_id, fields)
        if event is not None and event.type in self.events:
            outcome = await self._send(event, stop)
            if outcome is None:
                return  # stopping: left pending, sent again after the restart
            if outcome != "ok":
                await self.redis.xadd(
                    dead_letter_stream(p),
                    {
                        "webhook": self.cfg.name,
                        "event": event.id,
                        "reason": outcome,
                        "body": event.body(),
                    },
                    maxlen=10_000,
                    approximate=True,
                )
                self.dead += 1
                log.error(
                    "webhook_gave_up", webhook=self.cfg.name, event_id=event.id, reason=outcome
                )
            else:
                self.delivered += 1
        await self.redis.xack(stream, self.group, entry_id)

    async def _send(self, event: Event, stop: asyncio.Event) -> str | None:
        """'ok', the last failure after every retry, or None when asked to stop."""
        body = event.body()
        delay = self.cfg.initial_backoff
        failure = ""
        for attempt in range(self.cfg.retries + 1):
            if attempt:
                if await _sleep(stop, delay):
                    return None
                delay = min(delay * 2, self.cfg.max_backoff)
            t = int(self.clock())
            headers = {
                "content-type": "application/json",
                "x-ocs-event-id": event.id,
                "x-ocs-event-type": event.type,
                "x-ocs-webhook": self.cfg.name,
                "x-ocs-signature": f"t={t},v1={signature(self.secret, t, body)}",
            }
            try:
                r = await self.http.post(
                    self.cfg.url, content=body, headers=headers, timeout=self.cfg.timeout
                )
                if 200 <= r.status_code < 300:
                    self.failing = None
                    return "ok"
                failure = f"HTTP {r.status_code}"
            except httpx.HTTPError as exc:
                failure = f"{type(exc).__name__}: {exc}"
            self.failing = failure
            log.info(
                "webhook_attempt_failed",
                webhook=self.cfg.name,
                event_id=event.id,
                attempt=attempt + 1,
                error=failure,
            )
        return failure


async def _sleep(stop: asyncio.Event, seconds: float) -> bool:
    """Sleep unless stopped first; True when stopped."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)
    return stop.is_set()


class WebhookSender:
    """Every configured webhook, each in its own task (worker 0)."""

    def __init__(self, config: AdminConfig, client: Store, partitions: int) -> None:
        self.http = httpx.AsyncClient(follow_redirects=False)
        self.hooks = [
            Webhook(client, partitions, w, config.webhook_group, self.http) for w in config.webhooks
        ]
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        for hook in self.hooks:
            await hook.ensure_groups()  # events from now on reach it, even if it starts late
            self._tasks.append(asyncio.create_task(hook.run(self._stop)))

    async def stop(self) -> None:
        self._stop.set()
        for task in self._tasks:
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await asyncio.wait_for(task, timeout=5)
        await self.http.aclose()

    def health(self) -> dict[str, Any]:
        return {
            "ok": True,
            "webhooks": {
                h.cfg.name: {"delivered": h.delivered, "dead": h.dead, "failing": h.failing}
                for h in self.hooks
            },
        }
