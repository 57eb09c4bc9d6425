"""A real `ocs serve` with its Gy listener, for the Diameter fault tests: start it on free
ports with the embedded Redis, make accounts and read them back through the `ocs` CLI (the
server's own Redis, no access of ours), connect gateways (tests/integration/diameter's
GyClient), read the server process's RSS and metrics."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import urllib.request
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ocs.store.embedded import free_port
from tests.integration.diameter.gy_client import GyClient
from tests.serve_harness import cli, health, serving, wait_for_health, write_config

ORIGIN_HOST = "ocs.faults.example"
REALM = "test.example"  # GyClient's Destination-Realm


@dataclass
class Node:
    """One running `ocs serve`: its process, configuration and ports."""

    proc: subprocess.Popen[str]
    config: Path
    port: int  # Diameter
    metrics_port: int

    def rss_mib(self) -> float:
        """Resident memory of the server process (VmRSS), MiB."""
        status = Path(f"/proc/{self.proc.pid}/status").read_text()
        kib = int(re.search(r"^VmRSS:\s+(\d+) kB", status, re.M).group(1))  # type: ignore[union-attr]
        return kib / 1024

    def metrics(self) -> list[str]:
        """The lines of /metrics."""
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.read().decode().splitlines()  # type: ignore[no-any-return]

    def metric(self, name: str, labels: str = "") -> float:
        """A sample of /metrics (0 when absent), e.g. ``metric("ocs_diameter_answers_total",
        'command="credit_control",result_code="2001"')``."""
        total = 0.0
        for line in self.metrics():
            if line.startswith(name) and not line.startswith("#"):
                head, _, value = line.rpartition(" ")
                if head == name or (labels and head == f"{name}{{{labels}}}"):
                    total += float(value)
        return total

    async def client(self, origin_host: str = "gw.faults.example", cer: bool = True) -> GyClient:
        client = GyClient("127.0.0.1", self.port, origin_host=origin_host)
        await client.connect()
        if cer:
            cea = await client.cer()
            assert cea.result_code == 2001, cea
        return client

    def account(self, money: int = 1_000_000_000) -> str:
        """A new account with ``money`` micro-units; returns its MSISDN (e164 identity)."""
        msisdn = "99" + str(uuid.uuid4().int)[:13]
        done = cli(
            self.config,
            "account",
            "create",
            "--identity",
            f"e164:{msisdn}",
            "--plan",
            "basic",
            "--money",
            f"{money / 1_000_000:.6f}",
        )
        assert done.returncode == 0, done.stderr
        return msisdn

    def balance(self, msisdn: str) -> tuple[int, int, int]:
        """(money left, money reserved, sessions open) of the account, read back from
        Redis by the `ocs` CLI."""
        done = cli(self.config, "account", "show", f"e164:{msisdn}", "--json")
        assert done.returncode == 0, done.stderr
        view = json.loads(done.stdout)
        main = [b for b in view["buckets"] if b["unit"] == "money"]
        money = sum(b["amount"] for b in main)
        return money, sum(b["reserved"] for b in main), len(view["sessions"])

    def health(self) -> dict[str, Any]:
        """The Diameter part of /health (connections, peers, in flight, duplicate cache)."""
        return health(self.metrics_port)["components"]["diameter"]  # type: ignore[no-any-return]


@asynccontextmanager
async def ocs_node(tmp_path: Path, diameter: str = "", workers: int = 1) -> AsyncIterator[Node]:
    """`ocs serve` on free ports; ``diameter`` adds keys to its diameter section
    (YAML flow mapping entries, e.g. ``"limits: {max_in_flight: 10}"``)."""
    port = free_port()
    extra = (
        f"node: {{origin_host: {ORIGIN_HOST}, origin_realm: {REALM}}}\n"
        f"workers: {workers}\n"
        f"diameter: {{listen: ['127.0.0.1'], port: {port}, one_connection_per_peer: false"
        f"{', ' + diameter if diameter else ''}}}\n"
    )
    cfg, metrics_port = write_config(tmp_path, extra=extra)
    with serving(cfg) as proc:
        await asyncio.to_thread(wait_for_health, metrics_port)
        node = Node(proc, cfg, port, metrics_port)
        await _until_listening(port)
        yield node
        assert proc.poll() is None, "ocs serve died during the test"


async def _until_listening(port: int) -> None:
    for _ in range(200):
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            await asyncio.sleep(0.05)
            continue
        writer.close()
        return
    raise AssertionError(f"no Diameter listener on port {port}")
