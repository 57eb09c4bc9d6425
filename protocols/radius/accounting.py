"""RADIUS accounting mapped onto the charging API (RFC 2866, standards §3.4).

One Accounting-Request -> one charging call, and the answer only after it
returns (the record is durable in Redis by then):

- Start -> ``initiate`` (reserve per policy), or ``update`` of the session an
  Access-Request opened (recognised by our Class, see :mod:`sessions`);
- Interim-Update -> ``update`` with cumulative counters (the core charges the
  difference; a Disconnect follows when the answer says credit is exhausted);
- Stop -> ``terminate`` with cumulative counters, releasing what is left;
- Interim/Stop without Start -> ``subscriber=`` given, so the core opens /
  records the session anyway;
- Accounting-On/Off -> ``terminate_owner_sessions`` for this NAS, through the
  bounded queue of :mod:`protocols.radius.restarts`.

Idempotency: ``request_key`` is a digest of (status, counters), so a record
re-sent with a new Identifier charges nothing more. StorageUnavailable (and
any unexpected error) propagates: the transport sends nothing and the NAS
retries. Other request-level failures (unknown user, blocked account...) are
acknowledged, since the NAS cannot act on them, and logged and counted.
"""

from __future__ import annotations

import enum
from typing import NamedTuple

from ocs.charging.port import ChargingApi
from ocs.vocabulary.errors import (
    AccountBlocked,
    ChargingError,
    StorageUnavailable,
)
from ocs.vocabulary.types import (
    ChargingAnswer,
    Identity,
    ServiceKey,
    ServiceRequest,
    ServiceStatus,
    SessionRef,
    TerminationCause,
    UnitType,
    Usage,
)
from protocols.radius import attributes as at
from protocols.radius import sessions as ss
from protocols.radius.accounting_record import AcctRecord, StatusType
from protocols.radius.counters import Counters, request_key
from protocols.radius.restarts import NasRestarts
from protocols.radius.settings import ClientConfig, IdentitySource, RadiusConfig

# Acct-Terminate-Cause (RFC 2866 §5.10) -> why the charging session ended.
TERMINATE_CAUSES: dict[int, TerminationCause] = {
    6: TerminationCause.ADMIN,  # Admin-Reset
    7: TerminationCause.NAS_REBOOT,  # Admin-Reboot
    11: TerminationCause.NAS_REBOOT,  # NAS-Reboot
    15: TerminationCause.SERVICE_DENIED,  # Service-Unavailable
}
NORMAL_CAUSES = frozenset({1, 2, 3, 4, 5, 10, 12, 17, 18})

# Per-service outcomes after which the NAS must cut the session.
CUT_OFF = frozenset({ServiceStatus.CREDIT_LIMIT_REACHED, ServiceStatus.SERVICE_DENIED})


class AcctOutcome(enum.Enum):
    """What happened to one record (metric label and log field)."""

    CHARGED = "charged"
    REPLAYED = "replayed"
    NAS_RESTART = "nas_restart"
    IGNORED = "ignored"  # status we do not charge (Failed, unknown)
    REJECTED = "rejected"  # a charging error the NAS cannot act on: acknowledged


class AcctResult(NamedTuple):  # immutable, and cheaper to build than a frozen dataclass
    outcome: AcctOutcome
    session: SessionRef | None = None
    cut_off: TerminationCause | None = None  # send a Disconnect for this reason
    detail: str = ""


def termination_cause(code: int | None) -> TerminationCause:
    if code is None or code in NORMAL_CAUSES:
        return TerminationCause.NORMAL
    return TERMINATE_CAUSES.get(code, TerminationCause.OTHER)


def identity_of(cfg: RadiusConfig, user_name: str | None, calling: str | None) -> Identity | None:
    value = user_name if cfg.identity is IdentitySource.USER_NAME else calling
    return Identity(cfg.identity_type, value) if value else None


def service_key(cfg: RadiusConfig) -> ServiceKey:
    return ServiceKey(cfg.service.rating_group, cfg.service.service_id)


# What an Accounting-Request reports (RFC 2866 §5.3, §5.4, §5.7; RFC 2869 §5.1, §5.2):
# octets and seconds. A service rated in anything else could never be charged.
REPORTED_UNITS = frozenset(
    {UnitType.TOTAL_OCTETS, UnitType.INPUT_OCTETS, UnitType.OUTPUT_OCTETS, UnitType.SECONDS}
)


def unrated_service(cfg: RadiusConfig, unit: UnitType | None) -> str | None:
    """Why ``radius.service`` cannot be charged when the policy rates it in ``unit``
    (None when it can, or when no policy service matches: the core answers that)."""
    if unit is None or unit in REPORTED_UNITS:
        return None
    service = cfg.service
    reported = ", ".join(sorted(u.value for u in REPORTED_UNITS))
    return (
        f"service: rating_group {service.rating_group}, service_id {service.service_id} "
        f"names a service the policy rates in {unit.value}; RADIUS accounting reports "
        f"only {reported}: point it at a service rated in one of those"
    )


def session_ref(
    rec: AcctRecord, client: str, source: str, nas: str, from_class: str | None
) -> SessionRef:
    named = (
        (ss.A_NAS_IP, rec.nas_ip),
        (ss.A_NAS_ID, rec.nas_identifier),
        (ss.A_ACCT_SESSION_ID, rec.session_id),
        (ss.A_USER_NAME, rec.user_name),
        (ss.A_FRAMED_IP, rec.framed_ip),
        (ss.A_CALLING_STATION_ID, rec.calling_station_id),
        (ss.A_SOURCE, source),
        (ss.A_CLIENT, client),
    )
    attrs = tuple((k, v) for k, v in named if v)  # as ss.pack_attributes, without the dict
    if rec.binary:  # rare: echo these as the octets received (RFC 5176 §3)
        attrs += ss.binary_attributes((_SESSION_KEYS[t], octets) for t, octets in rec.binary)
    sid = from_class or ss.accounting_session_id(nas, rec.session_id)
    return SessionRef(sid, ss.owner_of(nas), attrs)


