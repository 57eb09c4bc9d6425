"""A charging core that answers at once with one prebuilt answer, for the front ends'
micro-benchmarks (``loadtest.gy_fastpath_bench``, ``loadtest.radius_bench``): only the
front end, the event loop and the client cost CPU. It is a :class:`ChargingApi`, so the
front ends take it as they take the real core; a measurement tool, never a test double
that tests rely on.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from ocs.charging.port import ChargingApi
from ocs.vocabulary.types import ChargingAnswer, EventAnswer, Notification, ServiceKey, UnitType


class StubCore:
    """Every session call gets ``answer``; no events, no pushes."""

    def __init__(self, answer: ChargingAnswer, unit: UnitType = UnitType.TOTAL_OCTETS) -> None:
        self.answer = answer
        self.unit = unit

    async def initiate(self, *args: Any, **kwargs: Any) -> ChargingAnswer:
        return self.answer

    async def update(self, *args: Any, **kwargs: Any) -> ChargingAnswer:
        return self.answer

    async def terminate(self, *args: Any, **kwargs: Any) -> ChargingAnswer:
        return self.answer

    async def event(self, *args: Any, **kwargs: Any) -> EventAnswer:
        raise NotImplementedError("no events in this measurement")

    async def terminate_owner_sessions(self, *args: Any, **kwargs: Any) -> int:
        return 0

    async def notifications(self) -> AsyncIterator[Notification]:
        await asyncio.Event().wait()  # no pushes in this measurement
        return
        yield  # an async generator that never yields

    def service_unit(self, service: ServiceKey) -> UnitType | None:
        return self.unit


def stub_core(answer: ChargingAnswer) -> ChargingApi:
    """The stub, typed as the API the front ends depend on (mypy checks it conforms)."""
    return StubCore(answer)
