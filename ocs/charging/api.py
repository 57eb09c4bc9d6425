"""The protocol-neutral charging API: the one place that decides money.

Every front end (Diameter Gy, RADIUS, the CLI) calls these coroutines; each
maps to exactly one atomic Redis script on the normal path (DESIGN.md, "Data
flow" 2). Session life cycle as in RFC 4006 §7 (server state machine):
``initiate`` (CCR-I / Start) -> ``update``* (CCR-U / Interim) -> ``terminate``
(CCR-T / Stop); or a one-shot ``event`` (RFC 4006 §5.4).

Idempotency: every request carries a ``request_key`` (Gy: the CC-Request-Number
as text; RADIUS: a digest of status and counters). The script stores the first
outcome under that key and a repeat gets the same answer with
``replayed=True`` and no second charge.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence

from ocs.charging.types import (
    ChargingAnswer,
    EventAction,
    EventAnswer,
    Identity,
    Notification,
    ServiceKey,
    ServiceRequest,
    SessionRef,
    TerminationCause,
    Usage,
)


class ChargingService:
    """Facade over rating (Python) and the balance scripts (Redis Lua).

    Create with :meth:`ocs.charging.runtime.open_charging`; one instance per
    process, shared by every front end of that process.
    """

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
        raise NotImplementedError

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
        raise NotImplementedError

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
        raise NotImplementedError

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
        """One-shot charge: direct debit, refund, balance check, price enquiry.

        ``event_id`` makes it idempotent (Gy: Session-Id + CC-Request-Number).
        """
        raise NotImplementedError

    async def terminate_owner_sessions(
        self, owner: str, cause: TerminationCause, opened_before: int | None = None
    ) -> int:
        """Close every open session of one owner (Diameter peer restart with a
        higher Origin-State-Id; RADIUS Accounting-On/Off). Returns how many."""
        raise NotImplementedError

    def notifications(self) -> AsyncIterator[Notification]:
        """Pushes for live sessions (top-up, block...), from any process."""
        raise NotImplementedError
