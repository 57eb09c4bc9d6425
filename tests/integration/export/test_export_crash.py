"""kill -9 the exporter at random points while records keep arriving: each row once.

The exporter runs as a subprocess with tiny batches so that kills land
in every step of the commit (staging, fsync, fence, rename, ack). After the
kills a final ``--once`` run drains the rest; then every record produced
must appear in exactly one stream entry's rows and ``export verify`` must pass.
"""

from __future__ import annotations

import os
import random
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest
import redis

from ocs.store.client import SyncStore, connect_sync
from ocs.store.keys import records_stream
from tests.integration.export.helpers import (
    REPO,
    add,
    config,
    export_cmd,
    export_db_url,
    fresh_db,
    pending,
    record_counts,
    run_cli,
    write_config_file,
)
from tests.unit.export.records import record

MAX_RECORDS = 20_000


class Producer(threading.Thread):
    """Adds records to random partitions until stopped (bounded in count)."""

    def __init__(self, url: str, seed: int) -> None:
        super().__init__(daemon=True)
        self.client = connect_sync(url)
        self.rng = random.Random(seed)
        self.ids: list[str] = []
        self.halt = threading.Event()

    def run(self) -> None:
        while not self.halt.is_set() and len(self.ids) < MAX_RECORDS:
            rec = record(
                account=f"acct-{self.rng.randrange(20)}",
                charged=tuple(
                    self.rng.randrange(0, 5_000_000) for _ in range(self.rng.randint(1, 3))
                ),
            )
            add(self.client, self.rng.randrange(16), rec)
            self.ids.append(rec.record_id)
            time.sleep(0.002)


def started_working(client: SyncStore, group: str, pid: int) -> bool:
    prefix = f"{socket.gethostname()}:{pid}:"
    try:
        consumers = client.xinfo_consumers(records_stream(15), group)
    except redis.ResponseError:
        return False
    return any(c["name"].decode().startswith(prefix) for c in consumers)


def crash_loop(redis_url: str, tmp_path: Path, kills: int, seed: int) -> None:
    client = fresh_db(redis_url)
    url = export_db_url(redis_url)
    cfg = config(
        tmp_path / "out", batch_size=20, max_batch_age=0.01, poll_interval=0.01, claim_interval=0.5
    )
    conf = write_config_file(tmp_path / "ocs.yaml", cfg)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    rng = random.Random(seed)
    producer = Producer(url, seed)
    producer.start()
    try:
        for _ in range(kills):
            with open(tmp_path / "exporter.log", "a") as log:  # kept for post-mortems
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
    counts = record_counts(cfg.output_dir)
    assert len(producer.ids) > 0
    missing = set(producer.ids) - set(counts)
    twice = {rid: n for rid, n in counts.items() if n != 1}
    assert not missing, f"{len(missing)} records lost"
    assert not twice, f"records exported more than once: {list(twice.items())[:5]}"
    assert set(counts) == set(producer.ids)
    assert pending(client, cfg.group) == 0
    verified = run_cli("verify", str(cfg.output_dir))
    assert verified.returncode == 0, verified.stderr


def test_kill9_twenty_times_every_record_once(store_url: str, tmp_path: Path) -> None:
    """Twenty kill -9 of a working exporter while records arrive: none lost, none twice."""
    crash_loop(store_url, tmp_path, kills=20, seed=20)


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_kill9_hundred_times_every_record_once(redis_url: str, tmp_path: Path) -> None:
    """A hundred kill -9 at random points while records arrive (soak): none lost, none twice."""
    crash_loop(redis_url, tmp_path, kills=100, seed=100)
