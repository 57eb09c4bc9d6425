"""``radius.service`` must name a service rated in what RADIUS reports (octets, seconds):
one rated in events could never be charged, so the front end refuses to start."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ocs.charging.api import ChargingService
from ocs.config import ConfigError
from ocs.frontend import FrontendContext
from protocols.radius.frontend import create
from tests.integration.radius.conftest import DATA_RG, radius_config

SMS_RG = 40  # tests/policies/test.yaml: rated in events
VOICE_RG = 30  # ... in seconds


def _frontend(service: dict[str, Any]) -> Any:
    raw = radius_config(3799, service=service).model_dump(mode="json")
    raw["clients"][0]["secret"] = "integration-secret"  # SecretStr dumps masked
    ctx = FrontendContext(Path("ocs.yaml"), "radius", "ocs.test", "test", "ocs")
    return create(raw, ctx)


async def test_service_rated_in_events_is_refused_at_start(charging: ChargingService) -> None:
    """An events-rated radius.service: ConfigError naming the file and key, nothing bound."""
    frontend = _frontend({"rating_group": SMS_RG})
    with pytest.raises(ConfigError) as refused:
        await frontend.start(charging)
    message = str(refused.value)
    assert message.startswith("ocs.yaml: radius.service: rating_group 40")
    assert "rates in events" in message
    assert frontend.listeners() and frontend.health()["acct"] == []  # nothing was bound


@pytest.mark.parametrize("rating_group", [DATA_RG, VOICE_RG])
async def test_service_rated_in_octets_or_seconds_starts(
    charging: ChargingService, rating_group: int
) -> None:
    """A service rated in octets (data) or seconds (voice) starts and listens."""
    frontend = _frontend({"rating_group": rating_group})
    await frontend.start(charging)
    try:
        assert frontend.health()["acct"]
    finally:
        await frontend.stop(1.0)
