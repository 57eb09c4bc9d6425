"""A policy reload that loses plans accounts use is refused (issue 13 item 4).

Black box: ``ocs serve`` on its embedded Redis with a policy directory whose
plans live in their own plans.yaml, an account created by the CLI, a Gy
client over TCP. Moving plans.yaml away (or dropping a plan in use) and
sending SIGHUP keeps the old set in force, /health names the file and key,
and CCR-I is still answered 2001; dropping a plan nobody uses is applied.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import yaml

from ocs.store.embedded import free_port
from tests.integration.diameter.gy_client import GyClient, mscc, rsu
from tests.serve_harness import ROOT, cli, health, serving, wait_for_health, write_config

DATA = 10


def split_policies(tmp_path: Path) -> Path:
    """tests/policies as two files: everything but plans, and plans.yaml."""
    doc = yaml.safe_load((ROOT / "tests/policies/test.yaml").read_text())
    directory = tmp_path / "policies"
    directory.mkdir()
    plans = {"plans": doc.pop("plans")}
    (directory / "test.yaml").write_text(yaml.safe_dump(doc))
    (directory / "plans.yaml").write_text(yaml.safe_dump(plans))
    return directory


async def connect(port: int) -> GyClient:
    for _ in range(300):
        client = GyClient("127.0.0.1", port)
        try:
            await client.connect()
        except OSError:
            await asyncio.sleep(0.1)
            continue
        assert (await client.cer()).result_code == 2001
        return client
    raise AssertionError("ocs serve never listened on its Diameter port")


async def ccr_i(client: GyClient, msisdn: str) -> int:
    session = f"gw.test.example;{uuid.uuid4().hex}"
    cca = await client.call(client.ccr(session, 1, 0, msisdn, [mscc(DATA, rsu())]))
    return int(cca.result_code)


def policies_health(port: int) -> dict[str, Any]:
    component: dict[str, Any] = health(port)["components"]["policies"]
    return component


def reload_and_wait(server: subprocess.Popen[str], port: int) -> dict[str, Any]:
    """SIGHUP, then the policies' health once it shows this reload's outcome
    (each step's outcome differs from the one before: another error, or none)."""
    before = policies_health(port)
    server.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        now = policies_health(port)
        if (now["last_error"], now["reloads"]) != (before["last_error"], before["reloads"]):
            return now
        time.sleep(0.1)
    raise AssertionError("the reload was neither applied nor refused within 10 s")


async def test_reload_without_plans_or_dropping_a_used_plan_keeps_the_old_set(
    tmp_path: Path,
) -> None:
    """plans.yaml moved away / a used plan dropped + SIGHUP: old set kept, named on /health, 2001."""
    policies = split_policies(tmp_path)
    gy_port = free_port()
    cfg, port = write_config(
        tmp_path,
        policies,
        watch_interval=0,  # SIGHUP only
        extra=(
            f"diameter: {{listen: ['127.0.0.1'], port: {gy_port}, "
            f"data_dir: '{tmp_path / 'dia'}'}}\n"
            "node: {origin_host: ocs.reload.example, origin_realm: test.example}\n"
        ),
    )
    msisdn = "99" + str(uuid.uuid4().int)[:12]
    with serving(cfg) as server:
        version = wait_for_health(port)["components"]["policies"]["version"]
        created = cli(cfg, "account", "create", "-i", f"e164:{msisdn}", "--plan", "basic")
        assert created.returncode == 0, created.stderr
        client = await connect(gy_port)
        try:
            assert await ccr_i(client, msisdn) == 2001

            # 1. the whole plans file moved away
            plans_file = policies / "plans.yaml"
            kept = plans_file.read_text()
            plans_file.rename(tmp_path / "plans.yaml.away")
            refused = reload_and_wait(server, port)
            assert refused["version"] == version  # the old set is still in force
            assert "plans: no plan defined" in refused["last_error"]
            assert str(policies) in refused["last_error"]
            assert await ccr_i(client, msisdn) == 2001

            # 2. plans.yaml back, without the plan the account uses
            doc = yaml.safe_load(kept)
            del doc["plans"]["basic"]
            plans_file.write_text(yaml.safe_dump(doc))
            refused = reload_and_wait(server, port)
            assert refused["version"] == version
            assert f"{plans_file}: plans.basic: missing from the new set" in refused["last_error"]
            assert await ccr_i(client, msisdn) == 2001

            # 3. dropping a plan no account uses is applied
            doc = yaml.safe_load(kept)
            del doc["plans"]["free"]
            plans_file.write_text(yaml.safe_dump(doc))
            applied = reload_and_wait(server, port)
            assert applied["last_error"] is None and applied["version"] != version
            assert await ccr_i(client, msisdn) == 2001
        finally:
            await client.close()
