"""Exporter failures: unwritable or full disk, crash between publish and ack, SIGTERM."""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

from ocs.export.exporter import Exporter
from ocs.export.layout import Layout
from ocs.export.streams import GroupStreams
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
    unacknowledged,
    write_config_file,
)
from tests.unit.export.records import record


def dead_consumer_name() -> str:
    """A consumer name of this host whose process has exited (as after kill -9)."""
    import socket

    proc = subprocess.Popen(["true"])
    proc.wait()
    return f"{socket.gethostname()}:{proc.pid}:dead00"


def wait_for(cond, timeout: float = 20.0) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.02)
    return bool(cond())


def test_unwritable_directory_acknowledges_nothing_then_recovers(
    redis_url: str, tmp_path: Path
) -> None:
    """Output dir blocked: health fails, every entry stays pending; unblocked: exported once."""
    client = fresh_db(redis_url)
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where the export directory should be")
    cfg = config(blocker / "out")
    ids = [add(client, i % 16, rec := record()) and rec.record_id for i in range(40)]
    exporter = Exporter(client, cfg)
    thread = threading.Thread(target=exporter.run)
    thread.start()
    try:
        assert wait_for(lambda: exporter.health()["consecutive_failures"] >= 3)
        health = exporter.health()
        assert health["ok"] is False
        assert "NotADirectoryError" in health["reason"] or "FileExists" in health["reason"]
        assert unacknowledged(client, cfg.group) == 40
        blocker.unlink()
        assert wait_for(lambda: unacknowledged(client, cfg.group) == 0)
        assert wait_for(lambda: exporter.health()["ok"] is True)
    finally:
        exporter.stop()
        thread.join(10)
    assert record_counts(cfg.output_dir) == dict.fromkeys(ids, 1)


def test_once_gives_up_on_unwritable_directory(redis_url: str, tmp_path: Path) -> None:
    """--once against an unwritable directory exits 1, says why, acknowledges nothing."""
    client = fresh_db(redis_url)
    (tmp_path / "blocker").write_text("")
    cfg = config(tmp_path / "blocker" / "out", once_max_attempts=2)
    for i in range(10):
        add(client, i, record())
    conf = write_config_file(tmp_path / "ocs.yaml", cfg)
    done = run_cli("--config", str(conf), "--redis-url", export_db_url(redis_url), "--once")
    assert done.returncode == 1
    assert "Not a directory" in done.stderr.strip().splitlines()[-1]
    assert unacknowledged(client, cfg.group) == 10


def _limit_file_size() -> None:
    resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)


def test_full_disk_acknowledges_nothing_and_next_run_exports_once(
    redis_url: str, tmp_path: Path
) -> None:
    """A write that fails mid-file (EFBIG, as a full disk) leaves all pending; rerun: once."""
    client = fresh_db(redis_url)
    cfg = config(tmp_path / "out", once_max_attempts=2, batch_size=500)
    ids = [add(client, 3, rec := record()) and rec.record_id for _ in range(60)]
    conf = write_config_file(tmp_path / "ocs.yaml", cfg)
    url = export_db_url(redis_url)
    env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONDONTWRITEBYTECODE": "1"}
    full = subprocess.run(
        export_cmd("--config", str(conf), "--redis-url", url, "--once"),
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=REPO,
        preexec_fn=_limit_file_size,
        check=False,
    )
    assert full.returncode == 1, full.stderr
    assert "File too large" in full.stderr
    assert unacknowledged(client, cfg.group) == 60
    assert record_counts(cfg.output_dir) == {}
    again = run_cli("--config", str(conf), "--redis-url", url, "--once")
    assert again.returncode == 0, again.stderr
    assert record_counts(cfg.output_dir) == dict.fromkeys(ids, 1)
    assert pending(client, cfg.group) == 0


class Crash(Exception):
    """Stands for kill -9 between the rename and the XACK."""


