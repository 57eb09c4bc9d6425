"""A simulated SMF: Nchf_ConvergedCharging create / update / release over HTTP/2 (TS 32.291 §6.1.3).

Each session is a create (a unit asked per rating group), ``updates``
updates (usage reported in a used-unit container, more quota asked) and a
release (final usage), with ``invocationSequenceNumber`` = the step and a
``chargingId`` unique to the session (so each create names its own
resource). The subscriber is ``msisdn-<MSISDN>`` of the run's accounts. A
session keeps to one connection; requests go out as HTTP/2 streams
(:mod:`loadtest.nchf_wire`). Success: 201 / 200 / 204; the ``resultCode`` of
every unit that is not SUCCESS is counted like a Gy MSCC result. Time-outs
are found from a FIFO of send times, as for Gy.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import random
import time
from collections import deque

from loadtest.nchf_wire import Answer, H2Client, connect
from loadtest.session import Done, SimSession
from loadtest.spec import Service
from loadtest.stats import DISCONNECTED, TIMEOUT, Stats

BASE = b"/nchf-convergedcharging/v3/chargingdata"
EXPECTED = {"create": 201, "update": 200, "release": 204}
_UNIT_ATTRS = {"total_octets": "totalVolume", "seconds": "time", "events": "serviceSpecificUnits"}
_dumps = json.JSONEncoder(separators=(",", ":")).encode


def _usage(rng: random.Random, mean: int) -> int:
    return rng.randint(mean // 2, mean + mean // 2) if mean > 1 else mean


class NchfGateway:
    """The HTTP/2 connections of one generator process, used round robin by session."""

    def __init__(
        self,
        clients: list[H2Client],
        stats: Stats,
        epoch: float,
        timeout: float,
        rng: random.Random,
        consumer: str,
    ) -> None:
        self.clients = clients
        self.stats = stats
        self.epoch = epoch
        self.timeout = timeout
        self.rng = rng
        self.consumer = {"nodeFunctionality": "SMF", "nFName": consumer}
        self._next = itertools.cycle(clients)
        self.refs: dict[bytes, bytes] = {}  # session digits -> ChargingDataRef
        self.pending: dict[int, tuple[H2Client, Answer, str, SimSession, Done]] = {}
        self.order: deque[tuple[float, int]] = deque()
        self.tokens = itertools.count()
        self._stamp = (0, "")
        self._expiry: asyncio.Task[None] | None = None

    @classmethod
    async def open(
        cls,
        host: str,
        port: int,
        count: int,
        stats: Stats,
        epoch: float,
        timeout: float,  # noqa: ASYNC109 - the per-request time-out
        rng: random.Random,
        consumer: str,
    ) -> NchfGateway:
        clients = [await connect(host, port) for _ in range(count)]
        gateway = cls(clients, stats, epoch, timeout, rng, consumer)
        gateway._expiry = asyncio.get_running_loop().create_task(gateway._expire_loop())
        return gateway

    # -- requests -----------------------------------------------------------------

    def send(self, session: SimSession, done: Done) -> None:
        client = session.route
        if not isinstance(client, H2Client):
            client = session.route = next(self._next)
        kind = "create" if session.opening else "release" if session.closing else "update"
        if kind == "create":
            path = BASE
        else:
            ref = self.refs.get(session.digits, b"")
            path = ref + (b"/release" if kind == "release" else b"/update")
        body = self._body(session, kind)
        token = next(self.tokens)
        started = time.perf_counter_ns()

        def answer(status: int, location: bytes, data: bytes) -> None:
            if self.pending.pop(token, None) is None:
                return  # timed out already
            self._answered(session, done, kind, status, location, data, started)

        self.pending[token] = (client, answer, kind, session, done)
        self.order.append((time.perf_counter() + self.timeout, token))
        client.post(path, body, answer)

    def _answered(
        self,
        session: SimSession,
        done: Done,
        kind: str,
        status: int,
        location: bytes,
        data: bytes,
        started: int,
    ) -> None:
        now = time.perf_counter()
        second = int(now - self.epoch)
        if status == 0:
            self.stats.failure(kind, DISCONNECTED, second)
            done(session, False)
            return
        ok = status == EXPECTED[kind]
        micros = (time.perf_counter_ns() - started) // 1000
        self.stats.answer(kind, str(status), micros, second, ok)
        if ok and kind == "create":
            # The path of the Location: what this session's updates go to.
            self.refs[session.digits] = location[location.find(BASE) :]
        if kind == "release":
            self.refs.pop(session.digits, None)
        # Parsed only when some unit is not SUCCESS (the common answer is all SUCCESS).
        if data and data.count(b'"resultCode"') != data.count(b'"resultCode":"SUCCESS"'):
            with contextlib.suppress(ValueError):
                for unit in json.loads(data).get("multipleUnitInformation") or ():
                    code = unit.get("resultCode", "SUCCESS")
                    if code != "SUCCESS":
                        self.stats.mscc_results[code] += 1
        done(session, ok)

    def _body(self, session: SimSession, kind: str) -> bytes:
        units = []
        for svc in session.services:
            unit: dict[str, object] = {"ratingGroup": svc.rating_group}
            if kind != "release":
                unit["requestedUnit"] = {}
            if kind != "create":
                unit["usedUnitContainer"] = [self._container(svc, session.step)]
            units.append(unit)
        body: dict[str, object] = {
            "nfConsumerIdentification": self.consumer,
            "invocationTimeStamp": self._timestamp(),
            "invocationSequenceNumber": session.step,
            "multipleUnitUsage": units,
        }
        if kind == "create":
            body["subscriberIdentifier"] = "msisdn-" + session.subscriber.decode()
            body["pDUSessionChargingInformation"] = {
                "chargingId": int(session.digits) & 0xFFFFFFFF,
            }
        return _dumps(body).encode()

    def _container(self, svc: Service, step: int) -> dict[str, int]:
        attr = _UNIT_ATTRS.get(svc.unit, "totalVolume")
        return {"localSequenceNumber": step, attr: _usage(self.rng, svc.mean_usage)}

    def _timestamp(self) -> str:
        now = int(time.time())
        if self._stamp[0] != now:  # one format per second
            stamp = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(now))
            self._stamp = (now, stamp)
        return self._stamp[1]

    # -- time-outs -------------------------------------------------------------------

    async def _expire_loop(self) -> None:
        while True:
            await asyncio.sleep(0.05)
            self.expire(time.perf_counter())

    def expire(self, now: float) -> None:
        """Fail the requests whose time-out has passed (oldest first)."""
        order = self.order
        second = int(now - self.epoch)
        while order and order[0][0] <= now:
            _, token = order.popleft()
            entry = self.pending.pop(token, None)
            if entry is not None:
                client, answer, kind, session, done = entry
                client.forget(answer)  # a late answer is not reported
                self.stats.failure(kind, TIMEOUT, second)
                done(session, False)

    def in_flight(self) -> int:
        return len(self.pending)

    def close(self) -> None:
        if self._expiry is not None:
            self._expiry.cancel()
        for client in self.clients:
            with contextlib.suppress(Exception):
                client.close()
