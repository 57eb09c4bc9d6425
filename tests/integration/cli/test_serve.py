"""`ocs serve` on the embedded Redis, with the CLI attached beside it; policy reloads.

The "Done when" of the charging-core issue: the server starts its own
Redis, answers /health, the CLI in another process reaches the same Redis
through the socket in the data directory, and SIGTERM stops it cleanly.
"""

from __future__ import annotations

import json
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from ocs.store.embedded import free_port
from tests.serve_harness import (
    ROOT,
    cli,
    health,
    serving,
    wait_for_health,
    write_config,
)


def test_serve_embedded_then_cli_beside_it(tmp_path: Path) -> None:
    """serve starts embedded Redis + /health; CLI attaches; SIGTERM exits 0 and stops Redis."""
    cfg, port = write_config(tmp_path, extra="supervision: {sweep_interval: 0.2}\n")
    with serving(cfg, capture=True) as server:
        report = wait_for_health(port)
        assert report["ok"] and report["components"]["redis"]["ok"] is True
        assert report["components"]["redis"]["url"].startswith("unix://")  # the embedded one
        assert (tmp_path / "redis" / "redis.sock").exists()
        created = cli(
            cfg, "account", "create", "-i", "e164:3300000042", "--plan", "basic", "--money", "1"
        )
        assert created.returncode == 0, created.stderr
        assert cli(cfg, "account", "topup", "e164:3300000042", "2").returncode == 0
        view = json.loads(cli(cfg, "account", "show", "e164:3300000042", "--json").stdout)
        assert view["buckets"][0]["amount"] == 3_000_000
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as resp:
            assert b"ocs_build_info" in resp.read()
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=30) == 0
        _, err = server.communicate(timeout=10)
    assert not (tmp_path / "redis" / "redis.sock").exists()  # embedded Redis shut down
    assert "ocs_stopped" in err


def _status(port: int, path: str) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def _copy_policies(tmp_path: Path) -> Path:
    policies = tmp_path / "policies"
    shutil.copytree(ROOT / "tests/policies", policies)
    return policies


def test_sighup_with_broken_policy_keeps_the_old_set(tmp_path: Path) -> None:
    """SIGHUP reload: a broken file is refused (named on /health), a fixed one applied."""
    policies = _copy_policies(tmp_path)
    cfg, port = write_config(tmp_path, policies, watch_interval=0)  # SIGHUP only
    with serving(cfg) as server:
        version = wait_for_health(port)["components"]["policies"]["version"]
        text = (policies / "test.yaml").read_text()
        (policies / "test.yaml").write_text(text.replace('tax_percent: "20"', "tax_percent: 20.5"))
        server.send_signal(signal.SIGHUP)
        time.sleep(1.0)
        broken = health(port)
        # A warning, not a failure: the old set serves (a probe must not restart the node).
        assert broken["ok"] is True and broken["status"] == "warning"
        assert "still serves" in broken["components"]["policies"]["warning"]
        assert broken["components"]["policies"]["version"] == version  # old set still in force
        assert (
            "test.yaml: tariffs.basic.tax_percent" in broken["components"]["policies"]["last_error"]
        )
        assert _status(port, "/livez") == 200 and _status(port, "/readyz") == 200
        (policies / "test.yaml").write_text(
            text.replace('tax_percent: "20"', 'tax_percent: "19.6"')
        )
        server.send_signal(signal.SIGHUP)
        time.sleep(1.0)
        fixed = health(port)
        assert fixed["ok"] is True and fixed["components"]["policies"]["version"] != version
        assert fixed["status"] == "ok" and fixed["components"]["policies"]["warning"] is None


def test_policy_file_change_is_picked_up_without_signal(tmp_path: Path) -> None:
    """Editing a policy file reloads it (file watch), and the new version shows on /health."""
    policies = _copy_policies(tmp_path)
    cfg, port = write_config(tmp_path, policies, watch_interval=0.2)
    with serving(cfg):
        version = wait_for_health(port)["components"]["policies"]["version"]
        text = (policies / "test.yaml").read_text()
        (policies / "test.yaml").write_text(text.replace("price: 500}", "price: 450}"))
        deadline = time.monotonic() + 10
        current = version
        while current == version and time.monotonic() < deadline:
            time.sleep(0.2)
            current = health(port)["components"]["policies"]["version"]
        assert current != version


