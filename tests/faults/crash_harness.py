"""The crash and stall classes of the fault suite: a real node, Gy load, a ledger, an audit.

- :class:`Node` runs ``ocs serve`` (one process or ``--workers N``) as a subprocess on its
  own embedded Redis in a temporary directory, Diameter and /metrics on free loopback
  ports, and kills it, its workers or its Redis with SIGKILL (or stops Redis with SIGSTOP).
- :class:`GyLoad` is a gateway in a thread of its own: a few Diameter connections (one
  Origin-Host each, reconnecting while the node is down) and a fixed number of sessions in
  flight, each CCR-I, CCR-U x3 and CCR-T with random used octets. Its ledger holds, per
  session, the octets of the reports the node acknowledged (2001) and of all it sent; a
  session whose request is refused, times out or loses its connection sends nothing more.
  Requests are the load generator's templates (:mod:`loadtest.diameter_templates`).
- :func:`audit` closes what is left open (the core's own abandon script records it),
  reads the records of the run and compares, per session, what was acknowledged with what
  is present: *lost* when a record holds fewer octets than were acknowledged (or an
  acknowledged session has none), *doubled* when a session has two records or more octets
  than were ever sent; and the conservation check of the load tester (balances fell by
  exactly what the records say, nothing left reserved).

Each test prints the audit's counts; none asserts a speed.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import itertools
import os
import random
import re
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from loadtest import diameter_wire as wire
from loadtest import provision
from loadtest.conservation import close_leftover_sessions, compare, read_records
from loadtest.diameter_templates import (
    INITIAL,
    SESSION_DIGITS,
    TERMINATION,
    UPDATE,
    GyTemplates,
    cer,
    dwa,
    generic_answer,
)
from loadtest.spec import Service
from ocs.accounts import Accounts
from ocs.charging.api import ChargingService
from ocs.policy.loader import load_policies
from ocs.store.client import connect
from ocs.store.embedded import free_port

ROOT = Path(__file__).parents[2]
POLICIES = ROOT / "tests/policies"
SERVICE = (Service(10, "total_octets", 5_000),)  # "data" in tests/policies: 10k granted
UPDATES = 3
OK = 2001


# ---------------------------------------------------------------- the node ----


@dataclass
class Node:
    """``ocs serve`` on its embedded Redis, in ``directory``."""

    directory: Path
    workers: int = 1
    appendfsync: str = "always"
    # An external store (a cluster, Sentinel: tests/cluster) instead of the embedded one.
    external_store: str | None = None
    durability: str = "local"
    dia_port: int = field(default_factory=free_port)
    metrics_port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    starts: int = 0

    def __post_init__(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self.config = self.directory / "ocs.yaml"
        redis_dir = self.directory / "redis"
        store = (
            f"redis: {{url: '{self.external_store}', durability: {self.durability}}}\n"
            if self.external_store is not None
            else f"redis: {{data_dir: '{redis_dir}', appendfsync: {self.appendfsync}}}\n"
        )
        self.config.write_text(
            store + f"policies: {{dir: '{POLICIES}', watch_interval: 0}}\n"
            f"metrics: {{port: {self.metrics_port}}}\n"
            "logging: {format: json, level: info}\n"
            "node: {origin_host: ocs.faults.example, origin_realm: test.example}\n"
            f"workers: {self.workers}\n"
            f"diameter: {{listen: ['127.0.0.1'], port: {self.dia_port}, "
            f"data_dir: '{self.directory / 'diameter'}'}}\n"
        )
        self.store_url = self.external_store or f"unix://{redis_dir / 'redis.sock'}?db=0"
        self.log = self.directory / "serve.log"

    def start(self, within: float = 60.0) -> None:
        """Start and wait until Diameter accepts and /health answers."""
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "ocs", "--config", str(self.config), "serve"],
                cwd=ROOT,
                stdout=out,
                stderr=out,
                stdin=subprocess.DEVNULL,
            )
        self.starts += 1
        deadline = time.monotonic() + within
        while not (self._accepts() and self._healthy()):
            if self.proc.poll() is not None:
                raise AssertionError(f"ocs serve exited {self.proc.returncode}: {self.tail()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"ocs serve not ready within {within} s: {self.tail()}")
            time.sleep(0.1)
        if self.workers > 1:
            until(lambda: len(self.worker_pids()) == self.workers, 30)
            time.sleep(1.0)  # the other workers' listeners

    def _accepts(self) -> bool:
        with (
            contextlib.suppress(OSError),
            socket.create_connection(("127.0.0.1", self.dia_port), timeout=0.5),
        ):
            return True
        return False

    def _healthy(self) -> bool:
        url = f"http://127.0.0.1:{self.metrics_port}/health"
        try:
            with urllib.request.urlopen(url, timeout=1) as resp:
                return bool(resp.status == 200)
        except (OSError, urllib.error.HTTPError):
            return False

    def tail(self, lines: int = 15) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def events(self, name: str) -> int:
        """How many times the node logged ``name`` (JSON logs), all runs together."""
        return self.log.read_text(errors="replace").count(f'"event": "{name}"')

    @property
    def redis_pid(self) -> int:
        return int((self.directory / "redis" / "redis.pid").read_text().split()[0])

    def worker_pids(self) -> list[int]:
        assert self.proc is not None
        out = subprocess.run(
            ["ps", "-o", "pid=", "--ppid", str(self.proc.pid)],
            capture_output=True,
            text=True,
            check=False,
        )
        pids = []
        for pid in (int(p) for p in out.stdout.split()):
            with contextlib.suppress(OSError):
                if b"--worker-index" in Path(f"/proc/{pid}/cmdline").read_bytes():
                    pids.append(pid)
        return pids

    def busiest_worker(self) -> int:
        """The worker holding the most gateway connections (so a kill drops some)."""
        ss = subprocess.run(
            ["ss", "-Htnp", "state", "established", f"( sport = :{self.dia_port} )"],
            capture_output=True,
            text=True,
            check=False,
        )
        held = collections.Counter(
            int(m) for m in re.findall(r"pid=(\d+)", ss.stdout) if int(m) in self.worker_pids()
        )
        return held.most_common(1)[0][0] if held else self.worker_pids()[0]

    def kill_redis(self) -> None:
        """kill -9 of the embedded Redis; returns once a new one answers."""
        old = self.redis_pid
        os.kill(old, signal.SIGKILL)
        until(lambda: self._redis_replaced(old), 30)

    def _redis_replaced(self, old: int) -> bool:
        try:
            pid = self.redis_pid
        except (OSError, ValueError, IndexError):
            return False
        return pid != old and running(pid)

    def kill_node(self) -> None:
        """kill -9 of ``ocs serve`` (the supervisor with workers); waits until all is gone."""
        assert self.proc is not None
        children = [*self.worker_pids(), self.redis_pid]
        self.proc.kill()
        self.proc.wait()
        until(lambda: not any(running(p) for p in children), 30)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(40)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.external_store is not None:
            return
        with contextlib.suppress(OSError, ValueError, IndexError):
            pid = self.redis_pid
            if running(pid):
                os.kill(pid, signal.SIGCONT)  # a stall test's Redis must be able to stop

    def __enter__(self) -> Node:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()


def running(pid: int) -> bool:
    """Alive and not a zombie."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def until(condition: Any, within: float) -> None:
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not reached within {within} s")
        time.sleep(0.05)


