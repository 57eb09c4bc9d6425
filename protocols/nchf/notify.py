"""Nchf notifications: ChargingNotifyRequest to the notifyUri (TS 32.291 §6.1.5.4, §6.1.3.2).

The charging core publishes a notification for every live session an account
change concerns, from any process (top-up, adjustment, policy change; block,
deletion: see :mod:`ocs.notify`). For a session owned by ``nchf:`` this
module POSTs the ChargingNotifyRequest to the ``notifyUri`` the consumer gave
in its create (kept with the session): REAUTHORIZATION with the rating
groups concerned (the consumer then asks for quota in an update, TS 32.290
§5.2.2.5), or ABORT_CHARGING (the consumer releases the session).

Delivery: HTTP/2 with prior knowledge to ``http://`` URIs (TLS with ALPN to
``https://``), or HTTP/1.1 when configured. A 2xx answer is success. A
connection failure, a time-out or a 5xx / 408 / 429 answer is retried after
``initial_backoff`` seconds, doubled each time up to ``max_backoff``, at most
``retries`` times; any other 4xx is final (the consumer refused it). At most
``max_pending`` notifications are in flight; past that one is dropped and
logged (the session's next update still gets the current balance's answer).
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import structlog

from ocs.charging.port import ChargingApi
from ocs.frontend import follow_notifications
from ocs.vocabulary.types import Notification
from protocols.nchf import codec
from protocols.nchf.config import NotifyConfig
from protocols.nchf.metrics import METRICS

log = structlog.get_logger("ocs.nchf.notify")

RESUBSCRIBE_DELAY = 1.0
_RETRY_STATUSES = frozenset({408, 429})


def backoff_delays(cfg: NotifyConfig) -> list[float]:
    """Seconds to wait before each retry: initial, doubled, capped; ``retries`` of them."""
    return [min(cfg.initial_backoff * (2**i), cfg.max_backoff) for i in range(cfg.retries)]


class NotifySender:
    def __init__(
        self,
        charging: ChargingApi,
        cfg: NotifyConfig,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self.charging = charging
        self.cfg = cfg
        self.client = client or httpx.AsyncClient(http1=not cfg.http2, http2=cfg.http2)
        self.delays = backoff_delays(cfg)
        self.tasks: set[asyncio.Task[Any]] = set()
        self.delivered = 0
        self.failed = 0
        self.dropped = 0
        self._consumer: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._consumer = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        def ours(note: Notification) -> None:
            if note.owner.startswith(codec.OWNER_PREFIX):
                self.submit(note)

        def lost(exc: Exception) -> None:
            log.warning("nchf_notify_subscription_lost", error=repr(exc))

        await follow_notifications(self.charging, ours, lost, RESUBSCRIBE_DELAY)

    def submit(self, note: Notification) -> bool:
        """Deliver in the background; False when nothing is to be sent or too many wait."""
        if len(self.tasks) >= self.cfg.max_pending:
            self.dropped += 1
            METRICS.notifications["dropped"] += 1
            log.warning("nchf_notify_dropped", session=note.session_id, pending=len(self.tasks))
            return False
        task = asyncio.get_running_loop().create_task(self.deliver(note))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return True

    async def deliver(self, note: Notification) -> bool:
        """POST the ChargingNotifyRequest of ``note``; True once a 2xx answers it."""
        body = codec.notify_body(note)
        uri = dict(note.attributes).get(codec.A_NOTIFY_URI)
        if body is None or not uri:
            return False
        headers = {"content-type": "application/json"}
        for attempt in range(len(self.delays) + 1):
            if attempt:
                METRICS.notifications["retried"] += 1
                await asyncio.sleep(self.delays[attempt - 1])
            try:
                resp = await self.client.post(
                    uri, content=body, headers=headers, timeout=self.cfg.timeout
                )
            except httpx.HTTPError as exc:
                log.info(
                    "nchf_notify_error", session=note.session_id, attempt=attempt, error=repr(exc)
                )
                continue
            if resp.is_success:
                self.delivered += 1
                METRICS.notifications["delivered"] += 1
                log.info(
                    "nchf_notified",
                    session=note.session_id,
                    kind=note.kind.value,
                    status=resp.status_code,
                    attempt=attempt,
                )
                return True
            log.info(
                "nchf_notify_refused",
                session=note.session_id,
                status=resp.status_code,
                attempt=attempt,
            )
            if resp.status_code < 500 and resp.status_code not in _RETRY_STATUSES:
                break
        self.failed += 1
        METRICS.notifications["failed"] += 1
        log.warning("nchf_notify_failed", session=note.session_id, kind=note.kind.value)
        return False

    async def stop(self, drain_timeout: float) -> None:
        if self._consumer is not None:
            self._consumer.cancel()
            # Bounded: a Redis client stuck in a read must not hold up the shutdown.
            await asyncio.wait({self._consumer}, timeout=2.0)
            self._consumer = None
        if self.tasks and drain_timeout > 0:
            await asyncio.wait(set(self.tasks), timeout=drain_timeout)
        for task in list(self.tasks):
            task.cancel()
        await self.client.aclose()

    def health(self) -> dict[str, Any]:
        return {
            "consuming": self._consumer is not None and not self._consumer.done(),
            "pending": len(self.tasks),
            "delivered": self.delivered,
            "failed": self.failed,
            "dropped": self.dropped,
        }
