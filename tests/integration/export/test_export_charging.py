"""Records from real charging API calls come out as invoice rows with the right money."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

from ocs.charging.api import ChargingService
from ocs.charging.records import decode_record
from ocs.export.exporter import Exporter
from ocs.export.money import decimal_string, to_minor
from ocs.store.client import connect_sync
from ocs.vocabulary.types import (
    EventAction,
    ServiceKey,
    ServiceRequest,
    SessionRef,
    Usage,
    UsedUnits,
)
from tests.core_fixtures import NewAccount, unique_session
from tests.integration.export.helpers import all_rows, config

DATA, VOICE, SMS = ServiceKey(10), ServiceKey(30), ServiceKey(40)


async def test_session_and_event_records_become_rows(
    charging: ChargingService, new_account: NewAccount, store_url: str, tmp_path: Path
) -> None:
    """A two-service session and a direct debit, rated at 20% VAT, exported exactly."""
    acct = await new_account(money=10_000_000)
    ref = SessionRef(unique_session())
    await charging.initiate(
        ref, acct.identity, [ServiceRequest(DATA, Usage()), ServiceRequest(VOICE, Usage())]
    )
    await charging.terminate(
        ref,
        "1",
        [
            ServiceRequest(DATA, used=(UsedUnits(Usage(total_octets=25_000)),)),
            ServiceRequest(VOICE, used=(UsedUnits(Usage(seconds=90)),)),
        ],
    )
    await charging.event(
        "ev-" + uuid.uuid4().hex, acct.identity, SMS, EventAction.DIRECT_DEBIT, Usage(events=3)
    )
    stream = charging.store.keys(acct.account_id).records
    records = {
        r.record_id: (eid.decode(), r)
        for eid, f in await charging.redis.xrange(stream)
        if (r := decode_record(f[b"r"])).account == acct.account_id
    }
    assert len(records) == 2

    cfg = config(tmp_path / "out")
    client = connect_sync(store_url)
    status = await asyncio.to_thread(Exporter(client, cfg).run, True)
    assert status == 0
    rows = [r for r in all_rows(cfg.output_dir) if r["account"] == acct.account_id]

    session_rows = [r for r in rows if r["kind"] == "session"]
    assert sorted(r["service"] for r in session_rows) == ["10/", "30/"]
    (sms,) = [r for r in rows if r["kind"] == "event"]
    # 3 SMS at 500 micro-EUR, VAT 20% included: gross 1500, net 1250, tax 250.
    assert (sms["charged_micro"], sms["net_micro"], sms["tax_micro"]) == (1_500, 1_250, 250)
    assert (sms["charged"], sms["net"], sms["tax"]) == ("0.0015", "0.00125", "0.00025")
    assert (sms["charged_minor"], sms["tax_minor"], sms["net_minor"]) == (0, 0, 0)
    assert (sms["tax_rate"], sms["used_events"]) == ("20", 3)
    for rid, (entry_id, rec) in records.items():
        mine = [r for r in rows if r["record_id"] == rid]
        assert {r["entry_id"] for r in mine} == {entry_id}
        assert sum(r["charged_micro"] for r in mine) == rec.charged
        assert sum(r["tax_micro"] for r in mine) == rec.tax
        assert sum(r["net_micro"] for r in mine) == rec.net
        assert rec.tax_rate_ppm == 200_000
        for r in mine:
            assert r["currency"] == "EUR"
            assert r["charged"] == decimal_string(r["charged_micro"], 2)
            assert r["charged_minor"] == to_minor(r["charged_micro"], 2)
            assert r["identity"].endswith(acct.identity.value[-4:])
            assert acct.identity.value not in r["identity"]
    by_service = {r["service"]: r for r in session_rows}
    assert by_service["10/"]["used_total_octets"] == 25_000
    assert by_service["30/"]["used_seconds"] == 90
    session_rec = next(rec for _, rec in records.values() if rec.kind == "session")
    assert session_rec.charged == sum(s.charged for s in session_rec.services) > 0
    for svc in session_rec.services:
        assert by_service[svc.service]["charged_micro"] == svc.charged