# ------------------------------------------------------------- the gateway ----


@dataclass
class Entry:
    """One session in the ledger (octets)."""

    acked: int = 0
    sent: int = 0
    closed: bool = False  # CCR-T acknowledged
    stopped: str = ""  # why the gateway stopped sending (result code, timeout, lost)


@dataclass
class Counts:
    answers: collections.Counter[str] = field(default_factory=collections.Counter)
    per_tenth: dict[int, collections.Counter[str]] = field(default_factory=dict)  # 0.1 s bins
    connects: int = 0

    def note(self, tenth: int, outcome: str) -> None:
        self.answers[outcome] += 1
        self.per_tenth.setdefault(tenth, collections.Counter())[outcome] += 1

    def between(self, start: float, end: float) -> collections.Counter[str]:
        """Outcomes of the answers that came from ``start`` to ``end`` s (epoch relative)."""
        out: collections.Counter[str] = collections.Counter()
        for tenth, counts in self.per_tenth.items():
            if start <= tenth / 10 and (tenth + 1) / 10 <= end:
                out.update(counts)
        return out


class _Conn(asyncio.Protocol):
    """One gateway connection: CER, then requests matched to answers by Hop-by-Hop id."""

    def __init__(self, templates: GyTemplates, state_id: int) -> None:
        self.templates = templates
        self.state_id = state_id
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.pending: dict[int, asyncio.Future[int]] = {}
        self.cea: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self.hbh = itertools.count(random.getrandbits(24) << 4)
        self.e2e = itertools.count(((int(time.time()) & 0xFFF) << 20) | random.getrandbits(16))
        self.lost = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        request = bytearray(cer(self.templates.origin_host, self.templates.origin_realm, 1))
        struct.pack_into(">II", request, 12, next(self.hbh), next(self.e2e))
        transport.write(bytes(request))  # type: ignore[attr-defined]

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        try:
            frames = wire.split_frames(self.buffer)
        except wire.FrameError:
            if self.transport is not None:
                self.transport.abort()
            return
        for frame in frames:
            head = wire.header(frame)
            if head.is_request:
                host, realm = self.templates.origin_host, self.templates.origin_realm
                if head.command == wire.CMD_DW:
                    self._write(dwa(frame, host, realm, self.state_id))
                else:
                    self._write(generic_answer(frame, host, realm))
            elif head.command == wire.CMD_CE:
                if not self.cea.done():
                    self.cea.set_result(wire.result_code(frame))
            else:
                fut = self.pending.pop(head.hop_by_hop, None)
                if fut is not None and not fut.done():
                    fut.set_result(wire.result_code(frame))

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        if not self.cea.done():
            self.cea.set_exception(ConnectionError("lost before CEA"))
        for fut in self.pending.values():
            if not fut.done():
                fut.set_exception(ConnectionError("connection lost"))
        self.pending.clear()

    def _write(self, data: bytes | bytearray) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def request(self, data: bytearray) -> asyncio.Future[int]:
        hbh = next(self.hbh) & 0xFFFFFFFF
        struct.pack_into(">II", data, 12, hbh, next(self.e2e) & 0xFFFFFFFF)
        fut: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self.pending[hbh] = fut
        self._write(data)
        return fut


