"""Property: the CCAs we build read back through python-diameter (the reference codec) with
exactly the outcomes they encode."""

from __future__ import annotations

from diameter.message import Message
from hypothesis import given, settings
from hypothesis import strategies as st

from ocs.vocabulary.types import (
    FinalUnit,
    FinalUnitAction,
    ServiceKey,
    ServiceOutcome,
    ServiceStatus,
    Usage,
)
from protocols.diameter import answers, gy_answer
from protocols.diameter.codec import decode
from protocols.diameter.local import LocalNode
from protocols.diameter.result_codes import for_status
from tests.unit.diameter.diam_wire import ccr

u32 = st.integers(0, 2**32 - 1)
u64 = st.integers(0, 2**64 - 1)
usage = st.builds(
    Usage,
    total_octets=st.none() | u64,
    input_octets=st.none() | u64,
    output_octets=st.none() | u64,
    seconds=st.none() | u32,
    events=st.none() | u64,
    money=st.none() | st.integers(0, 2**63 - 1),  # CC-Money Value-Digits is Integer64
)
final_unit = st.none() | st.builds(
    FinalUnit,
    action=st.sampled_from(list(FinalUnitAction)),
    redirect_url=st.just("http://topup.example/"),
)
outcome = st.builds(
    ServiceOutcome,
    service=st.builds(ServiceKey, rating_group=st.none() | u32, service_id=st.none() | u32),
    status=st.sampled_from(list(ServiceStatus)),
    granted=st.none() | usage,
    validity_time=st.none() | u32,
    volume_threshold=st.none() | u32,
    time_threshold=st.none() | u32,
    quota_holding_time=st.none() | u32,
    final_unit=final_unit,
    tariff_time_change=st.none(),
    charged=st.just(0),
    shortfall=st.just(0),
)
REQUEST = decode(ccr())
LOCAL = LocalNode("ocs.example", "example")


@settings(max_examples=300, deadline=None)
@given(st.lists(outcome, min_size=1, max_size=4), st.booleans())
def test_cca_reads_back_as_encoded(outcomes: list[ServiceOutcome], tgpp: bool) -> None:
    """GSU units, Validity-Time, FUI, Rating-Group / Service-Identifier, per-MSCC Result-Code,
    3GPP thresholds only for 10415 peers: all as encoded."""
    body = answers.cca_echo(REQUEST) + gy_answer.msccs(outcomes, tgpp)
    cca = Message.from_bytes(answers.answer(REQUEST, LOCAL, 2001, body))
    assert cca.result_code == 2001 and cca.session_id == "gw;1;1"
    assert len(cca.multiple_services_credit_control) == len(outcomes)
    for o, m in zip(outcomes, cca.multiple_services_credit_control, strict=True):
        assert m.result_code == for_status(o.status)
        assert m.rating_group == o.service.rating_group
        assert m.service_identifier == (
            [] if o.service.service_id is None else [o.service.service_id]
        )
        assert m.validity_time == o.validity_time
        if o.granted is None:
            assert m.granted_service_unit is None
        else:
            g = m.granted_service_unit
            assert (g.cc_total_octets, g.cc_input_octets, g.cc_time) == (
                o.granted.total_octets,
                o.granted.input_octets,
                o.granted.seconds,
            )
            assert g.cc_service_specific_units == o.granted.events
        fui = m.final_unit_indication
        assert (fui.final_unit_action if fui else None) == (
            o.final_unit.action.value if o.final_unit else None
        )
        assert m.volume_quota_threshold == (o.volume_threshold if tgpp else None)
        assert m.quota_holding_time == (o.quota_holding_time if tgpp else None)
