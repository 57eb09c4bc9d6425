"""`ocs serve` on the embedded Redis, with the CLI attached beside it; policy reloads.

The "Done when" of the charging-core issue: the server starts its own
Redis, answers /health, the CLI in another process reaches the same Redis
through the socket in the data directory, and SIGTERM stops it cleanly.
"""

from __future__ import annotations

import json
import shutil
import signal
import time
import urllib.error
import urllib.request
from pathlib import Path

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
