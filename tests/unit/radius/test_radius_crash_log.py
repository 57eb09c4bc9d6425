"""A request that crashes in the charging core is logged as ``ocs serve`` configures
logging: no stack-frame locals, identities masked, a few KB (not the request's bytes and every frame's variables)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import pytest
import structlog

from ocs.logging import configure
from protocols.radius.codec import PortKind
from protocols.radius.pipeline import Pipeline, Prepared
from protocols.radius.sessions import LiveSessions
from protocols.radius.settings import RadiusConfig
from tests.unit.radius.radius_wire import SECRET, acct_request

MSISDN = "33699887766"


class CrashingCore:
    """Injects the crash: the charging call fails deep down with the subscriber in its
    locals (as a real KeyError in rating would)."""

    async def initiate(self, session: Any, subscriber: Any, *args: Any, **kw: Any) -> Any:
        return self._rate(subscriber.key(), {"msisdn": subscriber.value, "blob": "B" * 50_000})

    def _rate(self, identity_key: str, request: dict[str, str], depth: int = 40) -> Any:
        if depth:
            return self._rate(identity_key, request, depth - 1)
        raise KeyError(f"no plan 'prepaid' for {identity_key}")


@pytest.fixture
def restore_structlog() -> Iterator[None]:
    saved = structlog.get_config()
    yield
    structlog.configure(**saved)


def test_a_crashing_accounting_request_logs_no_identity_and_stays_small(
    restore_structlog: None, capsys: pytest.CaptureFixture[str]
) -> None:
    """radius_internal_error from the real pipeline: no MSISDN, no locals, under 8 KB."""
    configure(level="info", fmt="json", mask_ids=True)
    # The same chain, but the pipeline's module-level logger must not keep it cached for
    # the tests that run after this one (they capture logs with structlog.testing).
    structlog.configure(cache_logger_on_first_use=False)
    cfg = RadiusConfig.model_validate(
        {
            "clients": [{"name": "nas", "address": "127.0.0.1", "secret": SECRET.decode()}],
            "identity_type": "e164",
        }
    )
    pipeline = Pipeline(cfg, CrashingCore(), LiveSessions(), lambda s, c: None)  # type: ignore[arg-type]
    prep = pipeline.prepare(acct_request({"User-Name": MSISDN}), "127.0.0.1", 5000, PortKind.ACCT)
    assert isinstance(prep, Prepared)
    assert asyncio.run(pipeline.process(prep)) is None  # no answer: the NAS retries
    lines = capsys.readouterr().err.strip().splitlines()
    crash = next(json.loads(line) for line in lines if "radius_internal_error" in line)
    text = json.dumps(crash)
    print(f"radius_internal_error: {len(text)} bytes")
    assert MSISDN not in "\n".join(lines)
    assert "e164:3369*****66" in crash["error"]
    assert "BBBB" not in text and "locals" not in text
    assert len(text) < 8_000
