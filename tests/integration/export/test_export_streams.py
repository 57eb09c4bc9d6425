"""The exporter against a real Redis: rows, period close, dead letters, sharing, trim."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import redis

from ocs.export.exporter import Exporter
from ocs.export.money import to_minor
from ocs.export.summary import TOTAL_SERVICE
from ocs.store.keys import dead_letter_stream, records_stream
from tests.integration.export.helpers import (
    add,
    all_rows,
    config,
    export_db_url,
    fresh_db,
    pending,
    record_counts,
    run_cli,
)
from tests.unit.export.records import record

PAST = 1_700_000_000  # 2023-11-14T22:13:20Z: every period of these entries is over


def metric(name: str, **labels: str) -> float:
    from ocs.export.metrics import REGISTRY

    return REGISTRY.get_sample_value(name, labels) or 0.0


def add_past(
    client: redis.Redis, n: int, accounts: int = 3, start_ms: int = PAST * 1000
) -> list[str]:
    """n records with stream ids (and end times) in a finished day; returns record ids."""
    ids = []
    for i in range(n):
        rec = record(
            account=f"acct-{i % accounts}",
            end=PAST + i,
            charged=(1_000_000 + i, 333_333) if i % 2 else (2_500_001,),
        )
        add(client, i % 16, rec, entry_id=f"{start_ms + i}-0")
        ids.append(rec.record_id)
    return ids


def test_once_closes_period_with_summary_equal_to_rows(redis_url: str, tmp_path: Path) -> None:
    """--once drains, closes the finished day; summary = sums of rows; verify passes."""
    client = fresh_db(redis_url)
    ids = add_past(client, 60)
    cfg = config(tmp_path / "out")
    exported, rows_files = (
        metric("ocs_export_records_total"),
        metric("ocs_export_files_written_total", kind="rows"),
    )
    assert Exporter(client, cfg).run(once=True) == 0
    assert record_counts(cfg.output_dir) == dict.fromkeys(ids, 1)
    assert metric("ocs_export_records_total") == exported + 60
    assert metric("ocs_export_files_written_total", kind="rows") == rows_files + 2 * 16
    assert pending(client, cfg.group) == 0
    pdir = cfg.output_dir / "2023-11-14"
    manifest = json.loads((pdir / "manifest.json").read_text())
    rows = all_rows(cfg.output_dir)
    assert manifest["totals"]["rows"] == len(rows) == 90
    eur = manifest["totals"]["currencies"]["EUR"]
    assert eur["charged_micro"] == sum(r["charged_micro"] for r in rows)
    assert eur["tax_minor"] == to_minor(sum(r["tax_micro"] for r in rows), 2)
    summary = [json.loads(line) for line in (pdir / "summary.jsonl").read_text().splitlines()]
    for line in (s for s in summary if s["service"] == TOTAL_SERVICE):
        mine = [r for r in rows if r["account"] == line["account"]]
        assert line["sessions"] == 20
        for col in ("charged_micro", "net_micro", "tax_micro", "used_total_octets"):
            assert line[col] == sum(r[col] for r in mine)
    by_service = {(s["account"], s["service"]): s for s in summary}
    assert by_service[("acct-1", "20/")]["used_total_octets"] == sum(
        r["used_total_octets"] for r in rows if r["account"] == "acct-1" and r["service"] == "20/"
    )
    done = run_cli("verify", str(cfg.output_dir))
    assert done.returncode == 0, done.stderr
    assert "ok: 1 periods (1 closed)" in done.stdout


def test_undecodable_entries_go_to_dead_letter(redis_url: str, tmp_path: Path) -> None:
    """Garbage, a missing field and net+tax != charged are dead-lettered with reasons, acked."""
    client = fresh_db(redis_url)
    good = record(end=PAST)
    add(client, 5, good, entry_id=f"{PAST * 1000}-0")
    client.xadd(records_stream(5), {b"r": b"\xc1not msgpack"}, id=f"{PAST * 1000}-1")
    client.xadd(records_stream(5), {b"x": b"1"}, id=f"{PAST * 1000}-2")
    bad = record(end=PAST)
    bad = type(bad)(**{**{f: getattr(bad, f) for f in bad.__dataclass_fields__}, "tax": 1})
    add(client, 5, bad, entry_id=f"{PAST * 1000}-3")
    cfg = config(tmp_path / "out")
    exporter = Exporter(client, cfg)
    before = metric("ocs_export_dead_letters_total", reason="undecodable")
    assert exporter.run(once=True) == 0
    assert exporter.stats.dead_letters == 3
    assert metric("ocs_export_dead_letters_total", reason="undecodable") == before + 3
    dead = client.xrange(dead_letter_stream(5))
    reasons = {f[b"dead_entry"].decode(): f[b"dead_reason"].decode() for _, f in dead}
    assert set(reasons) == {f"{PAST * 1000}-{i}" for i in (1, 2, 3)}
    assert "undecodable" in reasons[f"{PAST * 1000}-1"]
    assert "no 'r' field" in reasons[f"{PAST * 1000}-2"]
    assert "!= charged" in reasons[f"{PAST * 1000}-3"]
    assert dead[0][1][b"r"] == b"\xc1not msgpack"
    assert pending(client, cfg.group) == 0
    assert record_counts(cfg.output_dir) == {good.record_id: 1}


def test_two_exporters_in_one_group_export_each_record_once(redis_url: str, tmp_path: Path) -> None:
    """Two exporters sharing a group and a directory, records arriving: each row once."""
    client = fresh_db(redis_url)
    cfg = config(tmp_path / "out", batch_size=10)
    a, b = Exporter(client, cfg), Exporter(redis.Redis.from_url(export_db_url(redis_url)), cfg)
    threads = [threading.Thread(target=e.run) for e in (a, b)]
    for t in threads:
        t.start()
    ids = []
    for i in range(300):
        rec = record(account=f"acct-{i % 7}")
        add(client, i % 16, rec)
        ids.append(rec.record_id)
        if i % 20 == 0:
            time.sleep(0.01)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and len(record_counts(cfg.output_dir)) < len(ids):
        time.sleep(0.05)
    for e in (a, b):
        e.stop()
    for t in threads:
        t.join(10)
    assert record_counts(cfg.output_dir) == dict.fromkeys(ids, 1)
    assert a.stats.records + b.stats.records == 300
    assert pending(client, cfg.group) == 0
    assert run_cli("verify", str(cfg.output_dir)).returncode == 0


def test_trim_keeps_unacknowledged_entries(redis_url: str, tmp_path: Path) -> None:
    """Retention trims acknowledged old entries only; a pending one and all after it stay."""
    client = fresh_db(redis_url)
    add_past(client, 32)
    cfg = config(tmp_path / "out", retention_seconds=3600)
    assert Exporter(client, cfg).run(once=True) == 0
    # Deliver (not ack) one more old entry on partition 0 to another consumer.
    add(client, 0, record(end=PAST), entry_id=f"{PAST * 1000 + 5000}-0")
    add(client, 0, record(end=PAST), entry_id=f"{PAST * 1000 + 6000}-0")
    client.xreadgroup(cfg.group, "someone-else", {records_stream(0): ">"}, count=1)
    exporter = Exporter(client, cfg)
    exporter.start()
    exporter.trim()
    remaining = [e.decode() for e, _ in client.xrange(records_stream(0))]
    assert remaining == [f"{PAST * 1000 + 5000}-0", f"{PAST * 1000 + 6000}-0"]
    assert client.xlen(records_stream(1)) == 0


def test_record_for_a_closed_period_is_dead_lettered(redis_url: str, tmp_path: Path) -> None:
    """An entry that would land in an already-closed period never reopens it."""
    client = fresh_db(redis_url)
    add_past(client, 3)
    cfg = config(tmp_path / "out")
    assert Exporter(client, cfg).run(once=True) == 0
    manifest = (cfg.output_dir / "2023-11-14" / "manifest.json").read_bytes()
    add(client, 9, record(end=PAST), entry_id=f"{PAST * 1000 + 10}-0")
    exporter = Exporter(client, cfg)
    assert exporter.run(once=True) == 0
    assert exporter.stats.dead_letters == 1
    ((_, fields),) = client.xrange(dead_letter_stream(9))
    assert b"already closed" in fields[b"dead_reason"]
    assert (cfg.output_dir / "2023-11-14" / "manifest.json").read_bytes() == manifest


def test_once_ends_while_records_keep_arriving(redis_url: str, tmp_path: Path) -> None:
    """--once exports what was there at start and exits although the producer never stops."""
    client = fresh_db(redis_url)
    before = [add(client, i % 16, rec := record()) and rec.record_id for i in range(50)]
    halt = threading.Event()

    def produce() -> None:
        other = redis.Redis.from_url(export_db_url(redis_url))
        for i in range(100_000):
            if halt.is_set():
                return
            add(other, i % 16, record())
            time.sleep(0.001)

    producer = threading.Thread(target=produce)
    producer.start()
    try:
        cfg = config(tmp_path / "out")
        assert Exporter(client, cfg).run(once=True) == 0
    finally:
        halt.set()
        producer.join()
    counts = record_counts(cfg.output_dir)
    assert {rid: counts[rid] for rid in before} == dict.fromkeys(before, 1)


def test_entries_idle_at_a_silent_exporter_are_taken_over(redis_url: str, tmp_path: Path) -> None:
    """Entries held by an exporter of another host past claim_idle are exported by us, once."""
    client = fresh_db(redis_url)
    cfg = config(tmp_path / "out", claim_idle_seconds=3)
    ids = [add(client, 4, rec := record()) and rec.record_id for _ in range(8)]
    Exporter(client, cfg).start()  # creates the groups
    held = client.xreadgroup(cfg.group, "elsewhere:1:silent", {records_stream(4): ">"})
    assert len(held[0][1]) == 8
    early = Exporter(client, cfg)
    assert early.run(once=True) == 0
    assert early.stats.records == 0  # not idle long enough: still the other's
    time.sleep(3.1)
    late = Exporter(client, cfg)
    assert late.run(once=True) == 0
    assert late.stats.records == 8
    assert client.xinfo_consumers(records_stream(4), cfg.group) == []  # silent one forgotten
    assert record_counts(cfg.output_dir) == dict.fromkeys(ids, 1)
    assert pending(client, cfg.group) == 0


def test_batch_taken_over_before_publish_is_dropped_by_the_slow_exporter(
    redis_url: str, tmp_path: Path
) -> None:
    """Fence: a slow exporter whose entries were taken over writes nothing; rows once."""
    client = fresh_db(redis_url)
    cfg = config(tmp_path / "out", claim_idle_seconds=1)
    ids = [add(client, 6, rec := record()) and rec.record_id for _ in range(5)]
    slow = Exporter(client, cfg)
    slow.start()
    assert slow.poll() == 5  # delivered to the slow one, held in its buffer
    time.sleep(1.1)
    fast = Exporter(client, cfg)
    assert fast.run(once=True) == 0
    assert fast.stats.records == 5
    slow.flush(force=True)
    assert (slow.stats.records, slow.stats.lost) == (0, 5)
    assert slow.buffered() == 0
    assert record_counts(cfg.output_dir) == dict.fromkeys(ids, 1)
    assert run_cli("verify", str(cfg.output_dir)).returncode == 0


def test_lag_is_the_age_of_the_oldest_unacknowledged_entry(redis_url: str, tmp_path: Path) -> None:
    """Lag (gauge and health) = now - oldest entry not acknowledged; 0 once all are."""
    from ocs.export.metrics import REGISTRY

    client = fresh_db(redis_url)
    add_past(client, 4)
    exporter = Exporter(client, config(tmp_path / "out"))
    exporter.start()
    exporter.housekeeping()
    age = time.time() - PAST
    assert abs(exporter.health()["lag_seconds"] - age) < 120
    assert REGISTRY.get_sample_value("ocs_export_lag_seconds") == exporter.health()["lag_seconds"]
    assert exporter.run(once=True) == 0
    assert exporter.health()["lag_seconds"] == 0
    assert REGISTRY.get_sample_value("ocs_export_lag_seconds") == 0
