"""Sans-IO framing on the 24-bit length, whole or byte by byte (standards §1.1, §1.8).

Property tests (Hypothesis, >= 2000 examples each): any bytes, whole or one
octet at a time, give messages or the framing error, never another exception,
and every framed message decodes to a message or a Problem.
"""

from __future__ import annotations

import struct

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from protocols.diameter.codec import decode
from protocols.diameter.framing import Framer
from tests.unit.diameter.diam_wire import ccr, dwr, grouped, message, u32, utf8


def test_whole_and_split_give_same_messages() -> None:
    """Two messages in one read, or one octet per read, frame identically."""
    stream = dwr(1) + ccr()
    assert Framer().feed(stream) == [dwr(1), ccr()]
    f = Framer()
    out = [m for i in range(len(stream)) for m in f.feed(stream[i : i + 1])]
    assert out == [dwr(1), ccr()]
    assert f.buffered == 0


def test_partial_header_waits() -> None:
    """Fewer than 20 header octets: nothing yet, no error (then EOF just drops)."""
    f = Framer()
    assert f.feed(dwr()[:19]) == []
    assert f.error is None
    assert f.buffered == 19


def test_length_below_20_is_framing_error_with_header() -> None:
    """standards §1.8: length < 20 -> protocol error, header kept for the 5015 answer."""
    f = Framer()
    assert f.feed(message(280, length=16)) == []
    assert f.error is not None
    assert f.error.answerable
    assert f.error.header[12:16] == struct.pack(">I", 0x1234)


def test_length_not_multiple_of_4() -> None:
    """standards §1.1: length not a multiple of 4 -> protocol error."""
    f = Framer()
    f.feed(message(280, length=22) + b"\0\0")
    assert f.error is not None
    assert "multiple of 4" in f.error.reason


def test_length_over_limit() -> None:
    """standards §1.8: length > our maximum -> protocol error before buffering it all."""
    f = Framer(max_length=1024)
    f.feed(message(272, length=2048))
    assert f.error is not None
    assert "limit" in f.error.reason


def test_good_messages_before_error_are_returned() -> None:
    """Messages complete before the bad header are still delivered."""
    f = Framer()
    out = f.feed(dwr(1) + message(280, length=17))
    assert out == [dwr(1)]
    assert f.error is not None
    assert f.feed(dwr(2)) == []  # the stream stays failed


def test_answer_with_bad_length_is_not_answerable() -> None:
    """Never answer an answer, even to report 5015."""
    f = Framer()
    f.feed(message(280, flags=0, length=8))
    assert f.error is not None
    assert not f.error.answerable


def _run(chunks: list[bytes]) -> list[bytes]:
    framer = Framer(max_length=4096)
    out: list[bytes] = []
    for chunk in chunks:
        out.extend(framer.feed(chunk))
        if framer.error is not None:
            assert isinstance(framer.error.reason, str)
            break
    for m in out:
        d = decode(m)
        assert d.header.length == len(m)
    return out


_PROPS = settings(max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@_PROPS
@given(st.binary(max_size=600))
def test_any_bytes_whole(data: bytes) -> None:
    """Any bytes in one read: messages or the framing error, never another exception."""
    _run([data])


@_PROPS
@given(st.binary(max_size=300))
def test_any_bytes_one_at_a_time_matches_whole(data: bytes) -> None:
    """Any bytes one octet per read give exactly what one read gives."""
    whole = _run([data])
    split = _run([data[i : i + 1] for i in range(len(data))])
    assert split == whole


def _header_with(body: bytes, cmd: int, flags: int) -> bytes:
    n = 20 + len(body)
    return struct.pack(">IIIII", (1 << 24) | n, (flags << 24) | cmd, 4, 1, 2) + body


@_PROPS
@given(
    st.binary(max_size=400),
    st.sampled_from([257, 272, 280, 282, 258, 999]),
    st.sampled_from([0x80, 0xC0, 0x00, 0xA0]),
)
def test_any_avp_bytes_decode_to_message_or_problem(body: bytes, cmd: int, flags: int) -> None:
    """A valid header over random AVP bytes: decode returns, never raises."""
    body = body + bytes(-len(body) % 4)
    d = decode(_header_with(body, cmd, flags))
    assert d.problem is None or 1000 <= d.problem.result_code < 6000


avp_st = st.recursive(
    st.one_of(
        st.builds(
            lambda c, v: u32(c, v),
            st.sampled_from([415, 416, 432, 420, 450, 99999]),
            st.integers(0, 9),
        ),
        st.builds(
            lambda c, t: utf8(c, t), st.sampled_from([1, 444, 461, 263, 99998]), st.text(max_size=8)
        ),
    ),
    lambda inner: st.builds(
        lambda c, kids: grouped(c, *kids),
        st.sampled_from([456, 446, 437, 443, 873]),
        st.lists(inner, max_size=4),
    ),
    max_leaves=20,
)


@_PROPS
@given(st.lists(avp_st, max_size=8), st.integers(0, 3))
def test_structured_random_ccr_decodes_or_reports(extra: list[bytes], cut: int) -> None:
    """Random but well-framed AVP trees (optionally truncated) never raise."""
    data = ccr(*extra)
    if cut:
        body = data[20 : -4 * cut] if len(data) - 20 > 4 * cut else b""
        data = message(272, body, app=4, flags=0xC0)
    d = decode(data)
    assert d.problem is None or d.problem.result_code > 0


def test_grouped_helper_roundtrip() -> None:
    """Sanity: the test builders produce what the decoder reads back."""
    d = decode(ccr(grouped(456, u32(432, 7))))
    assert d.problem is None
