"""The admin API over real HTTP against ``ocs serve`` and the suite's real Redis (issue 14).

Each endpoint, each authentication failure (401 without a valid token on every path,
403 for a role too low), idempotency (replay, conflict, a race), bad input (400, 413),
and the OpenAPI document served equal to the one in the repository.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from ocs.admin.app import openapi_document
from ocs.charging.api import ChargingService
from ocs.vocabulary.types import (
    NotificationKind,
    ServiceKey,
    ServiceRequest,
    SessionRef,
    Usage,
    UsedUnits,
)
from tests.integration.admin.conftest import AdminServer

ROOT = Path(__file__).parents[3]
DATA = ServiceKey(10)


def msisdn() -> str:
    return "e164:9915" + str(uuid.uuid4().int)[:10]


async def create(api: AdminServer, money: str = "10.00", **extra: Any) -> dict[str, Any]:
    async with api.client("operator") as c:
        r = await c.post(
            "/accounts",
            json={"identities": [msisdn()], "plan": "basic", "money": money, **extra},
        )
    assert r.status_code == 201, r.text
    body: dict[str, Any] = r.json()
    return body


# -- authentication and roles ------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/accounts"),
        ("GET", "/openapi.json"),
        ("GET", "/no/such/path"),
        ("POST", "/accounts"),
        ("DELETE", "/accounts/x"),
        ("POST", "/accounts:batch"),
    ],
)
@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer", "Bearer ocs_not-a-token", "Basic dXNlcjpwYXNz", "Token ocs_x"],
)
async def test_no_valid_token_is_401_everywhere(
    admin_api: AdminServer, method: str, path: str, authorization: str | None
) -> None:
    """No token, an unknown one, another scheme: 401 with WWW-Authenticate, on every path."""
    headers = {"Authorization": authorization} if authorization is not None else {}
    async with admin_api.client(None) as c:
        r = await c.request(method, path, headers=headers, json={})
    assert r.status_code == 401
    assert r.headers["www-authenticate"].startswith("Bearer")
    assert r.json()["error"] == "unauthorized" and r.json()["request_id"]


@pytest.mark.parametrize(
    ("role", "method", "path", "body"),
    [
        ("read", "POST", "/accounts", {"identities": ["e164:1"], "plan": "basic"}),
        ("read", "POST", "/accounts/x/topups", {"amount": "1"}),
        ("read", "POST", "/accounts/x/block", {}),
        ("operator", "DELETE", "/accounts/x", None),
        ("operator", "POST", "/accounts:batch", {"accounts": []}),
    ],
)
async def test_role_too_low_is_403(
    admin_api: AdminServer, role: str, method: str, path: str, body: Any
) -> None:
    """A valid token without the operation's role: 403, nothing done."""
    async with admin_api.client(role) as c:
        r = await c.request(method, path, json=body)
    assert r.status_code == 403, r.text
    assert r.json()["error"] == "forbidden" and "needs" in r.json()["message"]


async def test_a_removed_token_is_refused_at_once(admin_api: AdminServer) -> None:
    """ocs admin token remove: the running server refuses that token from then on."""
    from tests.serve_harness import cli

    made = cli(admin_api.config, "admin", "token", "add", "short-lived", "--role", "read")
    token = made.stdout.strip()
    async with httpx.AsyncClient(
        base_url=admin_api.url, headers={"Authorization": f"Bearer {token}"}
    ) as c:
        assert (await c.get("/accounts?limit=1")).status_code == 200
        assert cli(admin_api.config, "admin", "token", "remove", "short-lived").returncode == 0
        assert (await c.get("/accounts?limit=1")).status_code == 401


# -- accounts ------------------------------------------------------------------------


async def test_create_read_by_id_and_identity(admin_api: AdminServer) -> None:
    """POST /accounts then GET by id and by identity: money in micro, minor and decimal."""
    ident = msisdn()
    async with admin_api.client("operator") as c:
        r = await c.post(
            "/accounts", json={"identities": [ident], "plan": "basic", "money_minor": 1250}
        )
        assert r.status_code == 201, r.text
        acct = r.json()["account"]
        assert r.json()["money"] == {
            "micro": 12_500_000,
            "minor": 1250,
            "amount": "12.50",
            "currency": "EUR",
        }
        by_id = (await c.get(f"/accounts/{acct}")).json()
        by_identity = (await c.get(f"/accounts/{ident}")).json()
    assert by_id == by_identity and by_id["identities"] == [ident]
    assert by_id["status"] == "active" and by_id["plan"] == "basic"


