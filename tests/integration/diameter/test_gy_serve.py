"""`ocs serve` starts the Gy listener (entry point, uvloop) and stops it with DPR on SIGTERM."""

from __future__ import annotations

import asyncio
import signal
import sys
import uuid
from pathlib import Path

from ocs.store.embedded import free_port
from tests.core_fixtures import NewAccount
from tests.integration.diameter.gy_client import GyClient, mscc, rsu

ROOT = Path(__file__).parents[3]


async def _connect(port: int) -> GyClient:
    for _ in range(200):
        client = GyClient("127.0.0.1", port)
        try:
            await client.connect()
            return client
        except OSError:
            await asyncio.sleep(0.1)
    raise AssertionError("ocs serve never listened on the Diameter port")


async def test_ocs_serve_runs_gy_and_sends_dpr_on_sigterm(
    redis_url: str, new_account: NewAccount, tmp_path: Path
) -> None:
    """A CCR through `ocs serve`; SIGTERM -> DPR REBOOTING to the peer, then exit 0."""
    port = free_port()
    config = tmp_path / "ocs.yaml"
    config.write_text(
        f"redis: {{url: '{redis_url}'}}\n"
        f"policies: {{dir: '{ROOT / 'tests/policies'}'}}\n"
        "node: {origin_host: ocs.serve.example, origin_realm: test.example}\n"
        f"metrics: {{enabled: false}}\nlogging: {{format: json}}\n"
        f"diameter: {{listen: ['127.0.0.1'], port: {port}, data_dir: '{tmp_path / 'dia'}'}}\n"
    )
    log = tmp_path / "serve.log"
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "ocs",
        "--config",
        str(config),
        "serve",
        cwd=ROOT,
        stdout=log.open("wb"),
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        acct = await new_account()
        client = await _connect(port)
        cea = await client.cer()
        assert cea.result_code == 2001 and cea.origin_host == b"ocs.serve.example"
        a = await client.call(
            client.ccr(f"gw;serve;{uuid.uuid4().hex}", 1, 0, acct.identity.value, [mscc(10, rsu())])
        )
        assert a.result_code == 2001
        assert (tmp_path / "dia" / "diameter-origin-state-id").exists()
        proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(client.server_request_event.wait(), 10)
        dpr = client.server_requests[0]
        assert dpr.header.command_code == 282 and dpr.disconnect_cause == 0
        assert await asyncio.wait_for(proc.wait(), 30) == 0
        await client.close()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
