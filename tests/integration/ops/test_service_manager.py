"""systemd's Type=notify and PIDFile=: READY=1 once ready (from the main process only), a PID file.

A datagram socket stands in for systemd's NOTIFY_SOCKET; SO_PASSCRED tells
which process sent each message, as systemd's NotifyAccess=main checks.
"""

from __future__ import annotations

import os
import signal
import socket
import struct
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from ocs.store.embedded import free_port
from tests.serve_harness import ROOT

UCRED = struct.Struct("iII")  # pid, uid, gid


@pytest.fixture
def manager(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
    path = str(tmp_path / "notify.sock")
    sock.bind(path)
    sock.settimeout(60)
    yield sock, path
    sock.close()


def receive(sock: socket.socket) -> tuple[int, str]:
    """(sender pid, message) of the next notification."""
    data, ancillary, _, _ = sock.recvmsg(4096, socket.CMSG_SPACE(UCRED.size))
    pid = 0
    for level, kind, payload in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
            pid = UCRED.unpack(payload[: UCRED.size])[0]
    return pid, data.decode()


def ready(port: int) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return 0


@pytest.mark.parametrize("workers", [1, 2])
def test_ready_once_serving_stopping_on_term_and_a_pid_file(
    tmp_path: Path, manager: tuple[socket.socket, str], workers: int
) -> None:
    """READY=1 from the node's main pid when /readyz is 200; STOPPING=1; the PID file."""
    sock, path = manager
    metrics, diameter = free_port(), free_port()
    cfg = tmp_path / "ocs.yaml"
    cfg.write_text(
        f"redis: {{data_dir: '{tmp_path / 'redis'}'}}\n"
        f"policies: {{dir: '{ROOT / 'policies'}'}}\n"
        f"metrics: {{port: {metrics}}}\nlogging: {{format: json}}\n"
        f"diameter: {{listen: ['127.0.0.1'], port: {diameter}}}\n"
    )
    pid_file = tmp_path / "run" / "ocs.pid"
    node = subprocess.Popen(
        [sys.executable, "-m", "ocs", "--config", str(cfg), "serve",
         "--workers", str(workers), "--pid-file", str(pid_file)],
        cwd=ROOT, env={**os.environ, "NOTIFY_SOCKET": path},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        sender, message = receive(sock)
        assert sender == node.pid, "only the main process may notify (NotifyAccess=main)"
        assert message.splitlines()[0] == "READY=1"
        assert ready(metrics) == 200  # ready means ready
        assert pid_file.read_text().strip() == str(node.pid)
        node.send_signal(signal.SIGTERM)
        sender, message = receive(sock)
        assert (sender, message) == (node.pid, "STOPPING=1")
        assert node.wait(timeout=60) == 0
    finally:
        if node.poll() is None:
            node.kill()
            node.wait()
    assert not pid_file.exists()
    sock.settimeout(0.5)
    with pytest.raises(TimeoutError):
        print("unexpected:", receive(sock))  # nothing from the workers


def test_without_notify_socket_nothing_is_sent() -> None:
    """No NOTIFY_SOCKET (a terminal, another supervisor): notify() is a no-op."""
    from ocs.service_manager import notify

    env_before = os.environ.pop("NOTIFY_SOCKET", None)
    try:
        assert notify("READY=1") is False
    finally:
        if env_before is not None:
            os.environ["NOTIFY_SOCKET"] = env_before