async def test_list_walks_every_account_once(admin_api: AdminServer) -> None:
    """Cursor paging (limit 2) from 0 back to 0 sees each account once, ours among them."""
    mine = {(await create(admin_api))["account"] for _ in range(5)}
    seen: list[str] = []
    cursor = 0
    async with admin_api.client("read") as c:
        while True:
            page = (await c.get("/accounts", params={"cursor": cursor, "limit": 2})).json()
            seen.extend(page["accounts"])
            cursor = page["next_cursor"]
            if cursor == 0:
                break
    assert mine <= set(seen) and len(seen) == len(set(seen))


async def test_block_unblock_delete(admin_api: AdminServer) -> None:
    """block, unblock (operator), delete (admin): status follows; a deleted account is
    still shown by its id (its history stays), its identities are free (404)."""
    created = await create(admin_api)
    acct = created["account"]
    async with admin_api.client("operator") as c:
        r = await c.post(f"/accounts/{acct}/block", json={"reason": "fraud check"})
        assert r.status_code == 200 and r.json()["status"] == "blocked"
        assert (await c.get(f"/accounts/{acct}")).json()["status"] == "blocked"
        assert (await c.post(f"/accounts/{acct}/unblock", json={})).json()["status"] == "active"
    async with admin_api.client("admin") as c:
        assert (await c.delete(f"/accounts/{acct}")).status_code == 200
        kept = await c.get(f"/accounts/{acct}")
        gone = await c.get(f"/accounts/{created['identities'][0]}")
        again = await c.delete(f"/accounts/{acct}")
    assert kept.status_code == 200 and kept.json()["status"] == "deleted"
    assert gone.status_code == 404 and gone.json()["error"] == "not_found"
    assert again.status_code == 404


async def test_identities_add_and_remove(admin_api: AdminServer) -> None:
    """Add an identity (then found by it), remove it (then 404), never the last (409)."""
    created = await create(admin_api)
    acct, first = created["account"], created["identities"][0]
    extra = "imsi:20801" + str(uuid.uuid4().int)[:10]
    async with admin_api.client("operator") as c:
        assert (
            await c.post(f"/accounts/{acct}/identities", json={"identity": extra})
        ).status_code == 201
        assert (await c.get(f"/accounts/{extra}")).json()["account"] == acct
        taken = await c.post(f"/accounts/{acct}/identities", json={"identity": extra})
        assert taken.status_code == 409
        assert (await c.delete(f"/accounts/{acct}/identities/{extra}")).status_code == 200
        assert (await c.get(f"/accounts/{extra}")).status_code == 404
        last = await c.delete(f"/accounts/{acct}/identities/{first}")
    assert last.status_code == 409 and "last identity" in last.json()["message"]


async def test_plan_change_and_renewal(admin_api: AdminServer) -> None:
    """PUT plan moves the account and renews the new plan's allowances; renew again: 0."""
    acct = (await create(admin_api))["account"]
    async with admin_api.client("operator") as c:
        r = await c.put(f"/accounts/{acct}/plan", json={"plan": "bundle"})
        assert r.status_code == 200, r.text
        assert r.json()["previous_plan"] == "basic" and r.json()["allowances_renewed"] == 1
        view = (await c.get(f"/accounts/{acct}")).json()
        assert view["plan"] == "bundle"
        assert any(b["id"].startswith("plan:monthly_data:") for b in view["buckets"])
        again = await c.post(f"/accounts/{acct}/plan/renew")
        assert again.json()["allowances_renewed"] == 0
        unknown = await c.put(f"/accounts/{acct}/plan", json={"plan": "gold"})
    assert unknown.status_code == 422


# -- buckets -------------------------------------------------------------------------


async def test_topup_adjust_expire(admin_api: AdminServer) -> None:
    """Top-up money and a bundle, adjust down with a reason, expire the bundle now."""
    acct = (await create(admin_api, money="1.00"))["account"]
    async with admin_api.client("operator") as c:
        r = await c.post(f"/accounts/{acct}/topups", json={"amount": "2.50"})
        assert r.json()["after_money"]["amount"] == "3.50"
        bundle = await c.post(
            f"/accounts/{acct}/topups",
            json={"unit": "total_octets", "amount": "1GB", "bucket": "b1", "rating_groups": [10]},
        )
        assert bundle.status_code == 200 and bundle.json()["after"] == 1_000_000_000
        down = await c.post(
            f"/accounts/{acct}/adjustments", json={"amount_minor": -50, "reason": "goodwill"}
        )
        assert down.status_code == 200 and down.json()["after"] == 3_000_000
        no_reason = await c.post(f"/accounts/{acct}/adjustments", json={"amount": "-1"})
        assert no_reason.status_code == 400
        below = await c.post(
            f"/accounts/{acct}/adjustments", json={"amount": "-99", "reason": "too much"}
        )
        assert below.status_code == 422 and below.json()["error"] == "refused"
        gone = await c.post(f"/accounts/{acct}/buckets/b1/expire", json={})
        assert gone.status_code == 200 and gone.json()["after"] == 0
        missing = await c.post(f"/accounts/{acct}/buckets/nosuch/expire", json={})
        assert missing.status_code == 404
        view = (await c.get(f"/accounts/{acct}")).json()
    assert view["money"]["micro"] == 3_000_000
    assert not [b for b in view["buckets"] if b["id"] == "b1" and b["amount"] > 0]