class GyLoad:
    """A gateway with ``connections`` peers and ``concurrency`` sessions in flight,
    started in a thread of its own (the test kills and waits on the main thread)."""

    def __init__(
        self,
        port: int,
        subscribers: list[str],
        concurrency: int = 32,
        connections: int = 4,
        timeout: float = 3.0,
        seed: int = 1,
    ) -> None:
        self.port = port
        self.subscribers = subscribers
        self.concurrency = concurrency
        self.timeout = timeout
        self.rng = random.Random(seed)
        run = f"{random.getrandbits(32):08x}"
        self.hosts = [f"gw{i}-{run}.faults.test" for i in range(connections)]
        self.templates = {
            host: GyTemplates(
                host, "faults.test", "test.example", f"{host};{run};", len(subscribers[0])
            )
            for host in self.hosts
        }
        self.conns: dict[str, _Conn | None] = dict.fromkeys(self.hosts)
        self.ledger: dict[str, Entry] = {}
        self.counts = Counts()
        self.epoch = time.monotonic()
        self._next = itertools.count(1)
        self._halt = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)

    # -- control, from the test's thread -----------------------------------------------

    def start(self) -> GyLoad:
        self._thread.start()
        return self

    def stop(self) -> None:
        """Start no more sessions, let those in flight end (bounded), close."""
        self._halt.set()
        self._thread.join(timeout=self.timeout * (UPDATES + 3) + 30)
        assert not self._thread.is_alive(), "the gateway did not stop"

    def answered(self) -> int:
        return self.counts.answers[str(OK)]

    # -- the gateway, in its own loop -------------------------------------------------

    async def _main(self) -> None:
        keepers = [asyncio.create_task(self._keep(host)) for host in self.hosts]
        sessions = [asyncio.create_task(self._sessions()) for _ in range(self.concurrency)]
        await asyncio.gather(*sessions)
        for task in keepers:
            task.cancel()
        await asyncio.gather(*keepers, return_exceptions=True)
        for conn in self.conns.values():
            if conn is not None and conn.transport is not None:
                conn.transport.close()

    async def _keep(self, host: str) -> None:
        """Keep one peer connected (CER -> 2001), reconnecting while the node is down."""
        loop = asyncio.get_running_loop()
        while True:
            conn = self.conns[host]
            if conn is None or conn.lost:
                self.conns[host] = None
                try:
                    _, fresh = await loop.create_connection(
                        lambda: _Conn(self.templates[host], 1), "127.0.0.1", self.port
                    )
                    code = await asyncio.wait_for(fresh.cea, self.timeout)
                except (OSError, TimeoutError, ConnectionError):
                    await asyncio.sleep(0.2)
                    continue
                if code == OK:
                    self.conns[host] = fresh
                    self.counts.connects += 1
                elif fresh.transport is not None:
                    fresh.transport.close()  # e.g. an old connection of this host not yet gone
            await asyncio.sleep(0.1)

    async def _sessions(self) -> None:
        while not self._halt.is_set():
            live = [(h, c) for h, c in self.conns.items() if c is not None and not c.lost]
            if not live:
                await asyncio.sleep(0.05)
                continue
            host, conn = self.rng.choice(live)
            await self._session(host, conn)

    async def _session(self, host: str, conn: _Conn) -> None:
        templates = self.templates[host]
        digits = f"{next(self._next):0{SESSION_DIGITS}d}".encode()
        sid = templates.session_prefix + digits.decode()
        entry = self.ledger[sid] = Entry()
        subscriber = self.rng.choice(self.subscribers).encode()
        for number in range(UPDATES + 2):
            kind = INITIAL if number == 0 else TERMINATION if number == UPDATES + 1 else UPDATE
            used = 0 if kind == INITIAL else self.rng.randint(1_000, 9_000)
            data = templates.get(kind, SERVICE).render(
                digits, number, 0, 0, subscriber, [used] if used else []
            )
            entry.sent += used
            outcome = await self._ask(conn, data)
            self.counts.note(int((time.monotonic() - self.epoch) * 10), outcome)
            if outcome != str(OK):
                entry.stopped = outcome
                return
            entry.acked += used
        entry.closed = True

    async def _ask(self, conn: _Conn, data: bytearray) -> str:
        if conn.lost:
            return "lost"
        try:
            return str(await asyncio.wait_for(conn.request(data), self.timeout))
        except TimeoutError:
            return "timeout"
        except ConnectionError:
            return "lost"