# Attribute type of each echoed text attribute -> its key in SessionRef.attributes.
_SESSION_KEYS = {
    at.USER_NAME: ss.A_USER_NAME,
    at.ACCT_SESSION_ID: ss.A_ACCT_SESSION_ID,
    at.CALLING_STATION_ID: ss.A_CALLING_STATION_ID,
    at.NAS_IDENTIFIER: ss.A_NAS_ID,
}

# Built once: frozen core values every request would otherwise rebuild.
_ANY_AMOUNT = Usage()
_NOTHING_USED_YET = (Counters(0, 0, 0).used_units(),)
_START, _INTERIM, _STOP = (
    int(StatusType.START),
    int(StatusType.INTERIM_UPDATE),
    int(StatusType.STOP),
)
_CHARGED_STATUSES = frozenset({_START, _INTERIM, _STOP})
_RESTARTS = frozenset({int(StatusType.ACCOUNTING_ON), int(StatusType.ACCOUNTING_OFF)})


class AccountingMapper:
    """Turns one parsed Accounting-Request into one charging call."""

    def __init__(self, charging: ChargingApi, cfg: RadiusConfig) -> None:
        self._charging = charging
        self._cfg = cfg
        self._service = service_key(cfg)
        limits = cfg.nas_restart
        self.restarts = NasRestarts(self._close_owner, limits.concurrency, limits.max_waiting)

    async def handle(
        self, rec: AcctRecord, client: ClientConfig, source: str, received: int
    ) -> AcctResult:
        """Charge the record; raises StorageUnavailable when nothing may be answered."""
        now = rec.event_time(received)
        status = rec.status
        if status not in _CHARGED_STATUSES:
            if status in _RESTARTS:
                return await self._nas_restart(rec, source, now)
            return AcctResult(AcctOutcome.IGNORED, detail=f"status {status}")
        nas = rec.nas_ip or rec.nas_identifier or source  # ss.nas_key
        from_class = ss.session_from_class(nas, rec.classes) if rec.classes else None
        session = session_ref(rec, client.name, source, nas, from_class)
        subscriber = identity_of(self._cfg, rec.user_name, rec.calling_station_id)
        try:
            answer = await self._charge(rec, session, subscriber, now, from_class is not None)
        except StorageUnavailable:
            raise
        except AccountBlocked as exc:
            return AcctResult(
                AcctOutcome.REJECTED, session, TerminationCause.ADMIN, type(exc).__name__
            )
        except ChargingError as exc:
            # The message may name the subscriber: only the class goes to logs.
            return AcctResult(AcctOutcome.REJECTED, session, None, type(exc).__name__)
        return self._result(rec, session, answer)

    async def _nas_restart(self, rec: AcctRecord, source: str, now: int) -> AcctResult:
        owner = ss.owner_of(ss.nas_key(rec.nas_ip, rec.nas_identifier, source))
        closed = await self.restarts.close(owner, now)
        return AcctResult(AcctOutcome.NAS_RESTART, detail=f"{owner}: {closed} sessions closed")

    async def _close_owner(self, owner: str, opened_before: int) -> int:
        return await self._charging.terminate_owner_sessions(
            owner, TerminationCause.NAS_REBOOT, opened_before=opened_before
        )

    async def _charge(
        self,
        rec: AcctRecord,
        session: SessionRef,
        subscriber: Identity | None,
        now: int,
        continued: bool,
    ) -> ChargingAnswer:
        status, counters = rec.status, rec.counters
        key = request_key(status, counters)
        if status == _START:
            return await self._start(session, subscriber, key, now, continued)
        used = () if counters.is_empty() else (counters.used_units(),)
        if status == _INTERIM:
            services = [ServiceRequest(self._service, requested=_ANY_AMOUNT, used=used)]
            return await self._charging.update(
                session, key, services, subscriber=subscriber, now=now
            )
        services = [ServiceRequest(self._service, requested=None, used=used)]
        return await self._charging.terminate(
            session,
            key,
            services,
            cause=termination_cause(rec.terminate_cause),
            subscriber=subscriber,
            now=now,
        )

    async def _start(
        self,
        session: SessionRef,
        subscriber: Identity | None,
        key: str,
        now: int,
        continued: bool,
    ) -> ChargingAnswer:
        if continued:
            # The Access-Request opened this session: a Start continues it.
            services = [
                ServiceRequest(self._service, requested=_ANY_AMOUNT, used=_NOTHING_USED_YET)
            ]
            return await self._charging.update(
                session, key, services, subscriber=subscriber, now=now
            )
        if subscriber is None:
            raise _NoIdentity("no subscriber identity in the Start")
        services = [ServiceRequest(self._service, requested=_ANY_AMOUNT)]
        return await self._charging.initiate(
            session, subscriber, services, request_key=key, now=now
        )

    def _result(self, rec: AcctRecord, session: SessionRef, answer: ChargingAnswer) -> AcctResult:
        outcome = AcctOutcome.REPLAYED if answer.replayed else AcctOutcome.CHARGED
        if rec.status != _STOP:
            for service in answer.services:
                if service.status in CUT_OFF:
                    return AcctResult(outcome, session, TerminationCause.CREDIT_EXHAUSTED)
        return AcctResult(outcome, session)


class _NoIdentity(ChargingError):
    """The record names no subscriber we could charge."""
