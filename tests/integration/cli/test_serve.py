"""`ocs serve` on the embedded Redis, with the CLI attached beside it.

The "Done when" of the charging-core issue: the server starts its own
Redis, answers /health, the CLI in another process reaches the same Redis
through the socket in the data directory, and SIGTERM stops it cleanly.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from ocs.store.embedded import free_port

ROOT = Path(__file__).parents[3]


def test_serve_embedded_then_cli_beside_it(tmp_path: Path) -> None:
    """serve starts embedded Redis + /health; CLI attaches; SIGTERM exits 0 and stops Redis."""
    port = free_port()
    cfg = tmp_path / "ocs.yaml"
    cfg.write_text(
        f"redis: {{data_dir: '{tmp_path / 'redis'}', appendfsync: always}}\n"
        f"policies: {{dir: '{ROOT / 'tests/policies'}'}}\n"
        f"metrics: {{port: {port}}}\n"
        "logging: {format: json}\n"
        "supervision: {sweep_interval: 0.2}\n"
    )
    server = subprocess.Popen(
        [sys.executable, "-m", "ocs", "--config", str(cfg), "serve"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        health = None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and health is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1) as resp:
                    health = json.loads(resp.read())
            except OSError:
                time.sleep(0.2)
        assert health is not None, "no /health within 30 s"
        assert health["ok"] and health["components"]["redis"]["ok"] is True
        assert health["components"]["redis"]["url"].startswith("unix://")  # the embedded one
        assert (tmp_path / "redis" / "redis.sock").exists()

        def cli(*args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [sys.executable, "-m", "ocs", "--config", str(cfg), *args],
                cwd=ROOT,
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )

        created = cli(
            "account", "create", "-i", "e164:3300000042", "--plan", "basic", "--money", "1"
        )
        assert created.returncode == 0, created.stderr
        assert cli("account", "topup", "e164:3300000042", "2").returncode == 0
        view = json.loads(cli("account", "show", "e164:3300000042", "--json").stdout)
        assert view["buckets"][0]["amount"] == 3_000_000
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as resp:
            assert b"ocs_build_info" in resp.read()
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=30) == 0
        assert not (tmp_path / "redis" / "redis.sock").exists()  # embedded Redis shut down
    finally:
        if server.poll() is None:
            server.kill()
        out, err = server.communicate(timeout=10)
    assert "ocs_stopped" in err or "ocs_stopped" in out


def _health(port: int) -> dict:  # type: ignore[type-arg]
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1) as resp:
            return json.loads(resp.read())  # type: ignore[no-any-return]
    except urllib.error.HTTPError as exc:  # 503 carries the report too
        return json.loads(exc.read())  # type: ignore[no-any-return]


def test_sighup_with_broken_policy_keeps_the_old_set(tmp_path: Path) -> None:
    """SIGHUP reload: a broken file is refused (named on /health), a fixed one applied."""
    import shutil

    policies = tmp_path / "policies"
    shutil.copytree(ROOT / "tests/policies", policies)
    port = free_port()
    cfg = tmp_path / "ocs.yaml"
    cfg.write_text(
        f"redis: {{data_dir: '{tmp_path / 'redis'}'}}\npolicies: {{dir: '{policies}'}}\n"
        f"metrics: {{port: {port}}}\nlogging: {{format: json}}\n"
    )
    server = subprocess.Popen(
        [sys.executable, "-m", "ocs", "--config", str(cfg), "serve"],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        first = None
        while first is None and time.monotonic() < deadline:
            try:
                first = _health(port)
            except OSError:
                time.sleep(0.2)
        assert first is not None
        version = first["components"]["policies"]["version"]
        text = (policies / "test.yaml").read_text()
        (policies / "test.yaml").write_text(text.replace('tax_percent: "20"', "tax_percent: 20.5"))
        server.send_signal(signal.SIGHUP)
        time.sleep(1.0)
        broken = _health(port)
        assert broken["ok"] is False
        assert broken["components"]["policies"]["version"] == version  # old set still in force
        assert (
            "test.yaml: tariffs.basic.tax_percent" in broken["components"]["policies"]["last_error"]
        )
        (policies / "test.yaml").write_text(
            text.replace('tax_percent: "20"', 'tax_percent: "19.6"')
        )
        server.send_signal(signal.SIGHUP)
        time.sleep(1.0)
        fixed = _health(port)
        assert fixed["ok"] is True and fixed["components"]["policies"]["version"] != version
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)


def test_policy_file_change_is_picked_up_without_signal(tmp_path: Path) -> None:
    """Editing a policy file reloads it (file watch), and the new version shows on /health."""
    import shutil

    policies = tmp_path / "policies"
    shutil.copytree(ROOT / "tests/policies", policies)
    port = free_port()
    cfg = tmp_path / "ocs.yaml"
    cfg.write_text(
        f"redis: {{data_dir: '{tmp_path / 'redis'}'}}\n"
        f"policies: {{dir: '{policies}', watch_interval: 0.2}}\n"
        f"metrics: {{port: {port}}}\nlogging: {{format: json}}\n"
    )
    server = subprocess.Popen(
        [sys.executable, "-m", "ocs", "--config", str(cfg), "serve"],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        first = None
        while first is None and time.monotonic() < deadline:
            try:
                first = _health(port)
            except OSError:
                time.sleep(0.2)
        assert first is not None
        version = first["components"]["policies"]["version"]
        text = (policies / "test.yaml").read_text()
        (policies / "test.yaml").write_text(text.replace("price: 500}", "price: 450}"))
        deadline = time.monotonic() + 10
        current = version
        while current == version and time.monotonic() < deadline:
            time.sleep(0.2)
            current = _health(port)["components"]["policies"]["version"]
        assert current != version
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