# ------------------------------------------------------------------ the audit ----


async def create_subscribers(store_url: str, count: int) -> tuple[list[str], list[str]]:
    """``count`` accounts on plan basic with money enough for any run: (values, ids)."""
    client = connect(store_url, timeout=10.0)
    try:
        accounts = await Accounts.connect(client)
        subs = await provision.create_subscribers(accounts, count, "basic", "EUR", 10**12)
        return [s.value for s in subs], [s.account_id for s in subs]
    finally:
        await client.aclose()


async def balances(store_url: str, ids: list[str]) -> provision.Balances:
    client = connect(store_url, timeout=10.0)
    try:
        return await provision.balances(await Accounts.connect(client), ids)
    finally:
        await client.aclose()


@dataclass
class Audit:
    sessions: int
    acknowledged_reports: int
    closed_acknowledged: int
    records: int
    left_open_closed_by_audit: int
    lost: int
    lost_octets: int
    doubled: int
    conservation_mismatches: int
    reserved_left: int

    def line(self, label: str, load: GyLoad, node: Node | None = None) -> str:
        answers = dict(sorted(load.counts.answers.items()))
        extra = f", node starts {node.starts}" if node is not None else ""
        return (
            f"{label}: sessions {self.sessions}, acknowledged reports "
            f"{self.acknowledged_reports}, closed and acknowledged {self.closed_acknowledged}, "
            f"records {self.records} ({self.left_open_closed_by_audit} closed by the audit), "
            f"lost {self.lost} ({self.lost_octets} octets), doubled {self.doubled}, "
            f"conservation mismatches {self.conservation_mismatches}, reserved left "
            f"{self.reserved_left}; answers {answers}, connects {load.counts.connects}{extra}"
        )


