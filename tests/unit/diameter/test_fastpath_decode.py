"""Property: the fast CCR decoder maps exactly as python-diameter's path does, and
says "not mine" to anything it cannot be sure of (standards §1.1, §1.6, §1.8, §2.1, §2.5)."""

from __future__ import annotations

import struct

from diameter.message.avp.grouped import (
    CcMoney,
    MultipleServicesCreditControl,
    RequestedServiceUnit,
    SubscriptionId,
    UnitValue,
    UsedServiceUnit,
)
from diameter.message.commands import CreditControlRequest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocols.diameter.codec import decode
from protocols.diameter.constants import CcRequestType
from protocols.diameter.fastpath import fast_decode, reference
from protocols.diameter.gy_parse import GyReject, parse_ccr
from protocols.diameter.gy_request import Served
from protocols.diameter.message import Limits
from tests.unit.diameter import diam_wire as w

DEFAULT = Limits()
# Served whatever the destination (the generator draws realms): context and subscriber checked.
SERVED = Served.of("ocs.test.example", "test.example", ("32251@3gpp.org",), check=False)
u32 = st.integers(0, 2**32 - 1)
u64 = st.integers(0, 2**64 - 1)
i32 = st.integers(-(2**31), 2**31 - 1)
text = st.text(max_size=12)
_UNIT_FIELDS = {
    "cc_time": u32,
    "cc_total_octets": u64,
    "cc_input_octets": u64,
    "cc_service_specific_units": u64,
}
money = st.builds(
    lambda d, e, c: CcMoney(unit_value=UnitValue(value_digits=d, exponent=e), currency_code=c),
    st.integers(-(2**63), 2**63 - 1),
    st.none() | st.integers(-12, 12),
    st.none() | u32,
)
rsu_units = st.fixed_dictionaries({}, optional={**_UNIT_FIELDS, "cc_money": money})
usu_units = st.fixed_dictionaries(
    {},
    optional={
        **_UNIT_FIELDS,
        "cc_output_octets": u64,
        "cc_money": money,
        "tariff_change_usage": st.sampled_from([0, 1, 2]),
    },
)
reasons = st.lists(st.integers(0, 10), max_size=2)


def _usu(spec: tuple[dict, list[int]]) -> UsedServiceUnit:
    units, why = spec
    return UsedServiceUnit(reporting_reason=why, **units)


@st.composite
def mscc(draw: st.DrawFn) -> MultipleServicesCreditControl:
    rsu = draw(st.none() | rsu_units)
    return MultipleServicesCreditControl(
        rating_group=draw(st.none() | u32),
        service_identifier=draw(st.lists(u32, max_size=2)),
        requested_service_unit=None if rsu is None else RequestedServiceUnit(**rsu),
        used_service_unit=[
            _usu(u) for u in draw(st.lists(st.tuples(usu_units, reasons), max_size=2))
        ],
        reporting_reason=draw(reasons),
    )


@st.composite
def ccr(draw: st.DrawFn) -> bytes:
    """A valid CCR-I/U/T as python-diameter builds it, in the shapes gateways send."""
    c = CreditControlRequest()
    c.header.application_id = 4
    c.header.hop_by_hop_identifier = draw(u32)
    c.header.end_to_end_identifier = draw(u32)
    if draw(st.booleans()):
        c.header.is_proxyable = True
    if draw(st.booleans()):
        c.header.is_retransmit = True
    c.session_id = draw(text)
    c.origin_host, c.origin_realm = b"gw.example", b"example"
    c.destination_realm = draw(st.sampled_from([b"test.example", b"other.example"]))
    if draw(st.booleans()):
        c.destination_host = b"ocs.test.example"
    c.service_context_id = draw(st.sampled_from(["32251@3gpp.org", "8.32251@3gpp.org", "x@y"]))
    c.cc_request_type = draw(st.integers(1, 3))
    c.cc_request_number = draw(u32)
    c.subscription_id = [
        SubscriptionId(k, t)
        for k, t in draw(st.lists(st.tuples(st.integers(0, 4), text), max_size=2))
    ]
    if draw(st.booleans()):
        c.user_name = draw(text)
    if draw(st.booleans()):
        c.origin_state_id = draw(u32)
    if draw(st.booleans()):
        c.termination_cause = draw(st.integers(1, 8))
    if draw(st.booleans()):
        c.route_record = [b"relay.example"]
    if draw(st.booleans()):
        c.multiple_services_indicator = 1
        c.multiple_services_credit_control = draw(st.lists(mscc(), min_size=1, max_size=3))
    else:
        if draw(st.booleans()):
            c.service_identifier = draw(u32)
        rsu = draw(st.none() | rsu_units)
        if rsu is not None:
            c.requested_service_unit = RequestedServiceUnit(**rsu)
        c.used_service_unit = [
            _usu(u) for u in draw(st.lists(st.tuples(usu_units, reasons), max_size=2))
        ]
    return bytes(c.as_bytes())


