"""When to push Disconnect/CoA to a NAS, and what to do with its answer (RFC 5176,
standards §3.5, §3.6).

Triggers:

- an Interim's charging answer says credit is exhausted or service denied
  (from :mod:`pipeline`) -> Disconnect-Request;
- a core notification for a RADIUS-owned session (any process published it):
  BLOCKED / DELETED -> Disconnect-Request; TOPUP -> a fresh grant via
  ``update`` (no usage reported, new reservation) and a CoA-Request carrying
  the new limits as session totals (last reported usage + grant).

Nothing is sent while ``radius.dae.enabled`` is false: every trigger stops at
:meth:`DynAuth._push` (the one place a request leaves), not only the
notification consumer.

Answers: ACK -> done (the NAS will send its Stop); NAK with Error-Cause 503
(Session-Context-Not-Found) -> the session is gone, so its charging session is
terminated here; other NAKs and timeouts are counted and logged.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Callable, Mapping
from typing import Any

import structlog

from ocs.charging.port import ChargingApi
from ocs.frontend import follow_notifications
from ocs.vocabulary.errors import ChargingError
from ocs.vocabulary.types import (
    Notification,
    NotificationKind,
    ServiceRequest,
    ServiceStatus,
    SessionRef,
    TerminationCause,
    Usage,
)
from protocols.radius import metrics as m
from protocols.radius import sessions as ss
from protocols.radius.accounting import service_key
from protocols.radius.clients import ClientTable
from protocols.radius.dae import (
    ERROR_SESSION_NOT_FOUND,
    DaeKind,
    DaeReply,
    DaeStatus,
    identification,
    retransmit_delays,
)
from protocols.radius.dae_client import DaeClient
from protocols.radius.quota import QuotaBase, grant_attributes
from protocols.radius.sessions import LiveSessions
from protocols.radius.settings import ClientConfig, RadiusConfig

log = structlog.get_logger("ocs.radius.dae")

RESUBSCRIBE_DELAY = 1.0  # seconds before following the pushes again after a lost subscription

DISCONNECT_KINDS = {
    NotificationKind.BLOCKED: TerminationCause.ADMIN,
    NotificationKind.DELETED: TerminationCause.ADMIN,
    NotificationKind.TERMINATE: TerminationCause.ADMIN,
}


class DynAuth:
    def __init__(
        self,
        cfg: RadiusConfig,
        clients: ClientTable,
        live: LiveSessions,
        charging: ChargingApi,
        client: DaeClient | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._cfg = cfg
        self._clients = clients
        self._live = live
        self._charging = charging
        self._client = client or DaeClient()
        self._clock = clock
        self._service = service_key(cfg)
        self._delays = retransmit_delays(
            cfg.dae.initial_timeout, cfg.dae.max_timeout, cfg.dae.retries
        )
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closed = False
        self._enabled = cfg.dae.enabled

    # -- triggers ---------------------------------------------------------------
    def cut_off(self, session: SessionRef, cause: TerminationCause) -> None:
        """Disconnect a session whose credit ran out (called from the request path)."""
        if not self._enabled:
            self._suppressed(session.attributes, DaeKind.DISCONNECT)
            return
        self._spawn(self.disconnect(session.session_id, session.owner, session.attributes, cause))

    async def consume(self) -> None:
        """Push for every RADIUS session the core notifies about, until cancelled. A
        subscription that ends otherwise (an entry that does not decode, a Redis error
        that is not an outage) is logged and taken again, as the Diameter and Nchf
        front ends do: one bad notification never stops the Disconnects that follow."""

        def lost(exc: Exception) -> None:
            log.warning("radius_dae_subscription_lost", error=repr(exc))

        await follow_notifications(self._charging, self._route, lost, RESUBSCRIBE_DELAY)

    def _route(self, note: Notification) -> None:
        """Act on the notifications of RADIUS-owned sessions (nothing once closed)."""
        if note.owner.startswith(ss.OWNER_PREFIX):
            self._spawn(self.on_notification(note))

    async def on_notification(self, note: Notification) -> DaeReply | None:
        if not self._enabled:  # a top-up would reserve a grant nobody is told about
            return None
        cause = DISCONNECT_KINDS.get(note.kind)
        if cause is not None:
            return await self.disconnect(note.session_id, note.owner, note.attributes, cause)
        if note.kind is NotificationKind.TOPUP:
            return await self.topup(note)
        return None

    # -- actions ----------------------------------------------------------------
    async def disconnect(
        self,
        session_id: str,
        owner: str,
        attributes: tuple[tuple[str, str], ...],
        cause: TerminationCause,
    ) -> DaeReply | None:
        attrs = self._attributes(session_id, attributes)
        return await self._push(DaeKind.DISCONNECT, session_id, owner, attrs, [], cause)

    async def topup(self, note: Notification) -> DaeReply | None:
        """New grant for a live session, sent as CoA with session-total limits."""
        attrs = self._attributes(note.session_id, note.attributes)
        target = self._target(attrs)
        if target is None:
            return None
        session = SessionRef(note.session_id, note.owner, tuple(attrs.items()))
        services = [ServiceRequest(self._service, requested=Usage())]
        key = f"coa-{secrets.token_hex(6)}"
        try:
            answer = await self._charging.update(session, key, services)
        except ChargingError as exc:
            log.info("radius_coa_skipped", session=note.session_id, error=repr(exc))
            return None
        outcome = answer.services[0] if answer.services else None
        if outcome is None or outcome.status is not ServiceStatus.GRANTED or not outcome.granted:
            return None
        live = self._live.get(note.session_id)
        base = QuotaBase(
            total_octets=live.total_octets if live else 0, seconds=live.seconds if live else 0
        )
        limits = grant_attributes(
            target[0].flavour,
            outcome.granted,
            now=int(self._clock()),
            final=outcome.final_unit is not None,
            validity_time=outcome.validity_time,
            base=base,
        )
        return await self._push(
            DaeKind.COA, note.session_id, note.owner, attrs, limits, TerminationCause.OTHER
        )

    # -- plumbing ---------------------------------------------------------------
    def _attributes(self, session_id: str, given: tuple[tuple[str, str], ...]) -> dict[str, str]:
        attrs = dict(given)
        live = self._live.get(session_id)
        if live is not None:
            attrs.update(live.attributes)
        return attrs

    def _target(self, attrs: Mapping[str, str]) -> tuple[ClientConfig, tuple[str, int]] | None:
        client = None
        name = attrs.get(ss.A_CLIENT)
        if name:
            client = next((c for c in self._clients if c.name == name), None)
        source = attrs.get(ss.A_SOURCE)
        if client is None and source:
            client = self._clients.lookup(source)
        if client is None:
            return None
        host = str(client.dae_address) if client.dae_address is not None else source
        if not host:
            return None
        return client, (host, client.dae_port)

    async def _push(
        self,
        kind: DaeKind,
        session_id: str,
        owner: str,
        attrs: Mapping[str, str],
        extra: list[tuple[str, Any]],
        cause: TerminationCause,
    ) -> DaeReply | None:
        if not self._enabled:
            self._suppressed(tuple(attrs.items()), kind)
            return None
        target = self._target(attrs)
        if target is None:
            self._failed(attrs.get(ss.A_CLIENT) or m.UNKNOWN_NAS, kind, session_id, "no_target")
            return None
        client, dest = target
        try:
            reply = await self._client.send(
                kind,
                dest,
                client.secret_bytes(),
                identification(attrs) + extra,
                int(self._clock()),
                self._delays,
                m.DAE_SENT.labels(client.name, kind.value).inc,
            )
        except Exception as exc:  # encoding, socket: reported here, never lost silently
            self._failed(client.name, kind, session_id, "error", repr(exc))
            return None
        self._count(client.name, kind, reply)
        log.info(
            "radius_dae_answered",
            session=session_id,
            kind=kind.value,
            status=reply.status.value,
            error_cause=reply.error_cause,
        )
        if reply.status is DaeStatus.NAK and reply.error_cause == ERROR_SESSION_NOT_FOUND:
            await self._close(session_id, owner, attrs, cause)
        return reply

    async def _close(
        self, session_id: str, owner: str, attrs: Mapping[str, str], cause: TerminationCause
    ) -> None:
        """The NAS has no such session: end its charging (releases the reservation)."""
        self._live.forget(session_id)
        session = SessionRef(session_id, owner, tuple(attrs.items()))
        try:
            await self._charging.terminate(
                session, "dae-gone", [ServiceRequest(self._service)], cause=cause
            )
        except ChargingError as exc:
            log.info("radius_dae_close_failed", session=session_id, error=repr(exc))

    def _failed(
        self, nas: str, kind: DaeKind, session_id: str, reason: str, error: str = ""
    ) -> None:
        """A push that did not go out: counted and logged with the session it was for
        (a cut-off is tried again on the session's next Interim)."""
        m.DAE_FAILED.labels(nas, kind.value, reason).inc()
        log.error(
            "radius_dae_failed", session=session_id, kind=kind.value, reason=reason, error=error
        )

    def _suppressed(self, attrs: tuple[tuple[str, str], ...], kind: DaeKind) -> None:
        nas = next((v for k, v in attrs if k == ss.A_CLIENT), m.UNKNOWN_NAS)
        m.DAE_SUPPRESSED.labels(nas, kind.value).inc()

    def _count(self, nas: str, kind: DaeKind, reply: DaeReply) -> None:
        if reply.status is DaeStatus.ACK:
            m.DAE_ACK.labels(nas, kind.value).inc()
        elif reply.status is DaeStatus.NAK:
            m.DAE_NAK.labels(nas, kind.value, str(reply.error_cause or 0)).inc()
        else:
            m.DAE_TIMEOUTS.labels(nas, kind.value).inc()

    def _spawn(self, coro: Any) -> None:
        if self._closed:
            coro.close()
            return
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            # Not a send (_push reports those): e.g. the top-up's grant. Still counted.
            m.DAE_FAILED.labels(m.UNKNOWN_NAS, "unknown", "error").inc()
            log.error("radius_dae_failed", reason="error", error=repr(task.exception()))

    async def drain(self, within: float) -> None:
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=within)

    def close(self) -> None:
        self._closed = True
        for task in list(self._tasks):
            task.cancel()
        self._client.close()