async def test_price_enquiry_charges_nothing(admin_api: AdminServer) -> None:
    """POST /price: 10 MB of data at the basic tariff, the balance untouched."""
    created = await create(admin_api, money="5.00")
    async with admin_api.client("read") as c:
        r = await c.post(
            "/price",
            json={
                "subscriber": created["identities"][0],
                "rating_group": 10,
                "units": {"total_octets": 10_000_000},
            },
        )
        assert r.status_code == 200, r.text
        assert r.json()["price"]["currency"] == "EUR" and r.json()["price"]["micro"] > 0
        view = (await c.get(f"/accounts/{created['account']}")).json()
    assert view["money"]["micro"] == 5_000_000


# -- sessions, records, history, statement ---------------------------------------------


async def test_sessions_terminate_records_history_statement(
    admin_api: AdminServer, charging: ChargingService
) -> None:
    """A live session listed, terminated (a 'terminate' push for it, 202), then closed by
    its gateway: its record in /records, the changes in /history, and the statement's
    opening + changes = closing."""
    created = await create(admin_api, money="10.00")
    acct = created["account"]
    from ocs.vocabulary.types import Identity

    ident = Identity.parse(created["identities"][0])
    sid = "adm;" + uuid.uuid4().hex
    session = SessionRef(sid, "test-owner")
    await charging.initiate(session, ident, [ServiceRequest(DATA, Usage())])
    stream = charging.notifications()
    pushed = asyncio.create_task(
        asyncio.wait_for(anext(n async for n in stream if n.account_id == acct), 10)
    )
    await asyncio.sleep(0.2)
    async with admin_api.client("operator") as c:
        live = (await c.get(f"/accounts/{acct}/sessions")).json()["sessions"]
        assert [s["session"] for s in live] == [sid]
        r = await c.post(f"/accounts/{acct}/sessions/terminate", json={"session": sid})
        assert r.status_code == 202 and r.json()["owner"] == "test-owner"
        note = await pushed
        assert note.kind is NotificationKind.TERMINATE and note.session_id == sid
        used = (UsedUnits(Usage(total_octets=2_000_000)),)
        await charging.terminate(session, "1", [ServiceRequest(DATA, used=used)])
        gone = await c.post(f"/accounts/{acct}/sessions/terminate", json={"session": sid})
        assert gone.status_code == 404
        await c.post(f"/accounts/{acct}/topups", json={"amount": "1.00"})
        recs = (await c.get(f"/accounts/{acct}/records", params={"from": "-1h"})).json()
        hist = (await c.get(f"/accounts/{acct}/history")).json()["entries"]
        st = (await c.get(f"/accounts/{acct}/statement", params={"from": "-1h"})).json()
        view = (await c.get(f"/accounts/{acct}")).json()
    (rec,) = recs["records"]
    assert rec["session"] == sid and rec["charged"]["micro"] > 0
    assert [e["op"] for e in hist] == ["create", "terminate", "topup"]
    assert hist[1]["session"] == sid and hist[1]["who"] == "token:t-operator"
    changes = [ln["change"]["micro"] for ln in st["lines"]]
    assert st["opening"]["micro"] == 0
    assert st["opening"]["micro"] + sum(changes) == st["closing"]["micro"]
    assert st["closing"]["micro"] == view["money"]["micro"]
    assert [ln["kind"] for ln in st["lines"]] == ["create", "terminate", "session", "topup"]
    assert changes[2] == -rec["charged"]["micro"]