def _reference(data: bytes, limits: Limits = DEFAULT):
    msg = decode(data, limits)
    if msg.problem is not None:
        return "problem"
    try:
        return parse_ccr(msg, SERVED)
    except GyReject:
        return "reject"


def _check(data: bytes, limits: Limits = DEFAULT) -> bool:
    """The fast path either declines, or the reference finds no problem and maps the same;
    a second decoding (its layout then known, the walk skipped) says exactly the same."""
    fast = fast_decode(data, limits)
    for _ in range(2):  # the layout is built on the second walk, used from the third
        again = fast_decode(data, limits)
        assert (again is None) == (fast is None)
        if fast is None or again is None:
            return False
        assert again == fast
    ref = _reference(data, limits)
    assert ref != "problem", "fast path accepted what the reference refuses"
    req = fast.request
    refusal = SERVED.refusal(
        fast.destination_host,
        fast.destination_realm,
        fast.context,
        req.request_type,
        bool(req.subscribers),
    )
    if ref == "reject":
        assert refusal is not None
    else:
        assert refusal is None
        assert req == ref
    full = reference(fast)
    assert full.header == fast.header and full.problem is None
    return True


@settings(max_examples=900, deadline=None)
@given(ccr())
def test_valid_ccr_maps_as_the_reference(data: bytes) -> None:
    """Random valid CCR-I/U/T built by python-diameter: the fast path takes it and maps it as
    decode + parse_ccr do (services, units, money, reasons, identities, cause, state id)."""
    assert _check(data), "a valid hot-path CCR was declined"


_MUTATIONS = st.sampled_from(["byte", "flags", "length", "truncate", "append", "insert"])


@settings(max_examples=900, deadline=None)
@given(ccr(), _MUTATIONS, st.data())
def test_mutated_ccr_declined_or_equal(data: bytes, how: str, draw: st.DataObject) -> None:
    """Bytes changed anywhere (value, flags, lengths, truncation, foreign AVPs): the fast path
    declines, or the reference has no problem and maps exactly the same, also when the
    original's layout is known (a changed value or header must not ride on it)."""
    for _ in range(2):
        fast_decode(data, DEFAULT)  # the original's layout is now known (built on a 2nd walk)
    raw = bytearray(data)
    pos = draw.draw(st.integers(0, len(raw) - 1))
    if how == "byte":
        raw[pos] = draw.draw(st.integers(0, 255))
    elif how == "flags":
        raw[pos] ^= draw.draw(st.sampled_from([0x80, 0x40, 0x20, 0x10, 0x08, 0x01]))
    elif how == "length":
        raw[pos] = (raw[pos] + draw.draw(st.sampled_from([1, 3, 4, 255]))) % 256
    elif how == "truncate":
        raw = raw[:pos]
    else:
        extra = draw.draw(
            st.sampled_from(
                [
                    w.u32(999, 1),  # unknown M-bit AVP
                    w.u32(999, 1, flags=0),  # unknown, M clear
                    w.u32(873, 1, flags=0xC0, vendor=10415),  # 3GPP AVP we do not read
                    w.grouped(284, w.utf8(280, "p"), w.utf8(33, "s")),  # Proxy-Info
                    w.u32(268, 2001),  # answer-only AVP
                    w.u32(416, 4),  # second CC-Request-Type
                    w.u32(455, 7),  # MSI out of range
                    w.grouped(456, w.u32(999, 1)),  # unknown M-bit inside MSCC
                ]
            )
        )
        at = 20 if how == "insert" else len(raw)
        raw = raw[:at] + bytearray(extra) + raw[at:]
    if len(raw) >= 4:  # keep the header length true so the mutation reaches the AVPs
        struct.pack_into(">I", raw, 0, (raw[0] << 24) | len(raw))
    _check(bytes(raw))


