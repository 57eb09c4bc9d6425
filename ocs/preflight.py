"""Before a node starts: is its place free?

A second ``ocs serve`` on the same configuration must not start: it would
attach to the first one's store and then fail on (or, with SO_REUSEPORT,
silently share) its ports. Orphaned workers of a killed node hold the same
ports. So, before anything starts, ``ocs serve`` checks:

- every socket it will bind (``/metrics``, the front ends' listeners from
  :func:`ocs.frontend.listeners_of`) with a probe bound *without*
  SO_REUSEPORT, which fails while any socket, even a SO_REUSEPORT one of
  ours, holds the address;
- with the embedded store, the node lock ``<data_dir>/serve.lock``: an
  ``flock`` held for the node's life by the node process and inherited by
  its workers (so orphans still hold it), naming the holder's pid.

A conflict is one line (:class:`NodeConflict`) naming the port or the
directory and the likely cause; ``ocs serve`` prints it and exits 2.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import socket
from collections.abc import Iterable
from pathlib import Path

from ocs.frontend import Listener
from ocs.processes import pid_alive

LOCK_NAME = "serve.lock"


class NodeConflict(RuntimeError):
    """Another process holds a port or the data directory this node needs."""


def check_listeners(listeners: Iterable[Listener]) -> None:
    """Raise NodeConflict for the first listener whose address is taken."""
    for listener in listeners:
        if listener.port == 0:
            continue  # an ephemeral port: nothing to collide with
        for family, address in _addresses(listener):
            if _in_use(listener.transport, family, address):
                raise NodeConflict(
                    f"{listener.name}: {listener.transport.upper()} port {listener.port} on "
                    f"{listener.host} is already in use (another ocs serve on this "
                    "configuration, its orphaned workers, or another program)"
                )


def _addresses(listener: Listener) -> list[tuple[int, tuple[object, ...]]]:
    kind = socket.SOCK_STREAM if listener.transport == "tcp" else socket.SOCK_DGRAM
    try:
        infos = socket.getaddrinfo(listener.host, listener.port, type=kind, flags=socket.AI_PASSIVE)
    except socket.gaierror:
        return []  # the listener's own bind will say what is wrong with the name
    return [(family, tuple(addr)) for family, _, _, _, addr in infos]


def _in_use(transport: str, family: int, address: tuple[object, ...]) -> bool:
    kind = socket.SOCK_STREAM if transport == "tcp" else socket.SOCK_DGRAM
    try:
        sock = socket.socket(family, kind)
    except OSError:
        return False  # no such family here (IPv6 off): the listener's bind reports it
    with sock:
        if transport == "tcp":
            # Connections in TIME_WAIT are no conflict (asyncio sets this too); a
            # listening socket still is, SO_REUSEPORT or not. Never for UDP: there
            # it would let two SO_REUSEADDR sockets share the port.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        try:
            sock.bind(address)
        except OSError as exc:
            return exc.errno == errno.EADDRINUSE
    return False


class NodeLock:
    """``<data_dir>/serve.lock``, held (flock) while this node runs; its fd is inherited
    by the workers, so the lock outlives a killed supervisor as long as they do."""

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / LOCK_NAME
        self.fd: int | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_pid(fd)
            os.close(fd)
            who = f"pid {holder}" if holder else "another process"
            if holder and not pid_alive(holder):
                who = f"workers of pid {holder}, which died"
            raise NodeConflict(
                f"redis.data_dir {self.path.parent}: another ocs serve ({who}) is running "
                "on this store (stop it first, or give this node its own data_dir)"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self.fd = fd

    def release(self) -> None:
        if self.fd is not None:
            with contextlib.suppress(OSError):
                os.close(self.fd)
            self.fd = None


def _read_pid(fd: int) -> int | None:
    try:
        return int(os.pread(fd, 32, 0).split()[0])
    except (OSError, ValueError, IndexError):
        return None
