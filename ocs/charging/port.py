"""The charging API as a Protocol: what every front end depends on.

Front ends (``protocols/``), benches and test doubles are typed against
:class:`ChargingApi`, never against its implementation
(:class:`ocs.charging.api.ChargingService`), so a stub core needs no cast
and a front end cannot reach into the store (STYLE.md 16).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Protocol

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


class ChargingApi(Protocol):
    """Sessions (RFC 4006 §7: initiate -> update* -> terminate), one-shot
    events (§5.4), closing an owner's sessions, and pushes for live sessions.
    Request-level failures raise :mod:`ocs.vocabulary.errors`."""

    async def initiate(
        self,
        session: SessionRef,
        subscriber: Identity | Sequence[Identity],
        services: Sequence[ServiceRequest],
        request_key: str = "0",
        now: int | None = None,
    ) -> ChargingAnswer: ...

    async def update(
        self,
        session: SessionRef,
        request_key: str,
        services: Sequence[ServiceRequest],
        subscriber: Identity | Sequence[Identity] | None = None,
        now: int | None = None,
    ) -> ChargingAnswer: ...

    async def terminate(
        self,
        session: SessionRef,
        request_key: str,
        services: Sequence[ServiceRequest],
        cause: TerminationCause = TerminationCause.NORMAL,
        subscriber: Identity | Sequence[Identity] | None = None,
        now: int | None = None,
    ) -> ChargingAnswer: ...

    async def event(
        self,
        event_id: str,
        subscriber: Identity | Sequence[Identity],
        service: ServiceKey,
        action: EventAction,
        units: Usage | None = None,
        owner: str = "",
        now: int | None = None,
    ) -> EventAnswer: ...

    async def terminate_owner_sessions(
        self, owner: str, cause: TerminationCause, opened_before: int | None = None
    ) -> int: ...

    def notifications(self) -> AsyncIterator[Notification]: ...

    def service_unit(self, service: ServiceKey) -> UnitType | None:
        """The unit the policy in force rates ``service`` in (None: no policy service)."""
        ...
