"""`ocs serve` with the RADIUS front end loaded from its entry point, on uvloop, over
IPv4 and IPv6; a top-up made by the CLI in another process becomes a CoA-Request."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import socket
import sys
import urllib.request
from pathlib import Path
from typing import Any

import yaml
from pyrad import packet as rp

from ocs.store.embedded import free_port
from tests.core_fixtures import NewAccount
from tests.integration.radius.conftest import SECRET, acct_session
from tests.integration.radius.radius_harness import Nas, open_dae_listener
from tests.integration.radius.test_radius_accounting import acct

ROOT = Path(__file__).parents[3]


def free_udp_port(host: str) -> int:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


async def health(port: int) -> dict[str, Any] | None:
    def get() -> dict[str, Any] | None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1) as resp:
                return json.loads(resp.read())  # type: ignore[no-any-return]
        except OSError:
            return None

    return await asyncio.to_thread(get)


async def test_serve_answers_over_ipv4_and_ipv6_and_pushes_coa_after_cli_topup(
    redis_url: str, new_account: NewAccount, tmp_path: Path
) -> None:
    """The runtime loads the radius front end; Start over ::1, Interim over 127.0.0.1;
    `ocs account topup` in another process -> CoA-Request with the new session total."""
    dae = await open_dae_listener(SECRET, host="::1")
    metrics, acct_port = free_port(), free_udp_port("::1")
    config = {
        "redis": {"url": redis_url},
        "policies": {"dir": str(ROOT / "tests/policies")},
        "metrics": {"port": metrics, "health_details": True},  # the listener addresses
        "logging": {"format": "json", "level": "warning"},
        "radius": {
            "listen": ["127.0.0.1", "::1"],
            "auth_port": None,
            "acct_port": acct_port,
            "clients": [
                {
                    "name": "v4",
                    "address": "127.0.0.1",
                    "secret": SECRET.decode(),
                    "flavour": "mikrotik",
                    "dae_port": dae.port,
                    "dae_address": "::1",
                },
                {
                    "name": "v6",
                    "address": "::1",
                    "secret": SECRET.decode(),
                    "flavour": "mikrotik",
                    "dae_port": dae.port,
                },
            ],
            "service": {"rating_group": 10},
            "identity_type": "e164",
            "dae": {"initial_timeout": 0.5, "retries": 2},
        },
    }
    cfg = tmp_path / "ocs.yaml"
    cfg.write_text(yaml.safe_dump(config))
    server = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "ocs",
        "--config",
        str(cfg),
        "serve",
        cwd=ROOT,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    nas4, nas6 = await Nas.open("127.0.0.1"), await Nas.open("::1")
    try:
        state = None
        async with asyncio.timeout(30):
            while state is None or "radius" not in state["components"]:
                if server.returncode is not None:
                    assert server.stderr is not None
                    raise AssertionError((await server.stderr.read()).decode())
                await asyncio.sleep(0.2)
                state = await health(metrics)
        assert state["components"]["radius"]["acct"] == [
            f"127.0.0.1:{acct_port}",
            f"::1:{acct_port}",
        ]
        a = await new_account(money=100)
        user, sid = a.identity.value, acct_session()
        start = acct(user, sid, "Start", 1)
        answer = await nas6.send(bytes(start.RequestPacket()), ("::1", acct_port), within=5)
        assert answer is not None
        interim = acct(user, sid, "Interim-Update", 2, Acct_Input_Octets=5_000)
        answer = await nas4.send(bytes(interim.RequestPacket()), ("127.0.0.1", acct_port), within=5)
        assert answer is not None
        assert interim.VerifyReply(rp.Packet(packet=answer), answer)

        # The server subscribes to notifications asynchronously and pub/sub keeps
        # nothing for late subscribers: top up again until the NAS hears a CoA.
        for _ in range(4):
            cli = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "ocs",
                "--config",
                str(cfg),
                "account",
                "topup",
                f"e164:{user}",
                "1",
                cwd=ROOT,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
            _out, err = await asyncio.wait_for(cli.communicate(), 60)
            assert cli.returncode == 0, err.decode()
            with contextlib.suppress(TimeoutError):
                await dae.wait(1, within=5)
                break
        assert dae.received, "no CoA-Request after 4 top-ups"
        coa = dae.received[0]
        assert coa.code == rp.CoARequest
        assert coa["Acct-Session-Id"] == [sid]
        assert coa["Mikrotik-Total-Limit"] == [5_000 + 10_000]

        server.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(server.wait(), 30) == 0
    finally:
        nas4.close()
        nas6.close()
        dae.close()
        if server.returncode is None:
            server.kill()
            await server.wait()