def classify(ledger: dict[str, Entry], present: dict[str, list[int]]) -> tuple[int, int, int]:
    """(sessions lost, octets lost, sessions doubled) from the ledger and the octets of
    each session's records: lost when the records hold less than was acknowledged (or an
    acknowledged close has no record), doubled when a session has two records or more
    than was ever sent."""
    lost = lost_octets = doubled = 0
    for sid, entry in ledger.items():
        records = present.get(sid, [])
        held = sum(records)
        if held < entry.acked or (entry.closed and not records):
            lost += 1
            lost_octets += max(entry.acked - held, 0)
        if len(records) > 1 or held > entry.sent:
            doubled += 1
    return lost, lost_octets, doubled


async def audit(
    store_url: str, load: GyLoad, ids: list[str], before: provision.Balances, since_ms: int
) -> Audit:
    client = connect(store_url, timeout=10.0)
    try:
        charging = await ChargingService.connect(client, load_policies(POLICIES))
        closed = await close_leftover_sessions(charging, ids)
        after = await provision.balances(await Accounts.connect(client), ids)
        records, bad = await read_records(client, charging.partitions, since_ms, set(ids))
    finally:
        await client.aclose()
    assert bad == 0
    by_session: dict[str, list[int]] = collections.defaultdict(list)
    for rec in records:
        by_session[rec.session].append(sum(s.used.get("total_octets", 0) for s in rec.services))
    lost, lost_octets, doubled = classify(load.ledger, by_session)
    cons = compare(before, after, records)
    return Audit(
        sessions=len(load.ledger),
        acknowledged_reports=load.answered(),
        closed_acknowledged=sum(e.closed for e in load.ledger.values()),
        records=len(records),
        left_open_closed_by_audit=closed,
        lost=lost,
        lost_octets=lost_octets,
        doubled=doubled,
        conservation_mismatches=len(cons.mismatches),
        reserved_left=cons.reserved_left,
    )


async def redis_clock_ms(store_url: str) -> int:
    client = connect(store_url, timeout=10.0)
    try:
        sec, usec = await client.time()
        return int(sec) * 1000 + int(usec) // 1000
    finally:
        await client.aclose()


@dataclass
class Run:
    """One node, its subscribers and a gateway: the frame of every crash test."""

    node: Node
    subscribers: int = 200
    concurrency: int = 32
    load: GyLoad | None = None
    ids: list[str] = field(default_factory=list)
    before: provision.Balances = field(default_factory=dict)
    since_ms: int = 0

    def begin(self) -> GyLoad:
        values, self.ids = asyncio.run(create_subscribers(self.node.store_url, self.subscribers))
        self.before = asyncio.run(balances(self.node.store_url, self.ids))
        self.since_ms = asyncio.run(redis_clock_ms(self.node.store_url)) - 1
        self.load = GyLoad(self.node.dia_port, values, self.concurrency).start()
        return self.load

    def wait_answers(self, more: int, within: float = 60.0) -> None:
        """Until the gateway has ``more`` acknowledged requests beyond now."""
        assert self.load is not None
        target = self.load.answered() + more
        until(lambda: self.load is not None and self.load.answered() >= target, within)

    def end(self, label: str) -> Audit:
        assert self.load is not None
        self.load.stop()
        result = asyncio.run(
            audit(self.node.store_url, self.load, self.ids, self.before, self.since_ms)
        )
        print(result.line(label, self.load, self.node))
        return result