async def test_records_page_through_with_a_cursor(
    admin_api: AdminServer, charging: ChargingService
) -> None:
    """Three direct debits; limit 1: three pages chained by next_cursor, oldest first."""
    from ocs.vocabulary.types import EventAction, Identity

    created = await create(admin_api, money="10.00")
    ident = Identity.parse(created["identities"][0])
    for n in range(3):
        await charging.event(
            f"ev-{uuid.uuid4().hex}-{n}",
            ident,
            ServiceKey(40),
            EventAction.DIRECT_DEBIT,
            Usage(events=1),
        )
    ids: list[str] = []
    cursor = None
    async with admin_api.client("read") as c:
        for _ in range(4):
            params: dict[str, Any] = {"from": "-1h", "limit": 1}
            if cursor:
                params["cursor"] = cursor
            page = (await c.get(f"/accounts/{created['account']}/records", params=params)).json()
            ids.extend(r["entry_id"] for r in page["records"])
            cursor = page["next_cursor"]
            if cursor is None:
                break
    assert len(ids) == 3 and ids == sorted(ids, key=lambda i: tuple(map(int, i.split("-"))))


# -- idempotency ---------------------------------------------------------------------


async def test_idempotency_replay_conflict_and_race(admin_api: AdminServer) -> None:
    """The same key and body: the first answer replayed (marked), applied once; the same
    key with another body: 409; ten concurrent calls under one new key: applied once."""
    acct = (await create(admin_api, money="0"))["account"]
    key = "pay-" + uuid.uuid4().hex
    async with admin_api.client("operator") as c:
        headers = {"Idempotency-Key": key}
        first = await c.post(f"/accounts/{acct}/topups", json={"amount": "5"}, headers=headers)
        again = await c.post(f"/accounts/{acct}/topups", json={"amount": "5"}, headers=headers)
        other = await c.post(f"/accounts/{acct}/topups", json={"amount": "6"}, headers=headers)
        elsewhere = await c.post(f"/accounts/{acct}/block", json={}, headers=headers)
        assert first.status_code == again.status_code == 200
        assert again.json() == first.json() and again.headers["idempotent-replayed"] == "true"
        assert "idempotent-replayed" not in first.headers
        assert other.status_code == 409 and other.json()["error"] == "idempotency_key_reused"
        assert elsewhere.status_code == 409
        race = "race-" + uuid.uuid4().hex
        answers = await asyncio.gather(
            *(
                c.post(
                    f"/accounts/{acct}/topups",
                    json={"amount": "1"},
                    headers={"Idempotency-Key": race},
                )
                for _ in range(10)
            )
        )
        assert {a.status_code for a in answers} == {200}
        view = (await c.get(f"/accounts/{acct}")).json()
        hist = (await c.get(f"/accounts/{acct}/history")).json()["entries"]
    assert view["money"]["micro"] == 6_000_000
    assert [e["op"] for e in hist] == ["create", "topup", "topup"]
    assert {e["reference"] for e in hist[1:]} == {key, race}


async def test_a_referenced_create_replays(admin_api: AdminServer) -> None:
    """POST /accounts twice under one key: one account, the same answer."""
    body = {"identities": [msisdn()], "plan": "basic", "money": "1"}
    headers = {"Idempotency-Key": "create-" + uuid.uuid4().hex}
    async with admin_api.client("operator") as c:
        one = await c.post("/accounts", json=body, headers=headers)
        two = await c.post("/accounts", json=body, headers=headers)
    assert one.status_code == two.status_code == 201
    assert one.json()["account"] == two.json()["account"]


# -- bad input ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "body", "status", "text"),
    [
        ("/accounts", b"{not json", 400, ""),
        ("/accounts", {"identities": ["e164:abc"], "plan": "basic"}, 400, "e164:abc"),
        ("/accounts", {"identities": [], "plan": "basic"}, 400, "identities"),
        ("/accounts", {"identities": ["e164:1"], "plan": "basic", "colour": 1}, 400, "colour"),
        ("/accounts", {"identities": ["e164:1"], "plan": "basic", "money": "1e3"}, 400, "1e3"),
        ("/accounts", {"identities": ["e164:1"], "plan": "basic", "id": "a/b"}, 400, "a/b"),
        ("/accounts/e164:abc", None, 400, "e164:abc"),
        ("/accounts/nosuchaccount/topups", {"amount": "1"}, 404, "nosuchaccount"),
        ("/accounts/x/topups", {"amount": "1", "amount_minor": 100}, 400, "exactly one"),
        ("/accounts/x/buckets/a%20b/expire", {}, 400, "a b"),
        ("/price", {"subscriber": "e164:1", "units": {"events": -1}}, 400, "events"),
    ],
)
async def test_bad_input_is_a_clear_400(
    admin_api: AdminServer, path: str, body: Any, status: int, text: str
) -> None:
    """Malformed JSON, unknown fields, bad identities, amounts and ids: one clear answer."""
    async with admin_api.client("admin") as c:
        if body is None:
            r = await c.get(path)
        elif isinstance(body, bytes):
            r = await c.post(path, content=body, headers={"content-type": "application/json"})
        else:
            r = await c.post(path, json=body)
    assert r.status_code == status, r.text
    assert text in r.json()["message"] and r.json()["request_id"]


