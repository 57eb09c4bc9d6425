"""Audit entries exported beside the invoice rows, exactly once (issue 14 item 4).

``ocs export`` runs the audit feed with the records' machinery: batches
``aNN_<first>_<last>/`` in the period directory, ``audit.*`` and
``audit-manifest.json`` when the period closes. kill -9 of the exporter while
audit entries and records arrive loses none and writes none twice, and
``ocs export verify`` checks the audit files too. Entries of load-test
accounts are left out (``export.exclude_test_accounts``).
"""

from __future__ import annotations

import json
import os
import random
import socket
import subprocess
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import msgpack
import redis

from ocs.accounts import Accounts, BucketSpec
from ocs.audit import Actor
from ocs.charging.api import ChargingService
from ocs.export.audit_rows import coerce_audit_row
from ocs.export.formats import iter_raw
from ocs.store.keys import audit_stream
from ocs.vocabulary.types import ServiceKey, ServiceRequest, SessionRef, UnitType, Usage, UsedUnits
from tests.core_fixtures import NewAccount, unique_session
from tests.integration.export.helpers import (
    REPO,
    add,
    config,
    export_cmd,
    export_db_url,
    fresh_db,
    record_counts,
    run_cli,
    write_config_file,
)
from tests.unit.export.records import record

MAX_ENTRIES = 10_000


def audit_entry(account: str, delta: int, rid: str) -> bytes:
    """An entry as audit.lua writes it (a top-up of the main money bucket)."""
    entry = {
        "v": 1,
        "op": "topup",
        "acct": account,
        "at": int(time.time()),
        "who": "token:test",
        "via": "api",
        "rid": rid,
        "why": "",
        "ref": "",
        "cur": "EUR",
        "bucket": "main",
        "unit": "money",
        "delta": delta,
        "before": 0,
        "after": delta,
        "mb": 0,
        "ma": delta,
    }
    packed: bytes = msgpack.packb(entry, use_bin_type=True)
    return packed


def audit_rows(out: Path) -> list[dict[str, Any]]:
    """Every audit row under the output: closed periods' audit.jsonl, open periods' batches."""
    rows: list[dict[str, Any]] = []
    for pdir in sorted(p for p in out.iterdir() if p.is_dir() and not p.name.startswith(".")):
        if (pdir / "audit-manifest.json").exists():
            rows.extend(coerce_audit_row(r) for r in iter_raw(pdir / "audit.jsonl"))
            continue
        for bdir in sorted(b for b in pdir.iterdir() if b.is_dir() and b.name.startswith("a")):
            rows.extend(coerce_audit_row(r) for r in iter_raw(bdir / "audit.jsonl"))
    return rows


class Producer(threading.Thread):
    """Adds audit entries (and a few records) to random partitions until stopped."""

    def __init__(self, url: str, seed: int) -> None:
        super().__init__(daemon=True)
        self.client = redis.Redis.from_url(url)
        self.rng = random.Random(seed)
        self.rids: list[str] = []
        self.records: list[str] = []
        self.halt = threading.Event()

    def run(self) -> None:
        while not self.halt.is_set() and len(self.rids) < MAX_ENTRIES:
            p = self.rng.randrange(16)
            rid = uuid.uuid4().hex
            acct = f"acct-{self.rng.randrange(20)}"
            self.client.xadd(audit_stream(p), {b"a": audit_entry(acct, 1_000, rid)})
            self.rids.append(rid)
            if self.rng.random() < 0.3:
                rec = record(account=acct, charged=(self.rng.randrange(1, 5_000_000),))
                add(self.client, p, rec)
                self.records.append(rec.record_id)
            time.sleep(0.002)


def started_working(client: redis.Redis, group: str, pid: int) -> bool:
    prefix = f"{socket.gethostname()}:{pid}:"
    try:
        consumers = client.xinfo_consumers(audit_stream(15), group)
    except redis.ResponseError:
        return False
    return any(c["name"].decode().startswith(prefix) for c in consumers)


