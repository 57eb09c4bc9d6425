"""Interop with FreeRADIUS's radclient (Debian freeradius-utils), a RADIUS client nobody
here wrote, and a tshark check of the bytes on the wire (standards §3, §4, §5).

radclient sends Start, Interims with Gigawords and Stop; its own dictionaries decode
our Access-Accept; a wrong secret ends in its timeout. tshark, capturing on loopback,
validates every Response Authenticator with the shared secret and must find nothing
malformed. Missing tools fail the test on CI (CI=true) instead of skipping it.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from pyrad.packet import AcctPacket, StatusServer

from ocs.accounts import Accounts
from ocs.charging.api import ChargingService
from protocols.radius.codec import PortKind
from protocols.radius.dictionary import load_dictionary
from protocols.radius.frontend import RadiusFrontend
from protocols.radius.settings import RadiusConfig
from tests.core_fixtures import NewAccount
from tests.integration.radius.radius_harness import Nas

pytestmark = pytest.mark.interop

SECRET = "interop-secret"


def require_tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        message = f"{name} not installed (Debian: freeradius-utils / tshark; `make system-deps`)"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(message)
        pytest.skip(message)
    return path


@pytest_asyncio.fixture(loop_scope="session")
async def frontend(charging: ChargingService) -> AsyncIterator[RadiusFrontend]:
    cfg = RadiusConfig.model_validate(
        {
            "listen": ["127.0.0.1"],
            "auth_port": 0,
            "acct_port": 0,
            "clients": [
                {
                    "name": "radclient",
                    "address": "127.0.0.1",
                    "secret": SECRET,
                    "flavour": "mikrotik",
                }
            ],
            "service": {"rating_group": 10},
            "identity_type": "e164",
            "acct_interim_interval": 60,
            "dae": {"enabled": False},
        }
    )
    fe = RadiusFrontend(cfg)
    await fe.start(charging)
    yield fe
    await fe.stop(1.0)


async def radclient(
    port: int, kind: str, requests: list[dict[str, str]], tmp: Path, secret: str = SECRET
) -> tuple[int, str]:
    """Run radclient on a request file (blank-line separated); (exit code, output)."""
    binary = require_tool("radclient")
    text = "\n\n".join(",\n".join(f"{k} = {v}" for k, v in r.items()) for r in requests)
    path = tmp / f"req-{uuid.uuid4().hex}.txt"
    path.write_text(text + "\n")
    proc = await asyncio.create_subprocess_exec(
        binary,
        "-x",
        "-r",
        "2",
        "-t",
        "1",
        "-f",
        str(path),
        f"127.0.0.1:{port}",
        kind,
        secret,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    return proc.returncode or 0, out.decode(errors="replace")


async def balance(accounts: Accounts, account_id: str) -> tuple[int, int]:
    view = await accounts.show(account_id)
    main = [b for b in view["buckets"] if b["unit"] == "money"]
    return sum(b["amount"] for b in main), sum(b["reserved"] for b in main)


def acct_lines(user: str, sid: str, status: str, **extra: str) -> dict[str, str]:
    return {
        "Acct-Status-Type": status,
        "Acct-Session-Id": f'"{sid}"',
        "User-Name": f'"{user}"',
        "NAS-IP-Address": "127.0.0.1",
        **{k.replace("_", "-"): v for k, v in extra.items()},
    }


async def session_run(
    frontend: RadiusFrontend, accounts: Accounts, new_account: NewAccount, tmp: Path
) -> tuple[str, str]:
    """One prepaid session through radclient: Access-Request, Start, Interims, Stop."""
    a = await new_account(money=100_000_000)
    user, sid = a.identity.value, "rc-" + uuid.uuid4().hex[:10]
    auth_port = frontend.addresses(PortKind.AUTH)[0][1]
    acct_port = frontend.addresses(PortKind.ACCT)[0][1]
    code, auth_out = await radclient(
        auth_port,
        "auth",
        [
            {
                "User-Name": f'"{user}"',
                "NAS-IP-Address": "127.0.0.1",
                "Acct-Session-Id": f'"{sid}"',
                "Message-Authenticator": "0x00",
            }
        ],
        tmp,
    )
    assert code == 0, auth_out
    requests = [
        acct_lines(user, sid, "Start"),
        acct_lines(
            user,
            sid,
            "Interim-Update",
            Acct_Input_Octets="1000",
            Acct_Output_Octets="500",
            Acct_Session_Time="60",
        ),
        acct_lines(
            user,
            sid,
            "Interim-Update",
            Acct_Input_Octets="1000",
            Acct_Input_Gigawords="1",
            Acct_Output_Octets="500",
            Acct_Session_Time="120",
        ),
        acct_lines(
            user,
            sid,
            "Stop",
            Acct_Input_Octets="2000",
            Acct_Input_Gigawords="1",
            Acct_Output_Octets="500",
            Acct_Session_Time="130",
            Acct_Terminate_Cause="User-Request",
        ),
    ]
    code, acct_out = await radclient(acct_port, "acct", requests, tmp)
    assert code == 0, acct_out
    return a.account_id, auth_out + acct_out


async def test_radclient_session_with_gigawords_is_charged_exactly(
    frontend: RadiusFrontend, accounts: Accounts, new_account: NewAccount, tmp_path: Path
) -> None:
    """standards §3.3/§3.4/§3.6 with radclient: Accept decoded by FreeRADIUS's dictionaries;
    Start, Interims (Gigawords) and Stop answered and charged exactly once."""
    account_id, out = await session_run(frontend, accounts, new_account, tmp_path)
    assert "Access-Accept" in out
    assert "Mikrotik-Total-Limit = 10000" in out
    assert "Session-Timeout = 600" in out
    assert out.count("Received Accounting-Response") == 4
    total = 2**32 + 2000 + 500
    assert await balance(accounts, account_id) == (100_000_000 - (-(-total // 1000)) * 10, 0)


async def test_radclient_with_wrong_secret_gets_no_answer(
    frontend: RadiusFrontend, new_account: NewAccount, tmp_path: Path
) -> None:
    """standards §3.2/§5: a wrong secret must end in radclient's timeout."""
    a = await new_account()
    port = frontend.addresses(PortKind.ACCT)[0][1]
    code, out = await radclient(
        port, "acct", [acct_lines(a.identity.value, "rc-bad", "Start")], tmp_path, secret="wrong"
    )
    assert code != 0
    assert "Accounting-Response" not in out
    assert "No reply" in out or "timed out" in out.lower() or "Timeout" in out, out


