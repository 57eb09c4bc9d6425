"""Property: the fast CCA encoder writes byte for byte what the reference builder
(GyApplication._session_cca over python-diameter) writes, or leaves it to the reference
(standards §1.1, §1.2, §2.1, §2.4, §2.8)."""

from __future__ import annotations

from typing import Any, cast

from diameter.message import Message
from hypothesis import given, settings
from hypothesis import strategies as st

from ocs.vocabulary.types import (
    ChargingAnswer,
    FinalUnit,
    FinalUnitAction,
    ServiceKey,
    ServiceOutcome,
    ServiceStatus,
    Usage,
)
from protocols.diameter.capabilities import PeerInfo
from protocols.diameter.codec import decode
from protocols.diameter.fastpath import fast_decode, reference
from protocols.diameter.gy import GyApplication
from protocols.diameter.gy_parse import parse_ccr
from protocols.diameter.local import LocalNode
from protocols.diameter.message import Limits
from tests.unit.diameter import diam_wire as w
from tests.unit.diameter.test_fastpath_decode import ccr

u32 = st.integers(0, 2**32 - 1)
u64 = st.integers(0, 2**64 - 1)
# Mostly valid values, sometimes ones python-diameter refuses (negative, too wide).
wide = u32 | st.integers(-5, -1) | st.integers(2**32, 2**40)
usage = st.builds(
    Usage,
    total_octets=st.none() | u64 | st.integers(2**64, 2**65),
    input_octets=st.none() | u64,
    output_octets=st.none() | u64,
    seconds=st.none() | u32 | st.integers(-3, -1) | st.integers(2**32, 2**33),
    events=st.none() | u64,
    money=st.none() | st.integers(-(2**63), 2**63 - 1) | st.just(2**63),
)
final_unit = st.none() | st.builds(
    FinalUnit,
    action=st.sampled_from(list(FinalUnitAction)),
    redirect_url=st.none() | st.text(max_size=20),
    filter_ids=st.lists(st.text(max_size=8), max_size=2).map(tuple),
    restriction_rules=st.lists(st.text(max_size=8), max_size=2).map(tuple),
)
outcome = st.builds(
    ServiceOutcome,
    service=st.builds(ServiceKey, rating_group=st.none() | u32, service_id=st.none() | u32),
    status=st.sampled_from(list(ServiceStatus)),
    granted=st.none() | usage,
    validity_time=st.none() | wide,
    volume_threshold=st.none() | wide,
    time_threshold=st.none() | u32,
    quota_holding_time=st.none() | u32,
    final_unit=final_unit,
    tariff_time_change=st.none() | st.integers(0, 2**32) | st.integers(-(2**31), 0),
)
LOCAL = LocalNode("ocs.test.example", "test.example")


def _peer(tgpp: bool) -> PeerInfo:
    return PeerInfo(
        "gw.example",
        "example",
        "127.0.0.1",
        supported_vendors=frozenset({10415} if tgpp else set()),
    )


@settings(max_examples=900, deadline=None)
@given(ccr(), st.lists(outcome, max_size=3), st.booleans(), st.none() | st.integers(0, 2))
def test_fast_cca_bytes_equal_reference(
    data: bytes, outcomes: list[ServiceOutcome], tgpp: bool, ccfh: int | None
) -> None:
    """Random outcomes for a random fast-path CCR: identical CCA bytes (python-diameter reads
    them back), or None exactly when the reference must decide (5031, values it refuses)."""
    msg = fast_decode(data, Limits())
    assert msg is not None
    req = msg.request
    if not req.multiple_services:
        outcomes = outcomes[:1]
    answer = ChargingAnswer(req.session_id, req.request_number, "acct", tuple(outcomes))
    app = GyApplication(cast(Any, None), LOCAL, failure_handling=ccfh)
    ccfh = ccfh if req.request_type.value == 1 else None  # a CCA-I's
    fast = app.encoder.session_cca(msg, answer, tgpp, ccfh)
    try:
        built: bytes | None = app._session_cca(reference(msg), req, answer, _peer(tgpp), ccfh)
    except Exception:  # python-diameter refuses the value: the fast path must not answer
        built = None
    if fast is None:
        rating_failed = any(o.status is ServiceStatus.RATING_FAILED for o in outcomes)
        assert built is None or rating_failed, "declined an answer it could encode"
        return
    assert fast == built
    cca = Message.from_bytes(fast)
    assert cca.header.hop_by_hop_identifier == msg.header.hop_by_hop


async def test_not_fast_message_is_left_to_the_reference() -> None:
    """A request the fast decoder did not read gets its CCA from the reference builder."""
    answer = ChargingAnswer("gw;1;1", 0, "acct", ())

    class Core:
        async def initiate(self, *args: object, **kwargs: object) -> ChargingAnswer:
            return answer

    app = GyApplication(cast(Any, Core()), LOCAL)
    msg = decode(w.ccr(w.grouped(443, w.u32(450, 0), w.utf8(444, "336"))))
    assert msg.problem is None
    req = parse_ccr(msg, app.served)
    built = app._session_cca(msg, req, answer, _peer(True), None)
    assert await app.handle(msg, _peer(True)) == built
