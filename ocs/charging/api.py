"""The protocol-neutral charging API: the one place that decides money.

Every front end (Diameter Gy, RADIUS, the CLI) calls these coroutines
(typed against :class:`ocs.charging.port.ChargingApi`); each maps to exactly
one atomic Redis script, sent through the store's gateway
(:class:`~ocs.store.gateway.ScriptGateway`) in one pipeline with the index
updates around it, so one round trip on the normal path (DESIGN.md "Data
flow" 2). Session life cycle as in RFC 4006 §7 (server state machine; the
table is :mod:`ocs.store.session_states`): ``initiate`` (CCR-I / Start)
-> ``update``* (CCR-U / Interim) -> ``terminate`` (CCR-T / Stop); or a
one-shot ``event`` (RFC 4006 §5.4).

Idempotency: every request carries a ``request_key`` (Gy: the CC-Request-Number
as text; Nchf: the invocation sequence number; RADIUS: a digest of status and
counters). The script stores the first outcome under that key and a repeat
gets the same answer with ``replayed=True`` and no second charge, within a
window of ``ANSWER_WINDOW`` (16) answers per session
(:mod:`ocs.store.layout`, "Answers"):

- a numbered key (decimal) N is replayed while N is among the last 16
  numbers of its session, in whatever order they came (a CCR-U re-sent
  after a T-flag failover and six newer ones, a CCR-T re-sent after the
  close);
- older than that it is *too old*: it may have been charged and its answer
  is gone, so it raises :class:`~ocs.vocabulary.errors.RequestTooOld`
  (an InvalidRequest: Gy 5012 DIAMETER_UNABLE_TO_COMPLY, Nchf
  CHARGING_FAILED) and changes nothing: a late duplicate is never charged
  twice, and the client, which has moved on, drops it;
- any other key (RADIUS) is replayed while its hashed slot holds it; a
  RADIUS record that is not replayed and whose cumulative counters are
  all at or below the ones already counted (an Interim delayed or re-sent
  past newer ones) charges nothing (standards §3.4: never charge a total
  twice).
"""

from __future__ import annotations

import functools
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence

import structlog

from ocs.charging import closing
from ocs.charging.events import EventRequest, charge_event, plan_unknown
from ocs.charging.requests import outcomes, rate_request
from ocs.charging.resolver import Resolver, Target
from ocs.metrics import CHARGING_OUTCOMES
from ocs.notify import subscribe
from ocs.policy.loader import PolicySet
from ocs.store.calls import AbandonReply, SessionArgs, Stale
from ocs.store.client import Store
from ocs.store.client import partitions as read_partitions
from ocs.store.gateway import IndexHints, ScriptGateway
from ocs.store.layout import check_layout
from ocs.vocabulary import errors
from ocs.vocabulary.types import (
    ChargingAnswer,
    EventAction,
    EventAnswer,
    Identity,
    Notification,
    ServiceKey,
    ServiceRequest,
    SessionRef,
    TerminationCause,
    UnitType,
    Usage,
)

log = structlog.get_logger("ocs.charging")


@functools.cache
def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def error_name(exc: BaseException) -> str:
    """The metric label of a charging error: ``UserUnknown`` -> ``user_unknown``."""
    return _snake(type(exc).__name__)


def _as_list(subscriber: Identity | Sequence[Identity] | None) -> list[Identity]:
    if subscriber is None:
        return []
    if isinstance(subscriber, Identity):
        return [subscriber]
    return list(subscriber)