async def test_wire_capture_has_valid_authenticators_and_nothing_malformed(
    frontend: RadiusFrontend, accounts: Accounts, new_account: NewAccount, tmp_path: Path
) -> None:
    """standards §4: tshark validates our Response Authenticators; no malformed packet,
    no expert warning."""
    tshark = require_tool("tshark")
    ports = [frontend.addresses(k)[0][1] for k in (PortKind.AUTH, PortKind.ACCT)]
    cap = tmp_path / "radius.pcap"
    capture_filter = " or ".join(f"udp port {p}" for p in ports)
    dumper = await asyncio.create_subprocess_exec(
        tshark,
        "-i",
        "lo",
        "-f",
        capture_filter,
        "-w",
        str(cap),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        await wait_capturing(dumper, cap, ports[1])
        await session_run(frontend, accounts, new_account, tmp_path)
        await asyncio.sleep(0.5)  # let the last answers reach the capture
    finally:
        dumper.send_signal(signal.SIGINT)
        await asyncio.wait_for(dumper.wait(), 20)
    decode = [f"-d udp.port=={p},radius" for p in ports]
    common = [
        tshark,
        "-n",
        "-r",
        str(cap),
        *" ".join(decode).split(),
        "-o",
        f"radius.shared_secret:{SECRET}",
        "-o",
        "radius.validate_authenticator:TRUE",
    ]
    bad = await run(
        *common,
        "-Y",
        "_ws.malformed || _ws.expert.severity >= warning "
        "|| radius.authenticator.invalid == 1 || radius.invalid_length",
    )
    assert bad.strip() == "", bad
    codes = (await run(*common, "-T", "fields", "-e", "radius.code")).split()
    valid = (
        await run(
            *common, "-Y", "radius.authenticator.valid == 1", "-T", "fields", "-e", "radius.code"
        )
    ).split()
    # The whole run is on the wire (1 Access-Request, 4 Accounting-Requests, besides the
    # Status-Server probes) and every answer's authenticator checks out.
    assert codes.count("1") == 1, codes
    assert codes.count("4") == 4, codes
    assert valid.count("2") == 1, valid
    assert valid.count("5") == 4, valid
    assert "12" in codes, codes  # the Status-Server probes that proved the capture live


async def wait_capturing(proc: asyncio.subprocess.Process, cap: Path, port: int) -> None:
    """Wait until tshark listens ("Capturing on" on stderr), then until a Status-Server
    probe (RFC 5997) can be read back from the capture file: it is then really running.
    (Its answers are not counted: tshark 4.0 validates only answers to Access- and
    Accounting-Requests.)"""
    assert proc.stderr is not None
    seen = b""
    async with asyncio.timeout(20):
        while b"Capturing on" not in seen:
            line = await proc.stderr.readline()
            if not line:
                raise AssertionError(f"tshark did not start capturing: {seen.decode()}")
            seen += line
        nas = await Nas.open()
        try:
            while not await _probe_captured(require_tool("tshark"), cap, port):
                probe = AcctPacket(
                    code=StatusServer, secret=SECRET.encode(), dict=load_dictionary()
                )
                await nas.send(bytes(probe.RequestPacket()), ("127.0.0.1", port), within=0.3)
        finally:
            nas.close()


async def _probe_captured(tshark: str, cap: Path, port: int) -> bool:
    """Has the capture file recorded a Status-Server yet? (It may be mid-write.)"""
    proc = await asyncio.create_subprocess_exec(
        tshark,
        "-n",
        "-r",
        str(cap),
        "-d",
        f"udp.port=={port},radius",
        "-Y",
        "radius.code == 12",
        "-T",
        "fields",
        "-e",
        "frame.number",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    out, _ = await proc.communicate()
    return bool(out.strip())


async def run(*argv: str) -> str:
    """stdout of a command that must succeed (stderr only in the failure message)."""
    proc = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode(errors="replace")
    return out.decode(errors="replace")
