"""Shared pieces of the exporter's integration tests.

Tests that write raw entries (undecodable ones included) use their own
logical database, flushed per test, so that no other suite ever reads them;
tests of real charging read the suite's main database with their own
consumer group and look only at their own accounts.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections import Counter
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import redis
import yaml

from ocs.charging.records import ChargedRecord, encode_record
from ocs.export.config import ExportConfig
from ocs.export.formats import read_rows
from ocs.export.layout import batch_rows
from ocs.export.rows import Row
from ocs.store.client import SyncStore, connect_sync
from ocs.store.keys import dead_letter_stream, records_stream

EXPORT_DB = 9
REPO = Path(__file__).resolve().parents[3]


def export_db_url(redis_url: str) -> str:
    """The suite's server URL pointed at the exporter tests' own database
    (a cluster has database 0 only: its URL as it is, see :func:`fresh_db`)."""
    if redis_url.startswith(("redis+cluster://", "rediss+cluster://")):
        return redis_url
    parts = urlsplit(redis_url)
    if parts.scheme == "unix":
        query = {**dict(parse_qsl(parts.query)), "db": str(EXPORT_DB)}
        return f"unix://{parts.path}?{urlencode(query)}"
    return urlunsplit(parts._replace(path=f"/{EXPORT_DB}"))


def fresh_db(redis_url: str) -> SyncStore:
    """A client of the exporter tests' database, emptied. On a cluster (one
    database, shared by the suites that run there) only the record and
    dead-letter streams are emptied: nothing else reads them in between,
    the suites run one test at a time and read the records they wrote."""
    client = connect_sync(export_db_url(redis_url))
    if isinstance(client, redis.cluster.RedisCluster):
        for p in range(16):
            client.delete(records_stream(p), dead_letter_stream(p))
        return client
    client.flushdb()
    return client


def config(out: Path, **overrides: Any) -> ExportConfig:
    base: dict[str, Any] = {
        "output_dir": out,
        "batch_size": 50,
        "max_batch_age": 0.05,
        "poll_interval": 0.02,
        "close_grace_seconds": 0,
        "group": f"g-{uuid.uuid4().hex[:8]}",
        "backoff_initial": 0.05,
        "backoff_max": 0.2,
        "metrics_port": None,
    }
    return ExportConfig(**{**base, **overrides})


def add(client: SyncStore, partition: int, rec: ChargedRecord, entry_id: str = "*") -> str:
    new_id = client.xadd(records_stream(partition), {b"r": encode_record(rec)}, id=entry_id)
    return new_id.decode() if isinstance(new_id, bytes) else str(new_id)


def all_rows(out: Path) -> list[Row]:
    """Every row under the output: closed periods' rows files, open periods' batches."""
    rows: list[Row] = []
    for pdir in sorted(p for p in out.iterdir() if p.is_dir() and not p.name.startswith(".")):
        if (pdir / "manifest.json").exists():
            rows.extend(read_rows(pdir / "rows.jsonl"))
            continue
        for bdir in sorted(b for b in pdir.iterdir() if b.is_dir() and b.name.startswith("p")):
            rows.extend(batch_rows(bdir))  # the records' batches (a..: audit entries)
    return rows


def record_counts(out: Path) -> Counter[str]:
    """Per record id: in how many distinct stream entries it appears (1 = exactly once)."""
    seen = {(r["record_id"], r["partition"], r["entry_id"]) for r in all_rows(out)}
    return Counter(rid for rid, _, _ in seen)


def pending(client: SyncStore, group: str, partitions: int = 16) -> int:
    """Entries delivered to the group's consumers and not acknowledged."""
    total = 0
    for p in range(partitions):
        try:
            info: Any = client.xpending(records_stream(p), group)
        except redis.ResponseError:  # no group yet
            continue
        total += int(info["pending"])
    return total


def unacknowledged(client: SyncStore, group: str, partitions: int = 16) -> int:
    """Entries the group has not acknowledged: pending plus never delivered."""
    total = 0
    for p in range(partitions):
        stream = records_stream(p)
        if not client.exists(stream):
            continue
        groups: Any = client.xinfo_groups(stream)
        mine = [g for g in groups if g["name"].decode() == group]
        total += int(mine[0]["pending"]) + int(mine[0]["lag"]) if mine else client.xlen(stream)
    return total


def write_config_file(path: Path, cfg: ExportConfig) -> Path:
    data = json.loads(cfg.model_dump_json())
    path.write_text(yaml.safe_dump({"export": data}), encoding="utf-8")
    return path


def export_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "ocs", "export", *args]


def run_cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        export_cmd(*args),
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        cwd=REPO,
        check=False,
    )