class ChargingService:
    """Facade over rating (Python) and the balance scripts (the store's gateway).

    One instance per process, shared by every front end of that process;
    :meth:`connect` builds it. ``policies`` can be swapped at any time
    (hot reload): each request rates with the set in force when it starts.
    """

    def __init__(self, client: Store, policies: PolicySet, partitions: int) -> None:
        self.policies = policies
        self.store = ScriptGateway(client, partitions)
        self.resolver = Resolver(client, partitions, batch=self.store.batch)
        # Bound once: a module-level structlog proxy re-binds on every call
        # (~2 us per event even when its level is filtered out).
        self._log = log.bind()
        # The time requests are rated at when they carry none: a seam so
        # tests can put a session on either side of a tariff switch.
        self.clock: Callable[[], float] = time.time

    @classmethod
    async def connect(cls, client: Store, policies: PolicySet) -> ChargingService:
        """The service on ``client``'s store; StoreMigrationNeeded if the
        store holds an older layout (``ocs store migrate``)."""
        await check_layout(client)
        service = cls(client, policies, await read_partitions(client))
        await service.store.load()
        return service

    @property
    def redis(self) -> Store:
        """The store's client (for the runtime's side tasks: renewals)."""
        return self.store.redis

    @property
    def partitions(self) -> int:
        return self.store.partitions

    def close(self) -> None:
        """Close the hot-path connection (the client's pool is its owner's to close)."""
        self.store.close()

    # -- sessions -----------------------------------------------------------

    async def initiate(
        self,
        session: SessionRef,
        subscriber: Identity | Sequence[Identity],
        services: Sequence[ServiceRequest],
        request_key: str = "0",
        now: int | None = None,
    ) -> ChargingAnswer:
        """Open a session and reserve quota per service (CCR-I, RADIUS Start).

        Raises UserUnknown, AccountBlocked, StorageUnavailable. A failure leaves
        nothing reserved (standards §2.6 "CCR-I fails: stay Idle").
        """
        ids = _as_list(subscriber)
        if not ids:
            raise errors.InvalidRequest("initiate needs a subscriber identity")
        return await _counted(
            "initiate",
            self._session_call(
                "initiate", session, request_key, services, ids, now, TerminationCause.NORMAL, True
            ),
        )

    async def update(
        self,
        session: SessionRef,
        request_key: str,
        services: Sequence[ServiceRequest],
        subscriber: Identity | Sequence[Identity] | None = None,
        now: int | None = None,
    ) -> ChargingAnswer:
        """Debit the reported usage, release the old reservation, reserve again.

        With ``subscriber`` given and the session unknown, the session is opened
        implicitly (RADIUS Interim without Start); without it, UnknownSession.
        """
        return await _counted(
            "update",
            self._session_call(
                "update",
                session,
                request_key,
                services,
                _as_list(subscriber),
                now,
                TerminationCause.NORMAL,
                subscriber is not None,
            ),
        )

    async def terminate(
        self,
        session: SessionRef,
        request_key: str,
        services: Sequence[ServiceRequest],
        cause: TerminationCause = TerminationCause.NORMAL,
        subscriber: Identity | Sequence[Identity] | None = None,
        now: int | None = None,
    ) -> ChargingAnswer:
        """Debit the final usage, release what is left, write the record.

        With ``subscriber`` given and the session unknown, the usage is still
        charged and recorded (RADIUS Stop without Start); otherwise UnknownSession.
        """
        return await _counted(
            "terminate",
            self._session_call(
                "terminate",
                session,
                request_key,
                services,
                _as_list(subscriber),
                now,
                cause,
                subscriber is not None,
            ),
        )

    async def _session_call(
        self,
        op: str,
        session: SessionRef,
        request_key: str,
        services: Sequence[ServiceRequest],
        ids: list[Identity],
        now: int | None,
        cause: TerminationCause,
        create: bool,
    ) -> ChargingAnswer:
        ts = int(self.clock()) if now is None else now
        sid = session.session_id
        for attempt in (0, 1):
            target = await self._target(sid, ids, prefer_identity=op == "initiate")
            policies = self.policies
            if target.plan not in policies.plans:
                raise plan_unknown(target, policies)
            rated = rate_request(policies, target.plan, services, ts)
            args = SessionArgs(
                session_id=sid,
                request_key=request_key,
                now=ts,
                account_id=target.account_id,
                identity_key=target.identity_key,
                plan=target.plan,
                ids=tuple(i.key() for i in ids),
                owner=session.owner,
                attributes=session.attributes,
                policy_version=policies.version,
                supervision=rated.supervision or 3600,
                services=rated.services,
                cause=cause.value,
                create=create,
                tax_ppm=policies.tax_ppm(target.plan),
                low_balance=policies.notifications.low_balance,
            )
            try:
                reply = await self.store.session(op, args, self._hints(op, create, session))
            except Stale:
                if attempt == 0:
                    self.resolver.forget(ids, sid)
                    continue
                raise errors.UnknownSession(f"{sid}: stale") from None
            self.resolver.remember_session(sid, target)
            answer = ChargingAnswer(
                session_id=sid,
                request_number=_number(request_key),
                account_id=target.account_id,
                services=outcomes(rated, reply),
                replayed=reply.replayed,
            )
            self._log.debug(
                "charging_" + op, session=sid, account=target.account_id, replayed=answer.replayed
            )
            return answer
        raise errors.UnknownSession(sid)  # not reached: the loop returns or raises

    def _hints(self, op: str, create: bool, session: SessionRef) -> IndexHints:
        # May this call open the session? An update that may create one (RADIUS
        # Interim) of a session this process has served is taken as an update.
        sid = session.session_id
        opening = op == "initiate" or (
            op == "update" and create and self.resolver.cached_session(sid) is None
        )
        owner_new = (
            op != "terminate"
            and bool(session.owner)
            and self.resolver.owner_is_new(sid, session.owner)
        )
        return IndexHints(opening, owner_new)

    async def _target(self, session_id: str, ids: list[Identity], prefer_identity: bool) -> Target:
        if prefer_identity and ids:
            return await self.resolver.by_identity(ids)
        hit = self.resolver.cached_session(session_id)  # the common case, no await chain
        if hit is not None:
            return hit
        try:
            return await self.resolver.by_session(session_id)
        except errors.UnknownSession:
            if not ids:
                raise
            return await self.resolver.by_identity(ids)

    # -- one-shot events -----------------------------------------------------

    async def event(
        self,
        event_id: str,
        subscriber: Identity | Sequence[Identity],
        service: ServiceKey,
        action: EventAction,
        units: Usage | None = None,
        owner: str = "",
        now: int | None = None,
    ) -> EventAnswer:
        """One-shot charge: direct debit, refund, balance check, price enquiry,
        counted in ocs_charging_outcomes_total.

        ``event_id`` makes it idempotent (Gy: Session-Id + CC-Request-Number).
        A service unknown to the policy, or units it is not rated in (see
        :func:`ocs.charging.events.event_charge`), answer RATING_FAILED,
        changing nothing.
        """
        ts = int(self.clock()) if now is None else now
        request = EventRequest(event_id, _as_list(subscriber), service, action, units, owner, ts)
        try:
            answer = await charge_event(self.store, self.resolver, self.policies, request)
        except errors.ChargingError as exc:
            CHARGING_OUTCOMES.inc("event", error_name(exc))
            raise
        CHARGING_OUTCOMES.inc("event", answer.status.value)
        return answer

    # -- closing sessions the gateway will not close ---------------------------

    async def abandon(
        self,
        account_id: str,
        session_id: str,
        cause: TerminationCause,
        now: int | None = None,
        force: bool = False,
        opened_before: int | None = None,
    ) -> AbandonReply:
        """Release and record one session past its supervision deadline (or
        ``force``); see :mod:`ocs.charging.closing`."""
        ts = int(self.clock()) if now is None else now
        return await closing.abandon(
            self.store, self.policies, account_id, session_id, cause, ts, force, opened_before
        )

    async def terminate_owner_sessions(
        self, owner: str, cause: TerminationCause, opened_before: int | None = None
    ) -> int:
        """Close every open session of one owner (Diameter peer restart with a
        higher Origin-State-Id; RADIUS Accounting-On/Off). Returns how many."""
        return await closing.close_owner_sessions(
            self.store, self.policies, owner, cause, self.clock, opened_before
        )

    def notifications(self) -> AsyncIterator[Notification]:
        """Pushes for live sessions (top-up, block...), from any process."""
        # The start is fixed now, not at the first read: nothing written after
        # this call is missed, however late the consumer task gets going.
        return subscribe(self.store.redis, self.partitions, since_ms=int(time.time() * 1000))

    def service_unit(self, service: ServiceKey) -> UnitType | None:
        """The unit the policy in force rates ``service`` in (None: no policy service)."""
        name = self.policies.service_name(service)
        return None if name is None else self.policies.services[name].unit


async def _counted(op: str, call: Awaitable[ChargingAnswer]) -> ChargingAnswer:
    """The answer of a session call, counted in ocs_charging_outcomes_total
    (per service, or the error's name)."""
    try:
        answer = await call
    except errors.ChargingError as exc:
        CHARGING_OUTCOMES.inc(op, error_name(exc))
        raise
    for outcome in answer.services:
        CHARGING_OUTCOMES.inc(op, outcome.status.value)
    return answer


def _number(request_key: str) -> int:
    return int(request_key) if request_key.isdigit() else 0
