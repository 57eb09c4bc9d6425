"""Seeded datagrams for fuzzing the RADIUS listeners of `ocs serve` over the wire.

:func:`cases` yields ``(port, kind, datagram)`` from one ``random.Random(seed)``,
so a failing run is replayed by its seed. The mix covers every layer a datagram
can reach (standards §3.1, §3.2, §3.7):

- ``garbage``: random octets; ``header``: a plausible header (code, Length near
  the size or anywhere) over random octets;
- ``mutated``: a correctly signed Accounting-Request with a few octets changed,
  cut short, extended, or its Length rewritten;
- ``wrong_secret``: well formed, signed with another secret;
- ``signed``: random attributes (right and wrong sizes, repeats, vendor, unknown
  types, Class, Proxy-State, non-UTF-8 text) correctly signed, so they reach
  parsing and the charging core: statuses Start/Interim/Stop/On/Off/Failed/any,
  users from the test's accounts or random, sessions from a small pool, NASes
  from a small pool (Accounting-On/Off close real sessions);
- ``access``: Access-Requests with random attributes, with or without a
  Message-Authenticator (right or wrong), Proxy-State without one, Status-Server.
"""

from __future__ import annotations

import hashlib
import hmac
import random
import struct
from collections.abc import Iterator, Sequence

from tests.faults.radius_peer import SECRET

ACCT, AUTH = "acct", "auth"
_TEXT_TYPES = (1, 30, 31, 32, 44, 50)  # User-Name ... Acct-Multi-Session-Id
_INT_TYPES = (40, 41, 42, 43, 46, 49, 52, 53, 55, 85)
_STATUSES = (1, 1, 2, 2, 3, 3, 3, 7, 8, 15, 0, 99)
KINDS = ("garbage", "header", "mutated", "wrong_secret", "signed", "signed", "access")


def _attr(atype: int, value: bytes) -> bytes:
    value = value[:253]
    return struct.pack("!BB", atype, len(value) + 2) + value


def _sign_accounting(code: int, ident: int, body: bytes, secret: bytes = SECRET) -> bytes:
    header = struct.pack("!BBH", code, ident, 20 + len(body))
    return header + hashlib.md5(header + bytes(16) + body + secret).digest() + body


