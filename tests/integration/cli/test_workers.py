"""`ocs serve --workers 2`: workers share the ports and the node's Origin-State-Id; the
supervisor restarts a crashed worker and the embedded Redis it started; workers do not
outlive a killed supervisor (issue 13, items 6, 7, 8)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import redis

from ocs.store.embedded import free_port
from tests.integration.diameter.gy_client import GyClient, mscc, rsu
from tests.serve_harness import cli, health, serving, wait_for_health, write_config


def _workers(pid: int) -> list[int]:
    """Child processes of ``pid`` that are ocs workers."""
    out = subprocess.run(
        ["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True, check=False
    )
    found = []
    for child in (int(p) for p in out.stdout.split()):
        try:
            if b"--worker-index" in Path(f"/proc/{child}/cmdline").read_bytes():
                found.append(child)
        except OSError:
            continue  # exited meanwhile
    return found


def _listeners(port: int) -> int:
    ss = subprocess.run(
        ["ss", "-Htln", f"sport = :{port}"], capture_output=True, text=True, check=False
    )
    return ss.stdout.count("LISTEN")


def _until(condition: Callable[[], bool], within: float) -> bool:
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    return True


def _running(pid: int) -> bool:
    """Alive and not a zombie (a zombie has exited; only its parent has not reaped it)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return False


def _config(tmp_path: Path, dia: int, extra: str = "") -> tuple[Path, int]:
    acct, auth = free_port(), free_port()
    return write_config(
        tmp_path,
        extra=(
            "workers: 2\n"
            "node: {origin_host: ocs.workers.example, origin_realm: test.example}\n"
            f"diameter: {{listen: ['127.0.0.1'], port: {dia}, data_dir: '{tmp_path / 'dia'}'}}\n"
            f"radius: {{listen: ['127.0.0.1'], acct_port: {acct}, auth_port: {auth}, clients: "
            "[{name: t, address: 127.0.0.1/32, secret: s}]}\n" + extra
        ),
    )


def _two_workers_up(sup: subprocess.Popen[str], dia: int) -> list[int]:
    assert _until(lambda: len(_workers(sup.pid)) == 2 and _listeners(dia) == 2, 60)
    return _workers(sup.pid)


async def _state_ids(port: int, count: int) -> tuple[list[int], list[GyClient]]:
    """Origin-State-Id of the CEA on ``count`` connections (left open, one peer each)."""
    ids, clients = [], []
    for i in range(count):
        client = GyClient("127.0.0.1", port, origin_host=f"gw{i}-{uuid.uuid4().hex[:6]}.test")
        await client.connect()
        cea = await client.cer()
        assert cea.result_code == 2001
        ids.append(int(cea.origin_state_id))
        clients.append(client)
    return ids, clients


async def _close(clients: list[GyClient]) -> None:
    for client in clients:
        await client.close()


def test_two_workers_share_ports_and_a_crashed_worker_is_restarted(tmp_path: Path) -> None:
    """Both workers bind the Diameter port (SO_REUSEPORT); kill -9 one -> restarted; SIGTERM -> 0."""
    dia = free_port()
    cfg, metrics = _config(tmp_path, dia)
    with serving(cfg) as sup:
        workers = _two_workers_up(sup, dia)
        assert health(metrics)["ok"]
        os.kill(workers[1], signal.SIGKILL)
        _until(lambda: len(_workers(sup.pid)) == 2 and workers[1] not in _workers(sup.pid), 20)
        replaced = _workers(sup.pid)
        assert len(replaced) == 2 and workers[1] not in replaced
        sup.send_signal(signal.SIGTERM)
        assert sup.wait(timeout=40) == 0