@settings(max_examples=200, deadline=None)
@given(ccr(), st.integers(1, 5), st.integers(16, 64), st.integers(1, 3))
def test_limits_respected(data: bytes, depth: int, max_avps: int, max_mscc: int) -> None:
    """Tight depth / AVP-count / MSCC limits: the fast path never takes what the reference
    refuses with 5012."""
    _check(data, Limits(max_depth=depth, max_avps=max_avps, max_mscc=max_mscc))


def test_event_and_proxy_info_are_not_ours() -> None:
    """CCR-EVENT and a CCR with Proxy-Info go to the reference path."""
    sub = w.grouped(443, w.u32(450, 0), w.utf8(444, "336"))
    assert fast_decode(w.ccr(sub), Limits()) is not None
    assert fast_decode(w.ccr(sub, req_type=4), Limits()) is None
    proxy = w.grouped(284, w.utf8(280, "p"), w.utf8(33, "s"))
    assert fast_decode(w.ccr(sub, proxy), Limits()) is None


def test_huge_cc_money_exponent_is_not_ours() -> None:
    """A CC-Money Exponent near 2**31 is declined (10**exponent would stall the process)."""
    money = w.grouped(413, w.grouped(445, w.u64(447, 1), w.u32(429, 2**31 - 1)))
    mscc = w.grouped(456, w.u32(432, 1), w.grouped(446, money))
    sub = w.grouped(443, w.u32(450, 0), w.utf8(444, "336"))
    assert fast_decode(w.ccr(sub, mscc, req_type=2), DEFAULT) is None
    small = w.grouped(413, w.grouped(445, w.u64(447, 15), w.u32(429, 2**32 - 2)))  # -2
    mscc = w.grouped(456, w.u32(432, 1), w.grouped(446, small))
    fast = fast_decode(w.ccr(sub, mscc, req_type=2), DEFAULT)
    assert fast is not None
    assert fast.request.services[0].used[0].usage.money == 150_000


def _ccr_u(*, req_type: int = 2, sub_type: int = 0, tcu: int = 1, exponent: int = -2) -> bytes:
    money = w.grouped(413, w.grouped(445, w.u64(447, 15), w.u32(429, exponent % 2**32)))
    usu = w.grouped(446, w.u64(421, 100), w.u32(452, tcu), money)
    mscc = w.grouped(456, w.u32(432, 1), w.grouped(437), usu)
    sub = w.grouped(443, w.u32(450, sub_type), w.utf8(444, "336"))
    return w.ccr(sub, mscc, req_type=req_type)


def test_known_layout_still_checks_every_value() -> None:
    """Same AVP headers as a message already read (its walk skipped), but a value the
    reference refuses or serves otherwise: declined (standards §1.6 5004, §2.7 events)."""
    fast_decode(_ccr_u(), DEFAULT)
    good = fast_decode(_ccr_u(), DEFAULT)  # its layout is now known
    assert good is not None
    assert good.request.services[0].used[0].usage.money == 150_000
    event = _ccr_u(req_type=4)  # CCR-EVENT: the reference serves it, not the fast path
    assert fast_decode(event, DEFAULT) is None
    assert _reference(event).request_type is CcRequestType.EVENT  # type: ignore[union-attr]
    refused = [
        _ccr_u(sub_type=5),  # Subscription-Id-Type out of range
        _ccr_u(tcu=3),  # Tariff-Change-Usage out of range
        _ccr_u(exponent=2**31 - 1),  # Exponent that would stall the process
    ]
    for data in refused:
        assert len(data) == len(_ccr_u())
        assert fast_decode(data, DEFAULT) is None
        assert _reference(data) in ("problem", "reject")  # 5004 from decode or the mapping
    session = bytearray(_ccr_u())
    at = session.index(b"gw;1;1")
    session[at : at + 2] = b"\xff\xfe"  # same length, not UTF-8
    assert fast_decode(bytes(session), DEFAULT) is None
    assert _reference(bytes(session)) == "problem"


def test_known_layout_is_per_limits() -> None:
    """A layout learnt under loose limits is not reused under tighter ones (5012 there)."""
    data = _ccr_u()
    assert fast_decode(data, DEFAULT) is not None
    assert fast_decode(data, DEFAULT) is not None
    tight = Limits(max_depth=2)
    assert fast_decode(data, tight) is None
    assert _reference(data, tight) == "problem"