class Fuzzer:
    def __init__(self, seed: int, users: Sequence[str]) -> None:
        self.rng = random.Random(seed)
        self.users = list(users)
        self.sessions = [f"fz-{seed}-{i}" for i in range(200)]
        self.nases = [struct.pack("!BBBB", 192, 0, 2, i) for i in range(1, 9)]

    def cases(self, count: int) -> Iterator[tuple[str, str, bytes]]:
        for _ in range(count):
            kind = self.rng.choice(KINDS)
            port, raw = getattr(self, f"_{kind}")()
            yield port, kind, raw

    # -- the kinds ----------------------------------------------------------------
    def _garbage(self) -> tuple[str, bytes]:
        return self._port(), self.rng.randbytes(self.rng.randrange(0, 600))

    def _header(self) -> tuple[str, bytes]:
        body = self.rng.randbytes(self.rng.randrange(0, 300))
        length = self.rng.choice((20 + len(body), self.rng.randrange(0, 5000)))
        code = self.rng.choice((1, 4, 12, 2, 5, 40, 43, 0, 255))
        return self._port(), struct.pack("!BBH", code, self.rng.randrange(256), length) + bytes(
            16
        ) + body

    def _mutated(self) -> tuple[str, bytes]:
        raw = bytearray(self._signed_accounting())
        how = self.rng.randrange(4)
        if how == 0:
            for _ in range(self.rng.randint(1, 4)):
                raw[self.rng.randrange(len(raw))] = self.rng.randrange(256)
        elif how == 1:
            del raw[self.rng.randrange(len(raw)) :]
        elif how == 2:
            raw += self.rng.randbytes(self.rng.randrange(1, 100))
        else:
            raw[2:4] = struct.pack("!H", self.rng.randrange(0, 65536))
        return ACCT, bytes(raw)

    def _wrong_secret(self) -> tuple[str, bytes]:
        body = self._accounting_body()
        return ACCT, _sign_accounting(4, self.rng.randrange(256), body, b"not-the-secret")

    def _signed(self) -> tuple[str, bytes]:
        return ACCT, self._signed_accounting()

    def _access(self) -> tuple[str, bytes]:
        attrs = self._random_attributes(self.rng.randrange(0, 8))
        if self.rng.random() < 0.7:
            attrs = _attr(1, self.rng.choice(self.users).encode()) + attrs
        if self.rng.random() < 0.2:
            attrs += _attr(33, self.rng.randbytes(self.rng.randrange(0, 20)))  # Proxy-State
        code = 12 if self.rng.random() < 0.1 else 1
        ident, auth = self.rng.randrange(256), self.rng.randbytes(16)
        with_ma = self.rng.random() < 0.6
        body = (_attr(80, bytes(16)) if with_ma else b"") + attrs
        raw = bytearray(struct.pack("!BBH", code, ident, 20 + len(body)) + auth + body)
        if with_ma:
            mac = hmac.new(SECRET, bytes(raw), "md5").digest()
            if self.rng.random() < 0.2:
                mac = self.rng.randbytes(16)  # a wrong one
            raw[22:38] = mac
        return AUTH, bytes(raw)

    # -- building blocks ----------------------------------------------------------
    def _port(self) -> str:
        return self.rng.choice((ACCT, ACCT, AUTH))

    def _signed_accounting(self) -> bytes:
        return _sign_accounting(4, self.rng.randrange(256), self._accounting_body())

    def _accounting_body(self) -> bytes:
        rng = self.rng
        parts = []
        if rng.random() < 0.9:
            parts.append(_attr(40, struct.pack("!I", rng.choice(_STATUSES))))
        if rng.random() < 0.9:
            parts.append(_attr(44, rng.choice(self.sessions).encode()))
        if rng.random() < 0.8:
            user = rng.choice(self.users).encode() if rng.random() < 0.8 else rng.randbytes(12)
            parts.append(_attr(1, user))
        if rng.random() < 0.8:
            parts.append(_attr(4, rng.choice(self.nases)))
        for atype in (42, 43, 46):
            if rng.random() < 0.5:
                parts.append(_attr(atype, struct.pack("!I", rng.randrange(0, 2_000_000))))
        parts.append(self._random_attributes(rng.randrange(0, 6)))
        rng.shuffle(parts)
        return b"".join(parts)[:4000]

    def _random_attributes(self, count: int) -> bytes:
        rng = self.rng
        out = []
        for _ in range(count):
            pick = rng.random()
            if pick < 0.3:
                atype = rng.choice(_TEXT_TYPES)
                value = rng.randbytes(rng.randrange(0, 100))
            elif pick < 0.6:
                atype = rng.choice(_INT_TYPES)
                value = rng.choice((rng.randbytes(4), rng.randbytes(rng.randrange(0, 8))))
            elif pick < 0.7:
                atype = 26  # Vendor-Specific
                vendor = rng.choice((14988, 14559, 14122, 9, rng.randrange(1 << 24)))
                inner = rng.randbytes(rng.randrange(0, 12))
                value = struct.pack("!IBB", vendor, rng.randrange(1, 40), len(inner) + 2) + inner
            elif pick < 0.8:
                atype = 25  # Class, sometimes one of ours for another NAS
                value = rng.choice((b"ocs:radius:192.0.2.1:x", rng.randbytes(10)))
            else:
                atype = rng.randrange(1, 256)
                value = rng.randbytes(rng.randrange(0, 30))
            if atype == 80:
                continue  # Message-Authenticator is the signer's business
            out.append(_attr(atype, value))
        return b"".join(out)
