"""Nchf_ConvergedCharging over real HTTP/2 against `ocs serve` and the suite's Redis (TS 32.291 §6.1).

The client is httpx with HTTP/2 prior knowledge; every test makes its own account
(``new_account``) and looks only at it, so no test depends on another.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest

from ocs.accounts import Accounts, BucketSpec
from ocs.charging.records import ChargedRecord, decode_record
from ocs.vocabulary.types import UnitType
from protocols.nchf import schema
from tests.core_fixtures import NewAccount
from tests.integration.nchf.conftest import (
    BASE,
    SHORT,
    NchfServer,
    Receiver,
    post,
    ref_of,
    request_body,
    unit,
)

DATA, VIDEO, VOICE = 10, 20, 30
USED = {DATA: {"totalVolume": 5_000}, VIDEO: {"totalVolume": 4_000}, VOICE: {"time": 90}}


def msisdn(acct: Any) -> str:
    return "msisdn-" + acct.identity.value


async def money(accounts: Accounts, account_id: str) -> tuple[int, int]:
    view = await accounts.show(account_id)
    main = [b for b in view["buckets"] if b["unit"] == "money"]
    return sum(b["amount"] for b in main), sum(b["reserved"] for b in main)


async def records_of(accounts: Accounts, account_id: str) -> list[ChargedRecord]:
    entries = await accounts.redis.xrange(accounts.keys(account_id).records)
    return [r for r in (decode_record(f[b"r"]) for _, f in entries) if r.account == account_id]


def units_by_rg(resp: httpx.Response) -> dict[int, dict[str, Any]]:
    return {u["ratingGroup"]: u for u in resp.json().get("multipleUnitInformation", [])}


@pytest.mark.parametrize("groups", [[DATA], [DATA, VIDEO], [DATA, VIDEO, VOICE]])
async def test_create_update_release_with_rating_groups(
    h2: httpx.AsyncClient, accounts: Accounts, new_account: NewAccount, groups: list[int]
) -> None:
    """1..3 rating groups: 201 + Location, 200 with a grant per group, 204; balance falls by the record."""
    acct = await new_account(money=1_000_000)
    created = await post(h2, BASE, request_body(0, [unit(g, {}) for g in groups], msisdn(acct)))
    assert created.status_code == 201 and created.http_version == "HTTP/2"
    assert created.headers["location"].startswith(f"http://127.0.0.1:{h2.base_url.port}{BASE}/")
    schema.validate(created.json(), "ChargingDataResponse")
    grants = units_by_rg(created)
    assert sorted(grants) == groups
    assert all(u["resultCode"] == "SUCCESS" and u["grantedUnit"] for u in grants.values())
    assert created.json()["sessionFailover"] == "FAILOVER_NOT_SUPPORTED"
    ref = ref_of(created)
    updated = await post(
        h2, ref + "/update", request_body(1, [unit(g, {}, **USED[g]) for g in groups])
    )
    assert updated.status_code == 200
    assert updated.json()["invocationSequenceNumber"] == 1
    assert all(u["resultCode"] == "SUCCESS" for u in units_by_rg(updated).values())
    released = await post(
        h2, ref + "/release", request_body(2, [unit(g, **USED[g]) for g in groups])
    )
    assert released.status_code == 204 and released.content == b""
    amount, reserved = await money(accounts, acct.account_id)
    (rec,) = await records_of(accounts, acct.account_id)
    assert reserved == 0 and rec.charged > 0 and 1_000_000 - amount == rec.charged
    assert rec.session == ref.rsplit("/", 1)[1] and rec.cause == "normal"
    assert sorted(s.rating_group for s in rec.services) == groups
    if groups == [DATA]:
        assert rec.charged == 2 * 5 * 10  # 2 x 5000 octets at 10 per started 1000


async def test_http11_is_accepted_too(nchf_server: NchfServer, new_account: NewAccount) -> None:
    """A plain HTTP/1.1 client (tools, scripts) gets the same create answer."""
    acct = await new_account()
    async with httpx.AsyncClient(base_url=nchf_server.url, http2=False) as h1:
        created = await post(h1, BASE, request_body(0, [unit(DATA, {})], msisdn(acct)))
    assert created.status_code == 201 and created.http_version == "HTTP/1.1"
    assert units_by_rg(created)[DATA]["grantedUnit"] == {"totalVolume": 10_000}


async def test_repeats_by_sequence_number_are_charged_once(
    h2: httpx.AsyncClient, accounts: Accounts, new_account: NewAccount
) -> None:
    """The same create, update and release sent twice: same resource, same answers, one charge."""
    acct = await new_account(money=1_000_000)
    body = request_body(0, [unit(DATA, {})], msisdn(acct))
    first, again = await post(h2, BASE, body), await post(h2, BASE, body)
    assert first.status_code == again.status_code == 201
    assert first.headers["location"] == again.headers["location"]
    assert units_by_rg(first) == units_by_rg(again)
    ref = ref_of(first)
    update = request_body(1, [unit(DATA, {}, totalVolume=5_000)])
    u1, u2 = await post(h2, ref + "/update", update), await post(h2, ref + "/update", update)
    assert u1.status_code == u2.status_code == 200 and units_by_rg(u1) == units_by_rg(u2)
    release = request_body(2, [unit(DATA, totalVolume=1_000)])
    r1, r2 = await post(h2, ref + "/release", release), await post(h2, ref + "/release", release)
    assert r1.status_code == r2.status_code == 204
    (rec,) = await records_of(accounts, acct.account_id)
    assert rec.charged == 60  # 5000 + 1000 octets once, at 10 per started 1000
    assert (await money(accounts, acct.account_id))[0] == 1_000_000 - 60


async def test_quota_exhaustion_final_unit_then_quota_limit_reached(
    h2: httpx.AsyncClient, new_account: NewAccount
) -> None:
    """A grant cut short by the balance carries FUI REDIRECT; once spent, QUOTA_LIMIT_REACHED."""
    acct = await new_account(money=55)
    created = await post(h2, BASE, request_body(0, [unit(DATA, {})], msisdn(acct)))
    data = units_by_rg(created)[DATA]
    assert data["resultCode"] == "SUCCESS"
    assert data["finalUnitIndication"] == {
        "finalUnitAction": "REDIRECT",
        "redirectServer": {
            "redirectAddressType": "URL",
            "redirectServerAddress": "http://topup.test/",
        },
    }
    assert 0 < data["grantedUnit"]["totalVolume"] < 10_000
    ref = ref_of(created)
    spent = await post(h2, ref + "/update", request_body(1, [unit(DATA, totalVolume=5_000)]))
    assert "grantedUnit" not in units_by_rg(spent)[DATA]
    assert units_by_rg(spent)[DATA]["validityTime"] > 0
    refused = await post(h2, ref + "/update", request_body(2, [unit(DATA, {})]))
    assert refused.status_code == 200
    assert units_by_rg(refused)[DATA]["resultCode"] == "QUOTA_LIMIT_REACHED"
    schema.validate(refused.json(), "ChargingDataResponse")


async def test_mixed_result_codes_per_rating_group(
    h2: httpx.AsyncClient, new_account: NewAccount
) -> None:
    """One answer mixes SUCCESS (data from a bucket), QUOTA_LIMIT_REACHED (voice) and RATING_FAILED."""
    acct = await new_account(money=0, buckets=[BucketSpec(UnitType.TOTAL_OCTETS, 50_000)])
    created = await post(
        h2, BASE, request_body(0, [unit(DATA, {}), unit(VOICE, {}), unit(77, {})], msisdn(acct))
    )
    assert created.status_code == 201
    codes = {rg: u["resultCode"] for rg, u in units_by_rg(created).items()}
    assert codes == {DATA: "SUCCESS", VOICE: "QUOTA_LIMIT_REACHED", 77: "RATING_FAILED"}


async def test_unknown_user_is_404_user_unknown(h2: httpx.AsyncClient) -> None:
    """A subscriber no account has: 404 ProblemDetails with cause USER_UNKNOWN (TS 32.291 §6.1.7.3)."""
    resp = await post(h2, BASE, request_body(0, [unit(DATA, {})], "imsi-001019999999999"))
    assert resp.status_code == 404
    assert resp.headers["content-type"] == "application/problem+json"
    assert resp.json()["cause"] == "USER_UNKNOWN"
    schema.validate(resp.json(), "ProblemDetails")


async def test_blocked_account_is_403_end_user_request_denied(
    h2: httpx.AsyncClient, accounts: Accounts, new_account: NewAccount
) -> None:
    """A blocked account: 403 END_USER_REQUEST_DENIED, nothing reserved."""
    acct = await new_account()
    await accounts.set_status(acct.account_id, "blocked")
    resp = await post(h2, BASE, request_body(0, [unit(DATA, {})], msisdn(acct)))
    assert resp.status_code == 403 and resp.json()["cause"] == "END_USER_REQUEST_DENIED"


async def test_create_without_subscriber_is_charging_failed(h2: httpx.AsyncClient) -> None:
    """No subscriberIdentifier on a create: 400 CHARGING_FAILED naming the attribute."""
    resp = await post(h2, BASE, request_body(0, [unit(DATA, {})]))
    assert resp.status_code == 400 and resp.json()["cause"] == "CHARGING_FAILED"
    assert resp.json()["invalidParams"][0]["param"] == "/subscriberIdentifier"


async def test_unknown_resource_and_wrong_paths(h2: httpx.AsyncClient) -> None:
    """Unknown ChargingDataRef: 404 CONTEXT_NOT_FOUND; unknown path: 404; GET: 405 with Allow."""
    gone = await post(h2, f"{BASE}/{'0' * 24}/update", request_body(1))
    assert gone.status_code == 404 and gone.json()["cause"] == "CONTEXT_NOT_FOUND"
    foreign = await post(h2, f"{BASE}/not-one-of-ours/release", request_body(1))
    assert foreign.status_code == 404 and foreign.json()["cause"] == "CONTEXT_NOT_FOUND"
    elsewhere = await post(h2, "/nchf-convergedcharging/v2/chargingdata", request_body(0))
    assert elsewhere.status_code == 404
    assert elsewhere.json()["cause"] == "RESOURCE_URI_STRUCTURE_NOT_FOUND"
    got = await h2.get(BASE)
    assert got.status_code == 405 and got.headers["allow"] == "POST"


SCHEMA_ERRORS = [
    ("missing sequence number", {"invocationSequenceNumber": None}, "/invocationSequenceNumber", "MANDATORY_IE_MISSING"),
    ("missing consumer", {"nfConsumerIdentification": None}, "/nfConsumerIdentification", "MANDATORY_IE_MISSING"),
    ("no node functionality", {"nfConsumerIdentification": {"nFName": "x"}}, "/nfConsumerIdentification/nodeFunctionality", "MANDATORY_IE_MISSING"),
    ("sequence number a string", {"invocationSequenceNumber": "1"}, "/invocationSequenceNumber", "MANDATORY_IE_INCORRECT"),
    ("sequence number negative", {"invocationSequenceNumber": -1}, "/invocationSequenceNumber", "MANDATORY_IE_INCORRECT"),
    ("time stamp not a date", {"invocationTimeStamp": "yesterday"}, "/invocationTimeStamp", "MANDATORY_IE_INCORRECT"),
    ("rating group missing", {"multipleUnitUsage": [{"requestedUnit": {}}]}, "/multipleUnitUsage/0/ratingGroup", "MANDATORY_IE_MISSING"),
    ("rating group too big", {"multipleUnitUsage": [{"ratingGroup": 2**32}]}, "/multipleUnitUsage/0/ratingGroup", "MANDATORY_IE_INCORRECT"),
    ("volume a float", {"multipleUnitUsage": [{"ratingGroup": 10, "requestedUnit": {"totalVolume": 1.5}}]}, "/multipleUnitUsage/0/requestedUnit/totalVolume", "OPTIONAL_IE_INCORRECT"),
    ("container without sequence", {"multipleUnitUsage": [{"ratingGroup": 10, "usedUnitContainer": [{"totalVolume": 5}]}]}, "/multipleUnitUsage/0/usedUnitContainer/0/localSequenceNumber", "MANDATORY_IE_MISSING"),
    ("bad subscriber", {"subscriberIdentifier": "tel:+33612345678"}, "/subscriberIdentifier", "MANDATORY_IE_INCORRECT"),
    ("too many units", {"multipleUnitUsage": [{"ratingGroup": n} for n in range(9)]}, "/multipleUnitUsage", "INVALID_MSG_FORMAT"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("change", "param", "cause"),
    [case[1:] for case in SCHEMA_ERRORS],
    ids=[case[0] for case in SCHEMA_ERRORS],
)
async def test_schema_error_is_400_naming_the_field(
    h2: httpx.AsyncClient, change: dict[str, Any], param: str, cause: str
) -> None:
    """A malformed body: 400 ProblemDetails whose invalidParams names the attribute (JSON Pointer)."""
    body = {**request_body(0, [unit(DATA, {})], "msisdn-990000000000001"), **change}
    body = {k: v for k, v in body.items() if v is not None}
    resp = await post(h2, BASE, body)
    assert resp.status_code == 400, resp.text
    problem = resp.json()
    assert problem["cause"] == cause
    assert problem["invalidParams"][0]["param"] == param
    schema.validate(problem, "ProblemDetails")


async def test_not_json_and_not_an_object_are_400(h2: httpx.AsyncClient) -> None:
    """A body that is not JSON, or JSON but not an object: 400 INVALID_MSG_FORMAT."""
    for raw in (b"{not json", b"[1, 2]", b"\xff\xfe"):
        resp = await post(h2, BASE, raw)
        assert resp.status_code == 400 and resp.json()["cause"] == "INVALID_MSG_FORMAT"


async def test_unknown_attributes_are_ignored(
    h2: httpx.AsyncClient, new_account: NewAccount
) -> None:
    """Attributes the CHF does not know (PDU session information, future ones) are ignored."""
    acct = await new_account()
    body = request_body(0, [unit(DATA, {}) | {"futureThing": 1}], msisdn(acct))
    body["pDUSessionChargingInformation"] = {"chargingId": 7, "pduSessionInformation": {}}
    body["somethingFromRelease19"] = {"a": [1, 2]}
    resp = await post(h2, BASE, body)
    assert resp.status_code == 201


async def test_body_over_the_limit_is_413_and_the_server_keeps_serving(
    h2: httpx.AsyncClient, new_account: NewAccount
) -> None:
    """A body over limits.max_body (8 KiB here): 413; the next request on the connection is served."""
    big = request_body(0, [unit(DATA, {})], "msisdn-990000000000001", padding="x" * 10_000)
    resp = await post(h2, BASE, big)
    assert resp.status_code == 413
    acct = await new_account()
    ok = await post(h2, BASE, request_body(0, [unit(DATA, {})], msisdn(acct)))
    assert ok.status_code == 201


async def test_topup_sends_reauthorization_and_block_sends_abort(
    h2: httpx.AsyncClient, accounts: Accounts, new_account: NewAccount, receiver: Receiver
) -> None:
    """Top-up -> REAUTHORIZATION (a bundle's rating groups named); block -> ABORT_CHARGING (HTTP/2)."""
    acct = await new_account(money=55)
    path = f"/notify/{acct.account_id}"
    body = request_body(
        0, [unit(DATA, {}), unit(VIDEO, {})], msisdn(acct), notifyUri=receiver.uri(path)
    )
    created = await post(h2, BASE, body)
    assert created.status_code == 201
    start = len(receiver.received)
    # Money serves every rating group: no reauthorizationDetails means all of them.
    await accounts.credit(acct.account_id, BucketSpec(UnitType.MONEY, 0), 1_000_000)
    await receiver.wait_for(start + 1)
    got_path, note, over_h2 = receiver.received[start]
    assert got_path == path and over_h2
    assert note == {"notificationType": "REAUTHORIZATION"}
    schema.validate(note, "ChargingNotifyRequest")
    # The consumer's answer to it: an update asking for quota gets a full grant.
    again = await post(h2, ref_of(created) + "/update", request_body(1, [unit(DATA, {})]))
    assert units_by_rg(again)[DATA]["grantedUnit"] == {"totalVolume": 10_000}
    # A bundle for rating group 10 only: that group is named.
    bundle = BucketSpec(UnitType.TOTAL_OCTETS, 0, bucket_id="b10", rating_groups=(DATA,))
    await accounts.credit(acct.account_id, bundle, 1_000_000)
    await receiver.wait_for(start + 2)
    assert receiver.received[start + 1][1] == {
        "notificationType": "REAUTHORIZATION",
        "reauthorizationDetails": [{"ratingGroup": DATA}],
    }
    await accounts.set_status(acct.account_id, "blocked")
    await receiver.wait_for(start + 3)
    assert receiver.received[start + 2][1] == {"notificationType": "ABORT_CHARGING"}


async def test_notification_is_retried_when_the_consumer_fails(
    h2: httpx.AsyncClient, accounts: Accounts, new_account: NewAccount, receiver: Receiver
) -> None:
    """The receiver answers 503 twice: the notification is sent again (backoff) until a 204."""
    acct = await new_account()
    path = f"/retry/{acct.account_id}"
    body = request_body(0, [unit(DATA, {})], msisdn(acct), notifyUri=receiver.uri(path))
    assert (await post(h2, BASE, body)).status_code == 201
    start = len(receiver.received)
    receiver.statuses[:] = [503, 503]
    await accounts.credit(acct.account_id, BucketSpec(UnitType.MONEY, 0), 1_000)
    await receiver.wait_for(start + 3)
    mine = [n for p, n, _ in receiver.received[start:] if p == path]
    assert len(mine) == 3 and all(n["notificationType"] == "REAUTHORIZATION" for n in mine)
    await asyncio.sleep(1.0)  # delivered: no fourth attempt
    assert len([p for p, _, _ in receiver.received[start:] if p == path]) == 3


async def test_silent_session_is_abandoned_by_supervision(
    h2: httpx.AsyncClient, accounts: Accounts, new_account: NewAccount
) -> None:
    """No update within the supervision time (2 s here): released, recorded abandoned, then 404."""
    acct = await new_account(money=1_000_000)
    created = await post(h2, BASE, request_body(0, [unit(SHORT, {})], msisdn(acct)))
    assert created.status_code == 201
    assert (await money(accounts, acct.account_id))[1] > 0  # reserved
    for _ in range(100):
        if await records_of(accounts, acct.account_id):
            break
        await asyncio.sleep(0.1)
    (rec,) = await records_of(accounts, acct.account_id)
    assert rec.cause == "abandoned"
    assert await money(accounts, acct.account_id) == (1_000_000, 0)
    late = await post(h2, ref_of(created) + "/update", request_body(1, [unit(SHORT, {})]))
    assert late.status_code == 404 and late.json()["cause"] == "CONTEXT_NOT_FOUND"


async def test_many_streams_on_one_connection(
    h2: httpx.AsyncClient, accounts: Accounts, new_account: NewAccount
) -> None:
    """20 sessions at once on one HTTP/2 connection: every answer right, every charge recorded."""
    accts = [await new_account(money=1_000_000) for _ in range(20)]

    async def session(acct: Any) -> int:
        created = await post(h2, BASE, request_body(0, [unit(DATA, {})], msisdn(acct)))
        ref = ref_of(created)
        await post(h2, ref + "/update", request_body(1, [unit(DATA, {}, totalVolume=2_000)]))
        released = await post(h2, ref + "/release", request_body(2, [unit(DATA, totalVolume=1)]))
        return released.status_code

    assert await asyncio.gather(*(session(a) for a in accts)) == [204] * 20
    for acct in accts:
        (rec,) = await records_of(accounts, acct.account_id)
        assert rec.charged == 30


def test_config_file_example_is_valid() -> None:
    """config/ocs.yaml's nchf: section validates (every key commented there exists)."""
    from pathlib import Path

    from ocs.config import load_config, validate_section
    from protocols.nchf.config import NchfConfig

    root = Path(__file__).resolve().parents[3]
    cfg = load_config(root / "config/ocs.yaml", environ={})
    nchf = validate_section(NchfConfig, cfg.nchf, cfg.file, "nchf")
    assert nchf.port == 8095 and nchf.notify.enabled
    assert json.dumps(cfg.nchf)  # plain data, as the runtime hands it over


async def test_one_time_event_is_refused_clearly(h2: httpx.AsyncClient) -> None:
    """oneTimeEvent (IEC/PEC) is not served: 400 naming /oneTimeEvent, nothing charged."""
    body = request_body(0, [unit(DATA, {})], "msisdn-990000000000001", oneTimeEvent=True)
    resp = await post(h2, BASE, body)
    assert resp.status_code == 400 and resp.json()["invalidParams"][0]["param"] == "/oneTimeEvent"


async def test_metrics_count_requests_by_operation_and_status(
    h2: httpx.AsyncClient, nchf_server: NchfServer, new_account: NewAccount
) -> None:
    """/metrics: ocs_nchf_requests_total{operation, status} grows with each answer."""

    def count(text: str, labels: str) -> float:
        line = next(
            (x for x in text.splitlines() if x.startswith(f"ocs_nchf_requests_total{{{labels}}}")),
            "",
        )
        return float(line.rsplit(" ", 1)[1]) if line else 0.0

    scrape = f"http://127.0.0.1:{nchf_server.metrics_port}/metrics"
    async with httpx.AsyncClient() as ops:
        before = (await ops.get(scrape)).text
        acct = await new_account()
        created = await post(h2, BASE, request_body(0, [unit(DATA, {})], msisdn(acct)))
        await post(h2, ref_of(created) + "/release", request_body(1))
        await post(h2, BASE, b"{")
        after = (await ops.get(scrape)).text
    for labels in (
        'operation="create",status="201"',
        'operation="release",status="204"',
        'operation="create",status="400"',
    ):
        assert count(after, labels) == count(before, labels) + 1, labels
