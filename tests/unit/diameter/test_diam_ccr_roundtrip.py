"""Property: CCRs built by python-diameter (the reference codec) decode cleanly through the
guarded decoder and map to exactly the services, units and identities they carry."""

from __future__ import annotations

from diameter.message.avp.grouped import (
    MultipleServicesCreditControl,
    RequestedServiceUnit,
    SubscriptionId,
    UsedServiceUnit,
)
from diameter.message.commands import CreditControlRequest
from hypothesis import given, settings
from hypothesis import strategies as st

from ocs.vocabulary.types import Identity, IdentityType, ServiceKey, TariffChange, Usage
from protocols.diameter.codec import decode
from protocols.diameter.gy_parse import parse_ccr
from protocols.diameter.gy_request import Served

u32 = st.integers(0, 2**32 - 1)
u64 = st.integers(0, 2**64 - 1)
_UNIT_FIELDS = {
    "cc_time": u32,
    "cc_total_octets": u64,
    "cc_input_octets": u64,
    "cc_service_specific_units": u64,
}
# python-diameter 0.9.0's RequestedServiceUnit has no CC-Output-Octets field.
rsu_units = st.fixed_dictionaries({}, optional=_UNIT_FIELDS)
units = st.fixed_dictionaries({}, optional={**_UNIT_FIELDS, "cc_output_octets": u64})
mscc_spec = st.fixed_dictionaries(
    {
        "rg": st.none() | u32,
        "sid": st.none() | u32,
        "rsu": st.none() | rsu_units,
        "usu": st.lists(st.tuples(units, st.none() | st.sampled_from([0, 1, 2])), max_size=3),
    }
)
KINDS = [
    IdentityType.E164,
    IdentityType.IMSI,
    IdentityType.SIP_URI,
    IdentityType.NAI,
    IdentityType.PRIVATE,
]
ids_spec = st.lists(
    st.tuples(st.integers(0, 4), st.text(min_size=1, max_size=20)), min_size=1, max_size=3
)

_NAMES = {
    "cc_time": "seconds",
    "cc_total_octets": "total_octets",
    "cc_input_octets": "input_octets",
    "cc_output_octets": "output_octets",
    "cc_service_specific_units": "events",
}


def _usage(spec: dict[str, int]) -> Usage:
    return Usage(**{_NAMES[k]: v for k, v in spec.items()})


@settings(max_examples=500, deadline=None)
@given(st.lists(mscc_spec, min_size=1, max_size=5), ids_spec, st.integers(1, 3), u32)
def test_python_diameter_ccr_maps_exactly(
    msccs: list[dict], ids: list[tuple[int, str]], req_type: int, number: int
) -> None:
    """Every MSCC's key, requested and used units, Tariff-Change-Usage and every identity survive."""
    ccr = CreditControlRequest()
    ccr.header.application_id = 4
    ccr.header.hop_by_hop_identifier = ccr.header.end_to_end_identifier = 1
    ccr.session_id = "gw;1;2"
    ccr.origin_host, ccr.origin_realm, ccr.destination_realm = b"gw", b"r", b"ocs"
    ccr.service_context_id = "32251@3gpp.org"
    ccr.cc_request_type, ccr.cc_request_number = req_type, number
    ccr.subscription_id = [SubscriptionId(kind, text) for kind, text in ids]
    ccr.multiple_services_indicator = 1
    ccr.multiple_services_credit_control = [
        MultipleServicesCreditControl(
            rating_group=m["rg"],
            service_identifier=[] if m["sid"] is None else [m["sid"]],
            requested_service_unit=None if m["rsu"] is None else RequestedServiceUnit(**m["rsu"]),
            used_service_unit=[
                UsedServiceUnit(tariff_change_usage=tcu, **u) for u, tcu in m["usu"]
            ],
        )
        for m in msccs
    ]
    msg = decode(ccr.as_bytes())
    assert msg.problem is None, msg.problem
    req = parse_ccr(msg, Served.of("ocs.test.example", "test.example", check=False))
    assert req.subscribers == tuple(Identity(KINDS[k], t) for k, t in ids)
    assert (req.request_number, req.multiple_services) == (number, True)
    for spec, svc in zip(msccs, req.services, strict=True):
        assert svc.service == ServiceKey(spec["rg"], spec["sid"])
        assert svc.requested == (None if spec["rsu"] is None else _usage(spec["rsu"]))
        assert [u.usage for u in svc.used] == [_usage(u) for u, _ in spec["usu"]]
        assert [u.tariff_change for u in svc.used] == [
            None if tcu is None else TariffChange(tcu) for _, tcu in spec["usu"]
        ]
