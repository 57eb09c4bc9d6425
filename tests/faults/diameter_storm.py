"""Duplicate storms against a real `ocs serve`: many Gy sessions over two
connections of one Origin-Host, every request possibly re-sent the ways a gateway or
the network re-sends it, End-to-End ids drawn from a small space so that different
requests collide all the time.

Each session is CCR-I (RSU), CCR-U (USU 1,000 octets), CCR-U (USU 1,000), CCR-T
(USU 500), each step awaited as a gateway does; a third of the sessions carry a
Proxy-Info (the reference decoder serves them, not the fast path). Every request is
sent once, plus, drawn per request (``RESENDS``): a T-flagged copy after its answer,
in the same write, or ahead of it; a copy on the other connection after its answer
or at the same time; the same request with a new End-to-End id after its answer or
at the same time. Every answer must carry its own request's Session-Id,
CC-Request-Type and CC-Request-Number and be 2001; a copy under the same End-to-End
id must get the identical answer (only the Hop-by-Hop id differs). The account is
then read back: 30 micro per session (2,500 octets at 10 micro per started 1,000),
nothing reserved, no session open.
"""

from __future__ import annotations

import asyncio
import itertools
import random
from collections import Counter
from dataclasses import dataclass, field

from diameter.message import Message

from tests.integration.diameter.gy_client import GyClient
from tests.unit.diameter import diam_wire as w

RESENDS = (
    "none",
    "t_flag_after",
    "t_flag_together",
    "t_flag_first",
    "other_connection_after",
    "other_connection_together",
    "new_end_to_end_after",
    "new_end_to_end_together",
)
CHARGE_PER_SESSION = 30
T_FLAG = 0x10


@dataclass
class Storm:
    """What a storm sent and got back; ``problems`` lists every wrong answer."""

    counts: Counter[str] = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)


def _echo(answer: bytes) -> tuple[str | None, int | None, int | None, int | None]:
    """(Session-Id, CC-Request-Type, CC-Request-Number, Result-Code) of a CCA."""
    values: dict[int, object] = {a.code: a.value for a in Message.from_bytes(answer, True).avps}
    sid = values.get(263)

    def number(code: int) -> int | None:
        value = values.get(code)
        return value if isinstance(value, int) else None

    return sid if isinstance(sid, str) else None, number(416), number(415), number(268)


class StormDriver:
    def __init__(self, clients: list[GyClient], msisdn: str, seed: int, id_space: int) -> None:
        self.clients = clients
        self.msisdn = msisdn
        self.rng = random.Random(seed)
        self.id_space = id_space
        self.hbh = itertools.count(0x10000000)
        self.storm = Storm()

    def _e2e(self) -> int:
        return 0xABC00000 | self.rng.randrange(self.id_space)

    def _ccr(self, session: str, kind: int, number: int, e2e: int, proxy: bool) -> bytes:
        sub = w.grouped(443, w.u32(450, 0), w.utf8(444, self.msisdn))
        rsu = w.grouped(437)
        used = {1: None, 2: 1000, 3: 500}[min(kind, 3)]
        usu = [w.grouped(446, w.u64(421, used))] if used else []
        mscc = w.grouped(456, w.u32(432, 10), *([rsu] if kind != 3 else []), *usu)
        extra = [w.grouped(284, w.utf8(280, "proxy.faults.example"), w.avp(33, b"st"))]
        return w.ccr(
            *([sub] if kind == 1 else []),
            w.u32(455, 1),
            mscc,
            *(extra if proxy else []),
            session=session,
            req_type=kind,
            number=number,
            hbh=0,
            e2e=e2e,
        )

    def _with(self, data: bytes, hbh: int, e2e: int | None = None, t_flag: bool = False) -> bytes:
        flags = data[4] | (T_FLAG if t_flag else 0)
        e2e_bytes = data[16:20] if e2e is None else e2e.to_bytes(4, "big")
        return (
            data[:4] + bytes([flags]) + data[5:12] + hbh.to_bytes(4, "big") + e2e_bytes + data[20:]
        )

    async def _send(self, sends: list[tuple[GyClient, bytes]]) -> list[bytes]:
        """Write every (connection, message) in this loop pass; their answers, in order."""
        loop = asyncio.get_running_loop()
        futures = []
        for client, data in sends:
            fut: asyncio.Future[bytes] = loop.create_future()
            client._waiting[int.from_bytes(data[12:16], "big")] = fut
            futures.append(fut)
        for client, data in sends:
            client.write(data)
        return list(await asyncio.wait_for(asyncio.gather(*futures), 30))

    async def session(self, index: int) -> None:
        proxy = index % 3 == 0
        session = f"storm.faults.example;{index};{self.rng.getrandbits(32)}"
        counts = self.storm.counts
        counts["sessions"] += 1
        for kind, number in ((1, 0), (2, 1), (2, 2), (3, 3)):
            base = self._ccr(session, kind, number, self._e2e(), proxy)
            resend = self.rng.choice(RESENDS)
            home, other = self.rng.sample(self.clients, 2)
            original = self._with(base, next(self.hbh))
            copy_t = self._with(base, next(self.hbh), t_flag=True)
            copy_new = self._with(base, next(self.hbh), e2e=self._e2e())
            same_id = True  # the copy keeps the End-to-End id: its answer must be identical
            if resend == "none":
                answers = await self._send([(home, original)])
            elif resend == "t_flag_after":
                answers = await self._send([(home, original)])
                answers += await self._send([(home, copy_t)])
            elif resend == "t_flag_together":
                answers = await self._send([(home, original), (home, copy_t)])
            elif resend == "t_flag_first":
                answers = await self._send([(home, copy_t), (home, original)])
            elif resend == "other_connection_after":
                answers = await self._send([(home, original)])
                answers += await self._send([(other, copy_t)])
            elif resend == "other_connection_together":
                answers = await self._send([(home, original), (other, copy_t)])
            else:
                same_id = False
                if resend == "new_end_to_end_after":
                    answers = await self._send([(home, original)])
                    answers += await self._send([(home, copy_new)])
                else:
                    answers = await self._send([(home, original), (home, copy_new)])
            counts["requests"] += 1
            counts[f"resend_{resend}"] += 1
            counts["answers"] += len(answers)
            self._check(answers, (session, kind, number), same_id and len(answers) > 1)

    def _check(self, answers: list[bytes], sent: tuple[str, int, int], identical: bool) -> None:
        for answer in answers:
            sid, kind, number, code = _echo(answer)
            if (sid, kind, number) != sent:
                self.storm.counts["answers_for_another_request"] += 1
                self.storm.problems.append(f"sent {sent}, answer {(sid, kind, number, code)}")
            elif code != 2001:
                self.storm.counts[f"result_{code}"] += 1
                self.storm.problems.append(f"sent {sent}, Result-Code {code}")
        if identical and len({a[:12] + a[16:] for a in answers}) != 1:
            self.storm.counts["copies_not_identical"] += 1
            self.storm.problems.append(f"sent {sent}: the copies' answers differ")


async def storm(
    clients: list[GyClient], msisdn: str, sessions: int, seed: int, id_space: int, parallel: int
) -> Storm:
    """Run ``sessions`` sessions, ``parallel`` at a time; see the module docstring."""
    driver = StormDriver(clients, msisdn, seed, id_space)
    pending = iter(range(sessions))

    async def worker() -> None:
        for index in pending:
            await driver.session(index)

    await asyncio.gather(*(worker() for _ in range(parallel)))
    return driver.storm
