"""Telling a service manager how the process is doing: sd_notify and a PID file.

``sd_notify`` (systemd's ``Type=notify``): a datagram to the unix socket
named by ``NOTIFY_SOCKET`` (``@name``: the abstract namespace) carrying
``READY=1`` once the process serves, ``STOPPING=1`` when it begins to stop,
``STATUS=...`` lines for ``systemctl status``. Written here rather than taken
from a library: the protocol is one ``sendto`` (sd_notify(3)), the Python
packages for it are either unmaintained or need libsystemd to build, and
nothing happens without ``NOTIFY_SOCKET`` (any other supervisor, a terminal).

The PID file (``--pid-file``, for supervisors that want one: systemd's
``PIDFile=``, sysvinit, monit) holds the process's pid, written whole
(temporary file, then rename) once the node claimed its place, removed on a
clean exit if it still names this process.
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Iterator
from pathlib import Path

NOTIFY_SOCKET = "NOTIFY_SOCKET"


def notify(*states: str) -> bool:
    """Send ``states`` (``READY=1``...) to the service manager; False when there is none."""
    address = os.environ.get(NOTIFY_SOCKET)
    if not address:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(address)
            sock.sendall("\n".join(states).encode())
    except OSError:
        return False  # a manager that went away must not stop the server
    return True


@contextlib.contextmanager
def pid_file(path: Path | None) -> Iterator[None]:
    """Hold ``path`` naming this process while the block runs (nothing when None)."""
    if path is None:
        yield
        return
    pid = os.getpid()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{pid}")
    tmp.write_text(f"{pid}\n")
    tmp.replace(path)
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            if path.read_text().strip() == str(pid):
                path.unlink()
