"""Server-initiated Gy requests: RAR on top-up / policy change, ASR on block / delete.

RFC 4006 §5.5 (Re-Auth-Request, AUTHORIZE_ONLY, optionally scoped to a Rating-
Group), RFC 6733 §8.5 (Abort-Session-Request). The charging core publishes a
Notification for each live session an account change concerns, from any
process; the worker holding the owning peer's connection sends the request.
Answers: RAA 2001 / 2002 (a CCR-U follows) / 5002 (the client has no such
session), ASA; answers with an unknown Hop-by-Hop id are discarded silently by
the connection (standards §1.2).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, Protocol

import structlog
from diameter.message.avp import Avp

from ocs.charging.port import ChargingApi
from ocs.frontend import follow_notifications
from ocs.vocabulary.types import Notification, NotificationKind
from protocols.diameter import avps as A
from protocols.diameter.capabilities import PeerInfo
from protocols.diameter.codec import Decoded
from protocols.diameter.constants import APP_CREDIT_CONTROL, AvpCode, Command
from protocols.diameter.gy import OWNER_PREFIX
from protocols.diameter.local import LocalNode

log = structlog.get_logger("ocs.diameter.push")

AUTHORIZE_ONLY = 0
ANSWER_TIMEOUT = 10.0
RESUBSCRIBE_DELAY = 1.0

_COMMANDS = {
    NotificationKind.TOPUP: Command.RE_AUTH,
    NotificationKind.ADJUST: Command.RE_AUTH,
    NotificationKind.POLICY_CHANGE: Command.RE_AUTH,
    NotificationKind.BLOCKED: Command.ABORT_SESSION,
    NotificationKind.DELETED: Command.ABORT_SESSION,
    NotificationKind.TERMINATE: Command.ABORT_SESSION,
}


def push_avps(
    n: Notification, local: LocalNode, peer: PeerInfo | None, command: Command
) -> list[Avp]:
    """RAR (RFC 4006 §3.3) or ASR (RFC 6733 §8.5.1) body; Session-Id first."""
    out = [
        A.new(AvpCode.SESSION_ID, n.session_id),
        *A.identity_avps(local.origin_host, local.origin_realm),
        A.new(AvpCode.DESTINATION_REALM, peer.origin_realm if peer else ""),
        A.new(AvpCode.DESTINATION_HOST, peer.origin_host if peer else ""),
        A.new(AvpCode.AUTH_APPLICATION_ID, APP_CREDIT_CONTROL),
    ]
    if command is Command.RE_AUTH:
        out.append(A.new(AvpCode.RE_AUTH_REQUEST_TYPE, AUTHORIZE_ONLY))
        if len(n.rating_groups) == 1:
            out.append(A.new(AvpCode.RATING_GROUP, n.rating_groups[0]))
    return out


class PeerLink(Protocol):
    """An open connection to a peer, as a push needs it (the transport's Connection)."""

    @property
    def peer(self) -> PeerInfo | None: ...

    def request(
        self, command: int, application_id: int, avps: list[Avp]
    ) -> asyncio.Future[Decoded]: ...


Lookup = Callable[[str], PeerLink | None]  # Origin-Host -> its open connection here, if any
Spawn = Callable[[Coroutine[Any, Any, None]], object]


class PushSender:
    def __init__(
        self, lookup: Lookup, local: LocalNode, charging: ChargingApi, spawn: Spawn
    ) -> None:
        self.lookup = lookup
        self.local = local
        self.charging = charging
        self.spawn = spawn
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            # Bounded: a Redis client stuck in a read must not hold up the shutdown.
            await asyncio.wait({self._task}, timeout=2.0)
            self._task = None

    async def _run(self) -> None:
        def lost(exc: Exception) -> None:
            log.warning("diameter_push_subscription_lost", error=repr(exc))

        await follow_notifications(self.charging, self.push, lost, RESUBSCRIBE_DELAY)

    def push(self, note: Notification) -> bool:
        """Send the RAR/ASR for one notification if its peer is connected here."""
        command = _COMMANDS.get(note.kind)
        if command is None or not note.owner.startswith(OWNER_PREFIX):
            return False
        link = self.lookup(note.owner[len(OWNER_PREFIX) :])
        if link is None:
            return False
        answer = link.request(
            command, APP_CREDIT_CONTROL, push_avps(note, self.local, link.peer, command)
        )
        self.spawn(self._await_answer(answer, note, command))
        return True

    async def _await_answer(
        self, answer: asyncio.Future[Decoded], note: Notification, command: Command
    ) -> None:
        try:
            msg = await asyncio.wait_for(answer, ANSWER_TIMEOUT)
        except (TimeoutError, ConnectionError) as exc:
            log.info(
                "diameter_push_unanswered",
                session=note.session_id,
                command=command.name,
                error=repr(exc),
            )
            return
        code = A.get_int(msg.avps, AvpCode.RESULT_CODE)
        log.info(
            "diameter_push_answered", session=note.session_id, command=command.name, result=code
        )
