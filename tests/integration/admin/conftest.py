"""Fixtures for the admin API over real HTTP: ``ocs serve`` (a subprocess) on the suite's
Redis with the admin API on a free port, one token per role made by ``ocs admin token
add``, and an httpx client per role.

The server's sweeper and renewals run every hour (once at start): on the suite's shared
Redis they must not act on other tests' sessions and accounts meanwhile.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from ocs.store.embedded import free_port
from tests.serve_harness import ROOT, cli, serving, wait_for_health


@dataclass
class AdminServer:
    url: str
    config: Path
    tokens: dict[str, str]  # role -> token

    def client(self, role: str | None = "admin", **kwargs: object) -> httpx.AsyncClient:
        headers = {"Authorization": f"Bearer {self.tokens[role]}"} if role else {}
        return httpx.AsyncClient(base_url=self.url, headers=headers, timeout=30, **kwargs)  # type: ignore[arg-type]


def admin_config(tmp: Path, redis_url: str, port: int, metrics: int, extra: str = "") -> Path:
    cfg = tmp / "ocs.yaml"
    cfg.write_text(
        f"redis: {{url: '{redis_url}'}}\n"
        f"policies: {{dir: '{ROOT / 'tests/policies'}'}}\n"
        f"metrics: {{port: {metrics}}}\n"
        "logging: {format: json}\n"
        "supervision: {sweep_interval: 3600, renew_interval: 3600}\n"
        f"admin: {{enabled: true, port: {port}, tokens_file: '{tmp / 'tokens.yaml'}'"
        f"{extra}}}\n"
    )
    return cfg


def wait_for_port(port: int, within: float = 30.0) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            httpx.get(f"http://127.0.0.1:{port}/", timeout=1)
            return
        except httpx.TransportError:
            time.sleep(0.1)
    raise AssertionError(f"no admin API on port {port} within {within} s")


@pytest.fixture(scope="package")
def admin_api(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[AdminServer]:
    tmp = tmp_path_factory.mktemp("admin")
    port, metrics = free_port(), free_port()
    cfg = admin_config(tmp, redis_url, port, metrics)
    tokens = {}
    for role in ("read", "operator", "admin"):
        made = cli(cfg, "admin", "token", "add", f"t-{role}", "--role", role)
        assert made.returncode == 0, made.stderr
        tokens[role] = made.stdout.strip()
    with serving(cfg) as proc:
        wait_for_health(metrics)
        wait_for_port(port)
        assert proc.poll() is None
        yield AdminServer(f"http://127.0.0.1:{port}", cfg, tokens)