# ---- a node that cannot start: one line, exit 2, at once (issue 13, item 9) ----


def _start_refused(cfg: Path) -> tuple[str, float]:
    """Run `ocs serve` expecting a refusal: (its stderr, seconds it took)."""
    began = time.monotonic()
    try:
        done = subprocess.run(
            [sys.executable, "-m", "ocs", "--config", str(cfg), "serve"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise AssertionError("ocs serve neither started nor exited: it hung") from None
    took = time.monotonic() - began
    assert done.returncode == 2, (done.returncode, done.stderr[-2000:])
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr[-2000:]  # no traceback
    print(f"refused in {took:.2f} s: {done.stderr.strip()}")
    return done.stderr.strip(), took


def _ports_config(tmp_path: Path) -> tuple[Path, int, int, int]:
    dia, acct = free_port(), free_port()
    cfg, metrics = write_config(
        tmp_path,
        extra=(
            f"diameter: {{listen: ['127.0.0.1'], port: {dia}}}\n"
            f"radius: {{listen: ['127.0.0.1'], acct_port: {acct}, auth_port: null, clients: "
            "[{name: t, address: 127.0.0.1/32, secret: s}]}\n"
        ),
    )
    return cfg, metrics, dia, acct


def test_second_serve_on_the_same_configuration_is_refused(tmp_path: Path) -> None:
    """A second `ocs serve` beside a running one: exit 2 naming the port and the likely cause
    (before: it attached to the store and hung until killed, then showed a traceback)."""
    cfg, metrics, _, _ = _ports_config(tmp_path)
    with serving(cfg) as first:
        assert wait_for_health(metrics)["ok"]
        message, _ = _start_refused(cfg)
        assert f"port {metrics}" in message and "another ocs serve" in message
        assert first.poll() is None and health(metrics)["ok"]  # the first one is untouched


def _holder(transport: str, port: int, reuse_port: bool) -> socket.socket:
    """A socket on 127.0.0.1:port as another program (or an orphaned worker) holds it."""
    kind = socket.SOCK_STREAM if transport == "tcp" else socket.SOCK_DGRAM
    sock = socket.socket(socket.AF_INET, kind)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(("127.0.0.1", port))
    if transport == "tcp":
        sock.listen()
    return sock


@pytest.mark.parametrize(
    ("which", "transport", "reuse_port", "named"),
    [
        ("metrics", "tcp", False, "metrics"),
        ("diameter", "tcp", True, "diameter"),  # as an orphaned worker holds it
        ("radius", "udp", True, "radius acct"),
    ],
)
def test_a_busy_listener_port_is_named(
    tmp_path: Path, which: str, transport: str, reuse_port: bool, named: str
) -> None:
    """A listener's port held elsewhere: exit 2, one line naming the listener and the port
    (before: a raw traceback and exit 1, or for SO_REUSEPORT ports a node started beside
    the holder, sharing its traffic)."""
    cfg, metrics, dia, acct = _ports_config(tmp_path)
    port = {"metrics": metrics, "diameter": dia, "radius": acct}[which]
    with _holder(transport, port, reuse_port):
        message, _ = _start_refused(cfg)
    assert message.startswith(f"ocs: error: {named}:") and f"port {port}" in message
    assert not (tmp_path / "redis" / "redis.sock").exists()  # refused before starting anything


def test_a_live_store_on_the_same_data_dir_is_refused(tmp_path: Path) -> None:
    """Another node's store on this data directory (other ports): exit 2 naming the
    directory (before: the second node attached to it and ran beside the first)."""
    cfg, metrics, _, _ = _ports_config(tmp_path)
    other = tmp_path / "other"
    other.mkdir()
    cfg2, _, _, _ = _ports_config(other)
    cfg2.write_text(cfg2.read_text().replace(str(other / "redis"), str(tmp_path / "redis")))
    with serving(cfg) as first:
        assert wait_for_health(metrics)["ok"]
        message, _ = _start_refused(cfg2)
        assert f"redis.data_dir {tmp_path / 'redis'}" in message
        assert f"pid {first.pid}" in message
