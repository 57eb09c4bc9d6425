"""tshark on loopback: capture a Diameter test session and judge the bytes (standards §4).

Fails on any malformed packet, any expert warning or error, any Diameter request
without an answer, and any TCP payload on the port not decoded as Diameter.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
from collections.abc import AsyncIterator
from pathlib import Path
from typing import NoReturn

import pytest


def unavailable(message: str) -> NoReturn:
    """A missing third-party peer: fail on CI (CI=true), skip saying why elsewhere."""
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(message)
    pytest.skip(message)


def require_tool(name: str, package: str) -> str:
    """The tool's path, or :func:`unavailable`."""
    path = shutil.which(name)
    if path is None:
        unavailable(f"{name} not installed (Debian package {package}; `make system-deps`)")
    return path


@contextlib.asynccontextmanager
async def capture(port: int, path: Path) -> AsyncIterator[Path]:
    tshark = require_tool("tshark", "tshark")
    proc = await asyncio.create_subprocess_exec(
        tshark,
        "-i",
        "lo",
        "-f",
        f"tcp port {port}",
        "-w",
        str(path),
        "-q",
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stderr is not None
    await asyncio.wait_for(proc.stderr.readuntil(b"Capturing on"), 15)
    await _wait_until_capturing(port, path)
    try:
        yield path
    finally:
        await asyncio.sleep(0.5)  # let the last segments reach the capture
        proc.send_signal(signal.SIGINT)
        await asyncio.wait_for(proc.wait(), 15)


async def _wait_until_capturing(port: int, path: Path) -> None:
    """Probe with bare TCP connects (no Diameter bytes) until one shows up in the file."""
    for _ in range(50):
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()
        await asyncio.sleep(0.2)
        if await asyncio.to_thread(path.exists):
            proc = await asyncio.create_subprocess_exec(
                "tshark",
                "-r",
                str(path),
                "-Y",
                f"tcp.flags.syn == 1 && tcp.dstport == {port}",
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.DEVNULL,
            )
            out, _ = await proc.communicate()
            if out.strip():
                return
    raise AssertionError("tshark never saw the probe connection")


async def tshark_lines(path: Path, port: int, *args: str) -> list[str]:
    proc = await asyncio.create_subprocess_exec(
        "tshark",
        "-2",
        "-r",
        str(path),
        "-d",
        f"tcp.port=={port},diameter",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    return [line for line in out.decode().splitlines() if line.strip()]


async def check_wire(path: Path, port: int, min_messages: int) -> list[str]:
    """standards §4 CI gate. Returns one summary line per Diameter message."""
    bad = await tshark_lines(path, port, "-Y", "_ws.malformed || _ws.expert.severity >= warning")
    assert bad == [], "malformed or expert warnings:\n" + "\n".join(bad)
    unanswered = await tshark_lines(
        path, port, "-Y", "diameter.flags.request == 1 && !diameter.answer_in"
    )
    assert unanswered == [], "requests without an answer:\n" + "\n".join(unanswered)
    undecoded = await tshark_lines(path, port, "-Y", "tcp.len > 0 && !diameter")
    assert undecoded == [], "TCP payload not decoded as Diameter:\n" + "\n".join(undecoded)
    msgs = await tshark_lines(
        path,
        port,
        "-Y",
        "diameter",
        "-T",
        "fields",
        "-e",
        "diameter.cmd.code",
        "-e",
        "diameter.flags.request",
        "-e",
        "diameter.Result-Code",
    )
    assert len(msgs) >= min_messages, msgs
    return msgs
