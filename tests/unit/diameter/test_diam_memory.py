"""What a message leaves behind once answered: nothing for a refused one, bounded caches for
the rest (a peer must not make us hold memory without bound). Measured with tracemalloc, in process; the black-box RSS check
against `ocs serve` is tests/faults/test_diameter_memory.py."""

from __future__ import annotations

import gc
import tracemalloc
from collections.abc import Callable

from ocs.vocabulary.types import ChargingAnswer, ServiceKey, ServiceOutcome, ServiceStatus
from protocols.diameter import answers, fastpath
from protocols.diameter.codec import decode
from protocols.diameter.fastpath import _CACHE_ENTRIES, _IDENTITIES, fast_decode
from protocols.diameter.fastpath_cca import CcaEncoder
from protocols.diameter.local import LocalNode
from protocols.diameter.message import Limits
from protocols.diameter.metrics import Counts, command_name
from tests.unit.diameter.diam_wire import ccr, grouped, u32, utf8

LOCAL = LocalNode("ocs.test.example", "test.example")
LIMITS = Limits()


def retained(step: Callable[[int], object], warm: int, runs: int) -> int:
    """Octets still allocated after ``runs`` more calls of ``step`` than after ``warm``."""
    for i in range(warm):
        step(i)
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for i in range(warm, warm + runs):
            step(i)
        gc.collect()
        return tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()


def big_ccr(n: int = 5000) -> bytes:
    """The probe's message: a CCR of ~120 KB with more than 4096 AVPs (answered 5012)."""
    return ccr(*[utf8(282, f"relay{j:05d}.exam", flags=0x40) for j in range(n)])


def test_a_refused_large_message_retains_nothing() -> None:
    """The fast path declines, the decoder refuses (5012), the answer is built: afterwards
    nothing of the message is held (it was 0.5 MB traced, 1.5 MB RSS, per message)."""
    data = big_ccr()
    assert len(data) > 120_000

    def refuse(_: int) -> None:
        assert fast_decode(data, LIMITS) is None
        msg = decode(data, LIMITS)
        assert msg.problem is not None and msg.problem.result_code == 5012
        answers.error_answer(msg, LOCAL, msg.problem)

    assert retained(refuse, 2, 8) < 64_000


def test_a_declined_cca_retains_nothing() -> None:
    """The fast CCA encoder leaving a 5031 MSCC to the reference holds nothing per call."""
    data = ccr(grouped(443, u32(450, 0), utf8(444, "33612345678")), u32(455, 1), grouped(456))
    msg = fast_decode(data, LIMITS)
    assert msg is not None
    failed = ServiceOutcome(ServiceKey(rating_group=10), ServiceStatus.RATING_FAILED)
    answer = ChargingAnswer("gw;1;1", 0, "acct", (failed,))
    encoder = CcaEncoder(LOCAL)

    def decline(_: int) -> None:
        assert encoder.session_cca(msg, answer, True) is None

    assert retained(decline, 10, 5000) < 64_000


def test_fast_path_layouts_are_bounded() -> None:
    """Thousands of distinct layouts of ~240 AVPs hold a few MB at most, not one each."""
    fastpath.forget_layouts()

    names = [utf8(282, f"relay{j:03d}", flags=0x40) for j in range(60)]

    def layout(i: int) -> None:
        # 256 lengths x 4 layouts of each (the long AVP moves): what the per-length bounds
        # alone let through, 1024 layouts of 70 headers (16 MB before the budget).
        at = i % 4
        long = utf8(282, "x" * (4 * (i // 4) + 1), flags=0x40)
        data = ccr(*names[:at], long, *names[at:])
        fast_decode(data, LIMITS)
        fast_decode(data, LIMITS)  # a layout is built on the second walk of a length

    try:
        assert retained(layout, 0, 1024) < 6_000_000
    finally:
        fastpath.forget_layouts()


def test_long_subscription_ids_are_not_kept() -> None:
    """Only short Subscription-Ids are shared from the identity cache."""
    _IDENTITIES.clear()
    for size in (10, 200, 300, 50_000):
        sub = grouped(443, u32(450, 0), utf8(444, "9" * size))
        assert fast_decode(ccr(sub, session=f"gw;{size}"), LIMITS) is not None
    assert sorted(len(k) for k in _IDENTITIES) == [32, 220]
    assert len(_IDENTITIES) <= _CACHE_ENTRIES


def test_unknown_command_codes_share_one_metric_label() -> None:
    """Whatever command codes a peer sends, the request / answer labels stay bounded."""
    counts = Counts()
    for code in range(1000, 3000):
        counts.request(code)
        counts.answer(code, 3001)
    counts.request(272)
    assert {command_name(c) for c in counts.requests} == {"other", "credit_control"}
    assert counts.requests[-1] == 2000 and len(counts.answers) == 1
