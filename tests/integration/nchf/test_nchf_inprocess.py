"""Nchf cases that need the server in the test's process: a clock set by the test (tariff
switch), TLS with ALPN h2 from a throw-away CA, the record exported like a Gy session's.

The front end is the real one (protocols.nchf.frontend) on 127.0.0.1 port 0, with the real
charging core on the suite's Redis; the client is httpx over HTTP/2.
"""

from __future__ import annotations

import asyncio
import datetime
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest_asyncio
import redis
import trustme
from redis.asyncio import Redis

from ocs.charging.api import ChargingService
from ocs.charging.records import decode_record
from ocs.export.exporter import Exporter
from ocs.policy.loader import PolicySet
from ocs.store.embedded import free_port
from protocols.nchf.config import NchfConfig
from protocols.nchf.frontend import NchfFrontend
from tests.core_fixtures import NewAccount
from tests.integration.export.helpers import all_rows, config
from tests.integration.nchf.conftest import BASE, CONSUMER, post, ref_of, request_body, unit

DATA = 10
# 20:00 UTC (the night band starts) two days ahead: in the future, so the supervision
# sweeper of any server on the suite's Redis never finds this session overdue.
_DAY = datetime.datetime.now(datetime.UTC).date() + datetime.timedelta(days=2)
SWITCH_AT = datetime.datetime.combine(_DAY, datetime.time(20, 0), tzinfo=datetime.UTC)
SWITCH = int(SWITCH_AT.timestamp())

StartFrontend = Callable[..., Awaitable[NchfFrontend]]


@pytest_asyncio.fixture(loop_scope="session")
async def start_frontend(charging: ChargingService) -> AsyncIterator[StartFrontend]:
    started: list[NchfFrontend] = []

    async def start(service: ChargingService | None = None, **overrides: Any) -> NchfFrontend:
        cfg = NchfConfig.model_validate(
            {"listen": ["127.0.0.1"], "port": 0, "notify": {"enabled": False}, **overrides}
        )
        fe = NchfFrontend(cfg)
        await fe.start(service or charging)
        started.append(fe)
        return fe

    yield start
    for fe in started:
        await fe.stop(1.0)


def url(fe: NchfFrontend, scheme: str = "http") -> str:
    host, port = fe.addresses[0]
    return f"{scheme}://{host}:{port}"


async def test_tariff_time_change_and_usage_either_side(
    start_frontend: StartFrontend,
    test_policies: PolicySet,
    new_account: NewAccount,
    charging: ChargingService,
) -> None:
    """grantedUnit.tariffTimeChange names the switch; containers before/after it are charged at each price."""
    clocked = ChargingService(charging.redis, test_policies, charging.partitions)
    fe = await start_frontend(clocked)
    acct = await new_account(plan="night")
    clocked.clock = lambda: SWITCH - 300  # 19:55 UTC, day price 10 per 1000 octets
    async with httpx.AsyncClient(base_url=url(fe), http1=False, http2=True) as h2:
        body = request_body(0, [unit(DATA, {})], "msisdn-" + acct.identity.value)
        created = await post(h2, BASE, body)
        (granted,) = created.json()["multipleUnitInformation"]
        assert granted["grantedUnit"]["tariffTimeChange"] == f"{_DAY.isoformat()}T20:00:00.000Z"
        clocked.clock = lambda: SWITCH + 300  # 20:05 UTC, night price 5
        switch = {"triggerType": "TARIFF_TIME_CHANGE", "triggerCategory": "IMMEDIATE_REPORT"}
        containers = [
            {"localSequenceNumber": 1, "totalVolume": 3_000, "triggers": [switch]},
            {"localSequenceNumber": 2, "totalVolume": 4_000},
        ]
        ref = ref_of(created)
        update = request_body(1, [{"ratingGroup": DATA, "usedUnitContainer": containers}])
        assert (await post(h2, ref + "/update", update)).status_code == 200
        assert (await post(h2, ref + "/release", request_body(2, [unit(DATA)]))).status_code == 204
    entries = await clocked.redis.xrange(clocked.store.keys(acct.account_id).records)
    (rec,) = [
        r for r in (decode_record(f[b"r"]) for _, f in entries) if r.account == acct.account_id
    ]
    assert rec.charged == 3 * 10 + 4 * 5


