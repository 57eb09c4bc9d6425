"""Property: the fast CCA encoder (issue 6) writes byte for byte what the reference builder
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
from protocols.diameter.codec import Limits
from protocols.diameter.fastpath import expand, fast_decode
from protocols.diameter.gy import GyApplication
from protocols.diameter.local import LocalNode
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
    assert msg is not None and msg.fast is not None
    req = msg.fast.request
    if not req.multiple_services:
        outcomes = outcomes[:1]
    answer = ChargingAnswer(req.session_id, req.request_number, "acct", tuple(outcomes))
    app = GyApplication(cast(Any, None), LOCAL, failure_handling=ccfh)
    fast = app.encoder.session_cca(msg, answer, tgpp, ccfh if req.request_type.value == 1 else None)
    try:
        reference: bytes | None = app._session_cca(expand(msg), req, answer, _peer(tgpp))
    except Exception:  # python-diameter refuses the value: the fast path must not answer
        reference = None
    if fast is None:
        rating_failed = any(o.status is ServiceStatus.RATING_FAILED for o in outcomes)
        assert reference is None or rating_failed, "declined an answer it could encode"
        return
    assert fast == reference
    cca = Message.from_bytes(fast)
    assert cca.header.hop_by_hop_identifier == msg.header.hop_by_hop


def test_not_fast_message_is_left_to_the_reference() -> None:
    """A message the fast decoder did not read gets None (the reference builds its CCA)."""
    from protocols.diameter.codec import decode
    from tests.unit.diameter.diam_wire import ccr as raw_ccr

    app = GyApplication(cast(Any, None), LOCAL)
    answer = ChargingAnswer("gw;1;1", 0, "acct", ())
    assert app.encoder.session_cca(decode(raw_ccr()), answer, True) is None
