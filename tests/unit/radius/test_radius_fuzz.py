"""Property tests: hostile bytes never escape the packet layer as anything but a drop
(standards §3.7), never get an answer, and no unauthenticated change is accepted."""

from __future__ import annotations

import contextlib
import hashlib
import struct

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ocs.charging.api import ChargingService
from protocols.radius.accounting_record import parse_accounting
from protocols.radius.codec import PortKind, decode_request
from protocols.radius.drops import RadiusDrop
from protocols.radius.pipeline import Pipeline
from protocols.radius.sessions import LiveSessions
from protocols.radius.settings import RadiusConfig
from tests.unit.radius.radius_wire import SECRET, access_packet, acct_request

FUZZ = settings(max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
VALID_ACCT = acct_request({"Acct-Input-Octets": 1, "Acct-Status-Type": "Interim-Update"})
VALID_ACCESS = bytes(access_packet().RequestPacket())


def _pipeline() -> Pipeline:
    cfg = RadiusConfig.model_validate(
        {"clients": [{"name": "nas", "address": "127.0.0.1", "secret": SECRET.decode()}]}
    )
    # prepare() never calls the charging API; the bare contract class raises if it did.
    return Pipeline(cfg, ChargingService.__new__(ChargingService), LiveSessions(), print)


def _radius_like() -> st.SearchStrategy[bytes]:
    """Bytes with a plausible header (code, id, Length near the size) and random attributes."""

    @st.composite
    def build(draw: st.DrawFn) -> bytes:
        code = draw(st.sampled_from([1, 4, 12, 2, 5, 40, 43, 0, 255]))
        body = draw(st.binary(min_size=0, max_size=300))
        length = draw(st.one_of(st.just(20 + len(body)), st.integers(0, 5000)))
        return struct.pack("!BBH", code, draw(st.integers(0, 255)), length) + bytes(16) + body

    return build()


@FUZZ
@given(data=st.one_of(st.binary(max_size=400), _radius_like()), port=st.sampled_from(PortKind))
def test_random_bytes_only_ever_drop(data: bytes, port: PortKind) -> None:
    """Random datagrams: decode raises RadiusDrop or (never, unsigned) succeeds; nothing else."""
    try:
        req = decode_request(data, port, SECRET, require_message_authenticator=False)
    except RadiusDrop:
        return
    # Only Access-Requests without Message-Authenticator can pass unsigned.
    assert req.code == 1
    assert not req.has_message_authenticator
    with contextlib.suppress(RadiusDrop):
        parse_accounting(req.packet)


@FUZZ
@given(data=st.one_of(st.binary(max_size=400), _radius_like()), port=st.sampled_from(PortKind))
def test_random_bytes_never_get_an_answer(data: bytes, port: PortKind) -> None:
    """Random datagrams through the request path: no answer is produced synchronously,
    and whatever is queued for charging was authenticated."""
    result = _pipeline().prepare(data, "127.0.0.1", 4000, port)
    assert not isinstance(result, bytes)
    if result is not None:
        assert result.request.code in (1, 4, 12)


@FUZZ
@given(
    base=st.sampled_from([(VALID_ACCT, PortKind.ACCT), (VALID_ACCESS, PortKind.AUTH)]),
    flips=st.lists(st.tuples(st.integers(0, 400), st.integers(1, 255)), min_size=1, max_size=4),
)
def test_tampered_signed_packets_are_dropped(
    base: tuple[bytes, PortKind], flips: list[tuple[int, int]]
) -> None:
    """Any change inside Length of a signed packet is detected (authenticator / HMAC),
    with Message-Authenticator required so that removing it is a change too."""
    raw, port = base
    data = bytearray(raw)
    for pos, xor in flips:
        if pos < len(data):
            data[pos] ^= xor
    try:
        req = decode_request(bytes(data), port, SECRET, require_message_authenticator=True)
    except RadiusDrop:
        return
    assert req.raw == raw  # only an unchanged packet may pass


@FUZZ
@given(
    attrs=st.lists(st.tuples(st.integers(1, 255), st.binary(max_size=40)), min_size=0, max_size=12)
)
def test_random_attributes_in_a_signed_accounting_request(attrs: list[tuple[int, bytes]]) -> None:
    """Well-framed, correctly signed requests with random attribute values: parse or drop."""
    body = b"".join(struct.pack("!BB", t, len(v) + 2) + v for t, v in attrs if t != 80)
    header = struct.pack("!BBH", 4, 7, 20 + len(body))
    auth = hashlib.md5(header + bytes(16) + body + SECRET).digest()
    try:
        req = decode_request(header + auth + body, PortKind.ACCT, SECRET)
        parse_accounting(req.packet)
    except RadiusDrop:
        pass