async def test_tls_with_alpn_h2(
    start_frontend: StartFrontend, new_account: NewAccount, tmp_path: Path
) -> None:
    """With tls: configured, a TLS client offering h2 gets HTTP/2 (ALPN), and a create is served."""
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "chf.test.example")
    cert.private_key_and_cert_chain_pem.write_to_path(str(tmp_path / "chf.pem"))
    cert.private_key_pem.write_to_path(str(tmp_path / "chf.key"))
    fe = await start_frontend(
        tls={"cert_file": str(tmp_path / "chf.pem"), "key_file": str(tmp_path / "chf.key")}
    )
    client_ctx = ssl.create_default_context()
    ca.configure_trust(client_ctx)
    acct = await new_account()
    async with httpx.AsyncClient(base_url=url(fe, "https"), http2=True, verify=client_ctx) as h2:
        created = await post(
            h2, BASE, request_body(0, [unit(DATA, {})], "msisdn-" + acct.identity.value)
        )
    assert created.status_code == 201 and created.http_version == "HTTP/2"
    assert created.headers["location"].startswith(url(fe, "https") + BASE)
    async with httpx.AsyncClient(base_url=url(fe, "https"), http2=False, verify=client_ctx) as h1:
        again = await post(
            h1, BASE, request_body(0, [unit(DATA, {})], "msisdn-" + acct.identity.value)
        )
    assert again.status_code == 201 and again.http_version == "HTTP/1.1"


async def test_record_is_exported_like_a_gy_sessions(
    start_frontend: StartFrontend, new_account: NewAccount, redis_url: str, tmp_path: Path
) -> None:
    """An Nchf session's record comes out of `ocs export` as invoice rows: account, session, rating group, usage, money."""
    fe = await start_frontend(api_root="http://chf.test.example:8095")
    acct = await new_account(money=10_000_000)
    async with httpx.AsyncClient(base_url=url(fe), http1=False, http2=True) as h2:
        created = await post(
            h2,
            BASE,
            request_body(0, [unit(DATA, {}), unit(30, {})], "msisdn-" + acct.identity.value),
        )
        assert created.headers["location"].startswith("http://chf.test.example:8095" + BASE)
        ref = ref_of(created)
        used = [unit(DATA, totalVolume=25_000), unit(30, time=90)]
        assert (await post(h2, ref + "/release", request_body(1, used))).status_code == 204
    out = tmp_path / "out"
    status = await asyncio.to_thread(
        Exporter(redis.Redis.from_url(redis_url), config(out)).run, True
    )
    assert status == 0
    rows = [r for r in all_rows(out) if r["account"] == acct.account_id]
    by_service = {r["rating_group"]: r for r in rows}
    session = ref.rsplit("/", 1)[1]
    assert {r["session"] for r in rows} == {session} and {r["kind"] for r in rows} == {"session"}
    assert str(by_service["10"]["used_total_octets"]) == "25000"
    assert str(by_service["30"]["used_seconds"]) == "90"
    assert sum(int(r["charged_micro"]) for r in rows) == 250 + 900  # 25 x 10; 600 + 30 x 10
    assert all(r["cause"] == "normal" and r["service_name"] for r in rows)


async def test_allowed_consumers_and_session_failover(
    start_frontend: StartFrontend, new_account: NewAccount
) -> None:
    """A consumer outside allowed_consumers gets 403; a listed one is served; sessionFailover and failureHandling as configured."""
    acct = await new_account()
    body = request_body(0, [unit(DATA, {})], "msisdn-" + acct.identity.value)
    elsewhere = await start_frontend(allowed_consumers=[{"name": "far", "network": "10.0.0.0/8"}])
    async with httpx.AsyncClient(base_url=url(elsewhere), http1=False, http2=True) as h2:
        refused = await post(h2, BASE, body)
    assert refused.status_code == 403
    listed = [{"name": "smf", "network": "127.0.0.0/8", "nf_name": CONSUMER["nFName"]}]
    here = await start_frontend(
        allowed_consumers=listed, session_failover=True, failure_handling="continue"
    )
    async with httpx.AsyncClient(base_url=url(here), http1=False, http2=True) as h2:
        served = await post(h2, BASE, body)
        other_name = {
            **body,
            "nfConsumerIdentification": {"nodeFunctionality": "SMF", "nFName": "x"},
        }
        unnamed = await post(h2, BASE, other_name)
    assert served.status_code == 201 and served.json()["sessionFailover"] == "FAILOVER_SUPPORTED"
    assert served.json()["invocationResult"] == {"failureHandling": "CONTINUE"}
    assert unnamed.status_code == 403


async def test_redis_unreachable_is_503_nf_congestion(
    start_frontend: StartFrontend, test_policies: PolicySet, charging: ChargingService
) -> None:
    """Redis down: 503 NF_CONGESTION (retry is safe: every request is idempotent), or 500 if configured."""
    dead = Redis(host="127.0.0.1", port=free_port(), socket_connect_timeout=0.5)
    broken = ChargingService(dead, test_policies, charging.partitions)
    body = request_body(0, [unit(DATA, {})], "msisdn-990000000000001")
    for status, cause, overrides in (
        (503, "NF_CONGESTION", {}),
        (500, "SYSTEM_FAILURE", {"storage_failure_status": 500}),
    ):
        fe = await start_frontend(broken, **overrides)
        async with httpx.AsyncClient(base_url=url(fe), http1=False, http2=True) as h2:
            resp = await post(h2, BASE, body)
        assert resp.status_code == status and resp.json()["cause"] == cause
    broken.close()
    await dead.aclose()