def test_kill9_ten_times_every_audit_entry_once(redis_url: str, tmp_path: Path) -> None:
    """Ten kill -9 of a working exporter while audit entries and records arrive: every audit
    entry in the audit files once, every record in the rows once, verify passes."""
    client = fresh_db(redis_url)
    url = export_db_url(redis_url)
    cfg = config(
        tmp_path / "out", batch_size=20, max_batch_age=0.01, poll_interval=0.01, claim_interval=0.5
    )
    conf = write_config_file(tmp_path / "ocs.yaml", cfg)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    rng = random.Random(10)
    producer = Producer(url, 10)
    producer.start()
    try:
        for _ in range(10):
            with open(tmp_path / "exporter.log", "a") as log:
                proc = subprocess.Popen(
                    export_cmd("--config", str(conf), "--redis-url", url),
                    env=env,
                    cwd=REPO,
                    stdout=log,
                    stderr=log,
                )
            deadline = time.monotonic() + 15
            while not started_working(client, cfg.group, proc.pid):
                assert proc.poll() is None, "exporter exited by itself"
                assert time.monotonic() < deadline, "exporter did not start"
                time.sleep(0.005)
            time.sleep(rng.choice([rng.uniform(0, 0.05), rng.uniform(0.05, 0.6)]))
            proc.kill()
            proc.wait()
    finally:
        producer.halt.set()
        producer.join()
    final = run_cli("--config", str(conf), "--redis-url", url, "--once", timeout=120)
    assert final.returncode == 0, final.stderr[-2000:]
    rows = audit_rows(cfg.output_dir)
    seen: dict[str, int] = {}
    for row in rows:
        seen[row["request_id"]] = seen.get(row["request_id"], 0) + 1
    assert len(producer.rids) > 0
    assert set(seen) == set(producer.rids), f"{len(set(producer.rids) - set(seen))} lost"
    assert all(n == 1 for n in seen.values()), "an audit entry exported twice"
    counts = record_counts(cfg.output_dir)
    assert set(counts) == set(producer.records) and all(n == 1 for n in counts.values())
    verified = run_cli("verify", str(cfg.output_dir))
    assert verified.returncode == 0, verified.stderr
    assert f"{len(producer.rids)} audit entries" in verified.stdout


def test_audit_files_close_with_their_manifest(redis_url: str, tmp_path: Path) -> None:
    """An audit entry of a past period: the period closes with audit.csv, audit.jsonl and
    audit-manifest.json (totals per operation and money change); verify checks them and
    finds a row edited afterwards."""
    client = fresh_db(redis_url)
    url = export_db_url(redis_url)
    past_ms = int((time.time() - 3 * 86400) * 1000)
    for n in range(3):
        client.xadd(
            audit_stream(n), {b"a": audit_entry(f"acct-{n}", 250_000, f"r{n}")}, id=f"{past_ms}-{n}"
        )
    cfg = config(tmp_path / "out")
    conf = write_config_file(tmp_path / "ocs.yaml", cfg)
    done = run_cli("--config", str(conf), "--redis-url", url, "--once")
    assert done.returncode == 0, done.stderr
    (pdir,) = [p for p in cfg.output_dir.iterdir() if p.is_dir() and not p.name.startswith(".")]
    manifest = json.loads((pdir / "audit-manifest.json").read_text())
    assert manifest["totals"] == {
        "rows": 3,
        "ops": {"topup": 3},
        "money_change_micro": {"EUR": 750_000},
    }
    assert set(manifest["files"]) == {"audit.csv", "audit.jsonl"}
    header = (pdir / "audit.csv").read_text().splitlines()[0]
    assert header.startswith("entry_id,partition,audit_id,at,at_ms,op,account,who,via")
    assert run_cli("verify", str(cfg.output_dir)).returncode == 0
    jsonl = pdir / "audit.jsonl"
    jsonl.write_text(
        jsonl.read_text().replace('"money_change_micro":250000', '"money_change_micro":1')
    )
    broken = run_cli("verify", str(cfg.output_dir))
    assert broken.returncode == 1 and "audit" in broken.stderr


async def test_test_accounts_are_left_out(
    charging: ChargingService,
    accounts: Accounts,
    new_account: NewAccount,
    redis_url: str,
    tmp_path: Path,
) -> None:
    """A load-test account's records and audit entries are acknowledged and written nowhere
    (exclude_test_accounts: true, the default); a normal account's are exported; with the
    option off the test account's are exported too."""
    from ocs.vocabulary.types import Identity, IdentityType

    ident = Identity(IdentityType.E164, "9914" + str(time.time_ns())[-11:])
    test_acct = await accounts.create(
        [ident], "basic", "EUR", [BucketSpec(UnitType.MONEY, 1_000_000)], test=True
    )
    real = await new_account(money=1_000_000)
    await accounts.credit(real.account_id, BucketSpec(UnitType.MONEY, 0), 5, actor=Actor.cli())
    for who in (ident, real.identity):
        s = SessionRef(unique_session(), "test-owner")
        await charging.initiate(s, who, [ServiceRequest(ServiceKey(10), Usage())])
        used = [ServiceRequest(ServiceKey(10), used=(UsedUnits(Usage(total_octets=1000)),))]
        await charging.terminate(s, "1", used)
    outputs = {}
    for exclude in (True, False):
        cfg = config(tmp_path / f"out-{exclude}", exclude_test_accounts=exclude)
        conf = write_config_file(tmp_path / f"ocs-{exclude}.yaml", cfg)
        done = run_cli("--config", str(conf), "--redis-url", redis_url, "--once", timeout=120)
        assert done.returncode == 0, done.stderr
        accounts_in = {r["account"] for r in audit_rows(cfg.output_dir)}
        records_in = set(record_counts(cfg.output_dir))
        outputs[exclude] = (accounts_in, records_in)
    (audited, recorded), (audited_all, recorded_all) = outputs[True], outputs[False]
    assert real.account_id in audited and test_acct not in audited
    assert any(r.startswith(real.account_id) for r in recorded)
    assert not any(r.startswith(test_acct) for r in recorded)
    assert test_acct in audited_all and any(r.startswith(test_acct) for r in recorded_all)
