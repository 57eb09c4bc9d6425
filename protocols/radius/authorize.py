"""Prepaid authorisation: Access-Request -> grant -> Access-Accept/Reject (RFC 2865 §4,
standards §3.6).

Design: the Access-Request *opens* the charging session (``initiate``), so the
grant the core sizes from balance and policy becomes the Access-Accept's
Session-Timeout and vendor volume limits. The session id (from Acct-Session-Id
when the NAS sends one, else generated) goes back in Class; the NAS echoes it
in accounting and the Start continues the same session (see
:mod:`protocols.radius.accounting`). A balance check without a reservation
(``event(CHECK_BALANCE)``) could not size the quota, and a reservation that
nothing continues is released by the core's supervision timer.

Each Access-Request has its own request key, so a re-authorisation of a live
session (Termination-Action = RADIUS-Request, same Acct-Session-Id) replaces the
reservation with a fresh grant instead of replaying the first answer.

Refusals are Access-Reject with Reply-Message: unknown user, blocked account,
no credit, wrong password (PAP mode). A non-granted session is terminated at
once so nothing stays reserved. Storage failure -> no answer (the NAS retries).
Authentication modes are described in :mod:`protocols.radius.settings`.
"""

from __future__ import annotations

import contextlib
import hmac
from dataclasses import dataclass

from pyrad import packet as rp

from ocs.charging.port import ChargingApi
from ocs.vocabulary.errors import (
    AccountBlocked,
    ChargingError,
    StorageUnavailable,
    UserUnknown,
)
from ocs.vocabulary.types import (
    ChargingAnswer,
    ServiceOutcome,
    ServiceRequest,
    ServiceStatus,
    SessionRef,
    TerminationCause,
    Usage,
)
from protocols.radius import attributes as at
from protocols.radius import sessions as ss
from protocols.radius.accounting import identity_of, service_key
from protocols.radius.codec import ACCESS_ACCEPT, ACCESS_REJECT
from protocols.radius.quota import Attr, QuotaBase, grant_attributes, session_attributes
from protocols.radius.sessions import LiveSessions
from protocols.radius.settings import AuthMode, ClientConfig, RadiusConfig

# Service-Type Authorize-Only (RFC 5176 §3.1): no password; authorise only.
SERVICE_AUTHORIZE_ONLY = 17

# Reply-Message texts (RFC 2865 §5.18): shown to the user by some NAS.
MSG_UNKNOWN = "Unknown user"
MSG_BLOCKED = "Account blocked"
MSG_NO_CREDIT = "No credit"
MSG_DENIED = "Service denied"
MSG_AUTH_FAILED = "Authentication failed"
MSG_NO_IDENTITY = "No subscriber identity"


@dataclass(frozen=True, slots=True)
class AuthAnswer:
    code: int  # ACCESS_ACCEPT or ACCESS_REJECT
    attributes: tuple[Attr, ...]
    reason: str  # metric label / log field
    session: SessionRef | None = None
    granted: Usage | None = None


def reject(message: str, reason: str) -> AuthAnswer:
    return AuthAnswer(ACCESS_REJECT, (("Reply-Message", message),), reason)


def _password_ok(pkt: rp.Packet, client: ClientConfig) -> bool:
    """PAP mode: a User-Password must be present and, if configured, match."""
    encrypted = at.first_raw(pkt, at.USER_PASSWORD)
    if encrypted is None or len(encrypted) % 16 or not encrypted:
        return False
    if client.pap_password is None:
        return True
    given = str(pkt.PwDecrypt(encrypted)).encode()
    return hmac.compare_digest(given, client.pap_password.get_secret_value().encode())