def test_supervisor_restarts_the_embedded_redis_it_started(tmp_path: Path) -> None:
    """--workers 2, kill -9 of the embedded Redis: reaped (no zombie), restarted on the same
    data, and a CCR through the workers is answered 2001 again (issue 13 item 6: before, the
    supervisor looked at Redis only when a worker died, so it stayed dead: 3004 for ever)."""
    dia = free_port()
    cfg, _ = _config(tmp_path, dia)
    pid_file = tmp_path / "redis" / "redis.pid"
    with serving(cfg) as sup:
        _two_workers_up(sup, dia)
        created = cli(cfg, "account", "create", "-i", "e164:3300000077", "--plan", "basic")
        assert created.returncode == 0, created.stderr
        assert cli(cfg, "account", "topup", "e164:3300000077", "5").returncode == 0
        old = int(pid_file.read_text())
        os.kill(old, signal.SIGKILL)

        def restarted() -> bool:
            try:
                new = int(pid_file.read_text())
            except (OSError, ValueError):
                return False
            return new != old and _running(new)

        assert _until(restarted, 30), "the supervisor never restarted the embedded Redis"
        assert not _zombie(old), "the killed Redis was left a zombie"
        sock = tmp_path / "redis" / "redis.sock"
        with contextlib.closing(redis.Redis(unix_socket_path=str(sock))) as store:
            assert store.ping()
            assert store.dbsize() > 0  # the same data, reloaded from the AOF

        async def charge() -> int:
            client = GyClient("127.0.0.1", dia, origin_host="gw-restart.test")
            await client.connect()
            try:
                assert (await client.cer()).result_code == 2001
                ccr = client.ccr(f"gw;w;{uuid.uuid4().hex}", 1, 0, "3300000077", [mscc(10, rsu())])
                return int((await client.call(ccr)).result_code)
            finally:
                await client.close()

        assert asyncio.run(charge()) == 2001


def test_workers_exit_when_the_supervisor_is_killed(tmp_path: Path) -> None:
    """kill -9 of the supervisor: both workers and its Redis exit (PR_SET_PDEATHSIG), and a
    new node starts on the same configuration (issue 13 item 7: the workers ran on,
    unsupervised, holding the ports, and a new `ocs serve` ran beside them)."""
    dia = free_port()
    cfg, metrics = _config(tmp_path, dia)
    with serving(cfg) as sup:
        workers = _two_workers_up(sup, dia)
        store = int((tmp_path / "redis" / "redis.pid").read_text())
        os.kill(sup.pid, signal.SIGKILL)
        sup.wait(timeout=10)
        left = lambda: [p for p in [*workers, store] if _running(p)]  # noqa: E731
        try:
            assert _until(lambda: not left(), 20), f"running after the supervisor died: {left()}"
            assert _listeners(dia) == 0
        finally:
            for pid in left():  # never leave orphans behind a failing run
                with contextlib.suppress(OSError):
                    if str(tmp_path).encode() in Path(f"/proc/{pid}/cmdline").read_bytes():
                        os.kill(pid, signal.SIGKILL)
    with serving(cfg) as again:
        assert wait_for_health(metrics, within=60)["ok"]
        assert _until(lambda: len(_workers(again.pid)) == 2, 60)


async def _one_state_id(port: int, count: int, metrics: int) -> int:
    ids, clients = await _state_ids(port, count)
    try:
        worker0 = health(metrics)["components"]["worker 0"]  # the node's /health (ocs/node_ops)
        on_worker0 = worker0["components"]["diameter"]["connections"]
        assert on_worker0 < count, "every connection reached worker 0: nothing compared"
        assert len(set(ids)) == 1, f"workers advertise different Origin-State-Ids: {set(ids)}"
        return ids[0]
    finally:
        await _close(clients)


def test_workers_advertise_one_origin_state_id_per_node_start(tmp_path: Path) -> None:
    """Every worker's CEA carries the same Origin-State-Id, a restarted worker too; a node
    restart raises it (RFC 6733 §8.16; issue 13 item 8: workers showed ...878 and ...879)."""
    dia = free_port()
    cfg, metrics = _config(tmp_path, dia)
    with serving(cfg) as sup:
        workers = _two_workers_up(sup, dia)
        wait_for_health(metrics, within=60)
        first = asyncio.run(_one_state_id(dia, 16, metrics))
        os.kill(workers[1], signal.SIGKILL)
        assert _until(lambda: len(_workers(sup.pid)) == 2 and _listeners(dia) == 2, 30)
        assert asyncio.run(_one_state_id(dia, 16, metrics)) == first  # same node start
        sup.send_signal(signal.SIGTERM)
        assert sup.wait(timeout=40) == 0
    with serving(cfg) as sup:
        _two_workers_up(sup, dia)
        wait_for_health(metrics, within=60)
        assert asyncio.run(_one_state_id(dia, 16, metrics)) > first  # a new node start