def test_batch_on_disk_but_not_acked_is_acked_not_rewritten(
    redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Crash after publish, before XACK: the restart finds the entries on disk, acks only."""
    client = fresh_db(redis_url)
    cfg = config(tmp_path / "out")
    ids = [add(client, 7, rec := record()) and rec.record_id for _ in range(12)]

    def crash(self: GroupStreams, p: int, entry_ids: object) -> int:
        raise Crash

    monkeypatch.setattr(GroupStreams, "ack", crash)
    with pytest.raises(Crash):
        Exporter(client, cfg, consumer=dead_consumer_name()).run(once=True)
    monkeypatch.undo()
    assert record_counts(cfg.output_dir) == dict.fromkeys(ids, 1)
    assert pending(client, cfg.group) == 12
    batches_before = sorted(p.name for p in cfg.output_dir.glob("*/p07_*"))
    restarted = Exporter(client, cfg)
    assert restarted.run(once=True) == 0
    assert restarted.stats.reconciled == 12
    assert restarted.stats.records == 0
    assert pending(client, cfg.group) == 0
    assert sorted(p.name for p in cfg.output_dir.glob("*/p07_*")) == batches_before
    assert record_counts(cfg.output_dir) == dict.fromkeys(ids, 1)


def _crash_after(owner: type, name: str) -> object:
    original = getattr(owner, name)

    def wrapper(*args: object, **kwargs: object) -> object:
        original(*args, **kwargs)
        raise Crash(f"after {owner.__name__}.{name}")

    return wrapper


@pytest.mark.parametrize(
    ("owner", "step"),
    [(Layout, "stage"), (GroupStreams, "fence"), (Layout, "publish"), (GroupStreams, "ack")],
)
def test_crash_after_each_commit_step_exports_once(
    redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, owner: type, step: str
) -> None:
    """Killed right after staging, fencing, publishing or acking: the restart exports once."""
    client = fresh_db(redis_url)
    cfg = config(tmp_path / "out")
    ids = [add(client, 2, rec := record()) and rec.record_id for _ in range(10)]
    monkeypatch.setattr(owner, step, _crash_after(owner, step))
    # kill -9 runs no clean-up: leave staged files where they are.
    monkeypatch.setattr(Layout, "discard", lambda self, staged: None)
    with pytest.raises(Crash):
        Exporter(client, cfg, consumer=dead_consumer_name()).run(once=True)
    monkeypatch.undo()
    restarted = Exporter(client, cfg)
    assert restarted.run(once=True) == 0
    assert record_counts(cfg.output_dir) == dict.fromkeys(ids, 1)
    assert pending(client, cfg.group) == 0
    assert list((cfg.output_dir / ".tmp").iterdir()) == []
    assert run_cli("verify", str(cfg.output_dir)).returncode == 0


def test_sigterm_stops_cleanly(redis_url: str, tmp_path: Path) -> None:
    """Follow mode: SIGTERM flushes what it holds, leaves the group, exits 0."""
    client = fresh_db(redis_url)
    cfg = config(tmp_path / "out", max_batch_age=30, batch_size=1000)
    conf = write_config_file(tmp_path / "ocs.yaml", cfg)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        export_cmd("--config", str(conf), "--redis-url", export_db_url(redis_url)),
        env=env,
        cwd=REPO,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        ids = [add(client, 1, rec := record()) and rec.record_id for _ in range(5)]
        assert wait_for(lambda: pending(client, cfg.group) == 5)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert record_counts(cfg.output_dir) == dict.fromkeys(ids, 1)
    assert pending(client, cfg.group) == 0
    assert client.xinfo_consumers(records_stream(1), cfg.group) == []


def _get(port: int, path: str) -> tuple[int, str]:
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
    except OSError:
        return 0, ""


def test_health_and_metrics_report_a_failing_disk(redis_url: str, tmp_path: Path) -> None:
    """Unwritable dir: /health answers 503 naming the error; /metrics counts write errors."""
    from ocs.store.embedded import free_port

    client = fresh_db(redis_url)
    (tmp_path / "blocker").write_text("")
    port = free_port()
    cfg = config(tmp_path / "blocker" / "out", metrics_port=port)
    add(client, 0, record())
    conf = write_config_file(tmp_path / "ocs.yaml", cfg)
    with conf.open("a") as fh:
        fh.write("metrics: {health_details: true}\n")  # the error text is a detail
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    with open(tmp_path / "exporter.log", "w") as log:
        proc = subprocess.Popen(
            export_cmd("--config", str(conf), "--redis-url", export_db_url(redis_url)),
            env=env,
            cwd=REPO,
            stdout=log,
            stderr=log,
        )
    try:
        assert wait_for(lambda: _get(port, "/health")[0] == 503)
        status, body = _get(port, "/health")
        assert '"export"' in body
        assert "Not a directory" in body
        status, metrics = _get(port, "/metrics")
        assert status == 200
        errors = [
            line
            for line in metrics.splitlines()
            if line.startswith("ocs_export_write_errors_total ")
        ]
        assert errors and float(errors[0].split()[1]) >= 1
        assert "ocs_export_healthy 0.0" in metrics
        assert unacknowledged(client, cfg.group) == 1
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)


def test_unreachable_redis_is_one_line_and_exit_2(tmp_path: Path) -> None:
    """No Redis at the URL: `ocs export --once` says so in one line, exit 2, no traceback."""
    from ocs.store.embedded import free_port

    conf = write_config_file(tmp_path / "ocs.yaml", config(tmp_path / "out"))
    done = run_cli(
        "--config", str(conf), "--redis-url", f"redis://127.0.0.1:{free_port()}/0", "--once"
    )
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines()[-1].startswith("ocs: error: export: redis:")


def test_once_drains_past_a_full_reclaimed_buffer(redis_url: str, tmp_path: Path) -> None:
    """--once after a crash: a buffer filled by reclaimed entries does not end the drain early."""
    client = fresh_db(redis_url)
    cfg = config(tmp_path / "out", batch_size=5)
    ids = [add(client, 3, rec := record()) and rec.record_id for _ in range(25)]
    Exporter(client, cfg).start()
    client.xreadgroup(cfg.group, dead_consumer_name(), {records_stream(3): ">"}, count=5)
    assert Exporter(client, cfg).run(once=True) == 0
    assert record_counts(cfg.output_dir) == dict.fromkeys(ids, 1)
    assert unacknowledged(client, cfg.group) == 0


def test_once_without_a_running_store_says_so(tmp_path: Path) -> None:
    """No redis.url and no embedded server running: --once exits 2 naming the data dir."""
    conf = tmp_path / "ocs.yaml"
    conf.write_text(
        f"redis: {{data_dir: {tmp_path / 'redis'}}}\n"
        f"export: {{output_dir: {tmp_path / 'out'}, metrics_port: null}}\n"
    )
    done = run_cli("--config", str(conf), "--once")
    assert done.returncode == 2
    assert "no embedded Redis running" in done.stderr.strip().splitlines()[-1]
    assert not (tmp_path / "redis" / "redis.sock").exists()