async def test_bad_idempotency_key_and_large_body(admin_api: AdminServer) -> None:
    """An Idempotency-Key with a space: 400; a body over max_body: 413 (the server lives)."""
    async with admin_api.client("admin") as c:
        r = await c.post(
            "/accounts",
            json={"identities": [msisdn()], "plan": "basic"},
            headers={"Idempotency-Key": "a b"},
        )
        assert r.status_code == 400 and "Idempotency-Key" in r.json()["message"]
        assert (await c.get("/accounts?limit=1")).status_code == 200
    port = int(admin_api.url.rsplit(":", 1)[1])
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        b"POST /accounts:batch HTTP/1.1\r\nHost: x\r\n"
        + f"Authorization: Bearer {admin_api.tokens['admin']}\r\n".encode()
        + b"Content-Type: application/json\r\nContent-Length: 16777217\r\n\r\n"
    )
    await writer.drain()
    status = await asyncio.wait_for(reader.readline(), 10)
    writer.close()
    assert status.startswith(b"HTTP/1.1 413")

    async def chunks() -> Any:  # ~19 MB, no Content-Length: counted while it arrives
        for _ in range(16):
            yield b"[" + b"0," * 600_000 + b"0]"

    async with admin_api.client("admin") as c:
        r = await c.post("/accounts:batch", content=chunks())
        assert r.status_code == 413 and r.json()["error"] == "too_large", r.text
        assert (await c.get("/accounts?limit=1")).status_code == 200


async def test_request_id_is_echoed_and_audited(admin_api: AdminServer) -> None:
    """X-Request-Id given: echoed in the answer and written in the audit entry."""
    acct = (await create(admin_api))["account"]
    rid = "crm-" + uuid.uuid4().hex
    async with admin_api.client("operator") as c:
        r = await c.post(
            f"/accounts/{acct}/topups", json={"amount": "1"}, headers={"X-Request-Id": rid}
        )
        assert r.headers["x-request-id"] == rid
        hist = (await c.get(f"/accounts/{acct}/history")).json()["entries"]
    assert hist[-1]["request_id"] == rid


# -- bulk import ---------------------------------------------------------------------


async def test_batch_import_is_idempotent_per_row(admin_api: AdminServer) -> None:
    """200 rows, one with a bad identity and one with a taken identity: 198 created, two
    refused with line and reason; the same rows again: 198 already, nothing created."""
    taken = (await create(admin_api))["identities"][0]
    rows: list[dict[str, Any]] = [
        {"identities": [msisdn()], "plan": "basic", "money": "1.50"} for _ in range(198)
    ]
    rows.insert(10, {"identities": ["e164:12ab"], "plan": "basic"})
    rows.insert(20, {"identities": [taken], "plan": "basic"})
    async with admin_api.client("admin") as c:
        first = (await c.post("/accounts:batch", json={"accounts": rows})).json()
        again = (await c.post("/accounts:batch", json={"accounts": rows})).json()
        one = (await c.get(f"/accounts/{rows[0]['identities'][0]}")).json()
    assert (first["rows"], first["created"], first["already"]) == (200, 198, 0)
    assert [
        (r["line"], "12ab" in r["reason"] or "already belongs" in r["reason"])
        for r in first["refused"]
    ] == [
        (11, True),
        (21, True),
    ]
    assert (again["created"], again["already"], len(again["refused"])) == (0, 198, 2)
    assert one["money"]["amount"] == "1.50"


# -- the OpenAPI document -------------------------------------------------------------


async def test_openapi_served_equals_the_repository_copy(admin_api: AdminServer) -> None:
    """/openapi.json (over HTTP, with a token) == ocs/admin/openapi.json == the code's."""
    checked_in = json.loads((ROOT / "ocs/admin/openapi.json").read_text())
    async with admin_api.client("read") as c:
        served = (await c.get("/openapi.json")).json()
    assert served == checked_in, "run: ocs admin openapi > ocs/admin/openapi.json"
    assert openapi_document() == checked_in
    assert "/accounts/{ref}/statement" in served["paths"]
    assert "/accounts:batch" in served["paths"]
    assert served["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