class Authorizer:
    """Answers Access-Requests from the balance (one ``initiate`` per request)."""

    def __init__(
        self, charging: ChargingApi, cfg: RadiusConfig, live: LiveSessions | None = None
    ) -> None:
        self._charging = charging
        self._cfg = cfg
        self._service = service_key(cfg)
        self._live = live if live is not None else LiveSessions()

    async def handle(
        self, pkt: rp.Packet, client: ClientConfig, source: str, received: int
    ) -> AuthAnswer:
        """Accept or reject; raises StorageUnavailable when nothing may be answered."""
        authorize_only = at.get_int(pkt, at.SERVICE_TYPE) == SERVICE_AUTHORIZE_ONLY
        if (
            client.auth_mode is AuthMode.PAP
            and not authorize_only
            and not _password_ok(pkt, client)
        ):
            return reject(MSG_AUTH_FAILED, "auth_failed")
        user_name = at.get_text(pkt, at.USER_NAME)
        subscriber = identity_of(self._cfg, user_name, at.get_text(pkt, at.CALLING_STATION_ID))
        if subscriber is None:
            return reject(MSG_NO_IDENTITY, "no_identity")
        session = self._session(pkt, client, source, user_name)
        services = [ServiceRequest(self._service, requested=Usage())]
        try:
            answer = await self._charging.initiate(
                session, subscriber, services, request_key=_auth_key(pkt), now=received
            )
        except StorageUnavailable:
            raise
        except UserUnknown:
            return reject(MSG_UNKNOWN, "unknown_user")
        except AccountBlocked:
            return reject(MSG_BLOCKED, "blocked")
        except ChargingError as exc:
            return reject(MSG_DENIED, type(exc).__name__)
        return await self._answer(session, client, answer, received)

    def _session(
        self, pkt: rp.Packet, client: ClientConfig, source: str, user_name: str | None
    ) -> SessionRef:
        nas_ip = at.get_ipv4(pkt, at.NAS_IP_ADDRESS) or at.get_ipv6(pkt, at.NAS_IPV6_ADDRESS)
        nas_id = at.get_text(pkt, at.NAS_IDENTIFIER)
        nas = ss.nas_key(nas_ip, nas_id, source)
        acct_sid = at.get_text(pkt, at.ACCT_SESSION_ID)
        sid = ss.authorised_session_id(nas, acct_sid)
        attrs = ss.pack_attributes(
            {
                ss.A_NAS_IP: nas_ip,
                ss.A_NAS_ID: nas_id,
                ss.A_ACCT_SESSION_ID: acct_sid,
                ss.A_USER_NAME: user_name,
                ss.A_FRAMED_IP: at.get_ipv4(pkt, at.FRAMED_IP_ADDRESS),
                ss.A_CALLING_STATION_ID: at.get_text(pkt, at.CALLING_STATION_ID),
                ss.A_SOURCE: source,
                ss.A_CLIENT: client.name,
            }
        )
        attrs += ss.binary_attributes(
            (key, at.first_raw(pkt, code))
            for key, code in (
                (ss.A_USER_NAME, at.USER_NAME),
                (ss.A_ACCT_SESSION_ID, at.ACCT_SESSION_ID),
                (ss.A_CALLING_STATION_ID, at.CALLING_STATION_ID),
                (ss.A_NAS_ID, at.NAS_IDENTIFIER),
            )
        )
        return SessionRef(session_id=sid, owner=ss.owner_of(nas), attributes=attrs)

    async def _answer(
        self, session: SessionRef, client: ClientConfig, answer: ChargingAnswer, now: int
    ) -> AuthAnswer:
        outcome = answer.services[0] if answer.services else None
        if outcome is None or outcome.status not in (
            ServiceStatus.GRANTED,
            ServiceStatus.NOT_APPLICABLE,
        ):
            await self._release(session)
            if outcome is not None and outcome.status is ServiceStatus.CREDIT_LIMIT_REACHED:
                return reject(MSG_NO_CREDIT, "no_credit")
            return reject(MSG_DENIED, outcome.status.value if outcome else "no_outcome")
        attrs: list[Attr] = [("Class", ss.class_for(session.session_id))]
        granted = outcome.granted
        if outcome.status is ServiceStatus.GRANTED:
            if granted is None or not _has_units(granted):
                await self._release(session)
                return reject(MSG_NO_CREDIT, "no_credit")
            attrs += self._limits(session.session_id, client, outcome, granted, now)
        attrs += session_attributes(self._cfg.acct_interim_interval, self._cfg.idle_timeout)
        return AuthAnswer(ACCESS_ACCEPT, tuple(attrs), "accepted", session, granted)

    def _limits(
        self,
        session_id: str,
        client: ClientConfig,
        outcome: ServiceOutcome,
        granted: Usage,
        now: int,
    ) -> list[Attr]:
        # Volume limits are session totals: a re-authorisation adds to what the
        # NAS has already reported (Session-Timeout counts from the new answer).
        live = self._live.get(session_id)
        base = QuotaBase(total_octets=live.total_octets if live else 0)
        return grant_attributes(
            client.flavour,
            granted,
            now=now,
            final=outcome.final_unit is not None,
            validity_time=outcome.validity_time,
            base=base,
        )

    async def _release(self, session: SessionRef) -> None:
        """Close a session we will not accept, so nothing stays reserved."""
        # Nothing reserved, or storage down: then supervision releases it.
        with contextlib.suppress(ChargingError):
            await self._charging.terminate(
                session,
                "auth-reject",
                [ServiceRequest(self._service, requested=None)],
                cause=TerminationCause.CREDIT_EXHAUSTED,
            )


def _auth_key(pkt: rp.Packet) -> str:
    """One key per Access-Request: a re-authorisation (Termination-Action RADIUS-Request,
    same Acct-Session-Id, new Request Authenticator) gets a fresh grant that replaces
    the reservation; a retransmission never reaches here (duplicate cache)."""
    return "auth-" + bytes(pkt.authenticator).hex()[:16]


def _has_units(granted: Usage) -> bool:
    return any(v > 0 for v in granted.as_dict().values())
