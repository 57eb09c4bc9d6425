"""CCR -> charging request and outcome -> CCA AVPs, without sockets (RFC 4006, TS 32.299)."""

from __future__ import annotations

import datetime

import pytest
from diameter.message.avp import Avp

from ocs.vocabulary.types import (
    EventAction,
    FinalUnit,
    FinalUnitAction,
    Identity,
    IdentityType,
    ServiceKey,
    ServiceOutcome,
    ServiceStatus,
    TariffChange,
    Usage,
)
from protocols.diameter import gy_answer
from protocols.diameter.codec import decode
from protocols.diameter.constants import CcRequestType, ResultCode
from protocols.diameter.fastpath import fast_decode
from protocols.diameter.gy_parse import GyReject, parse_ccr
from protocols.diameter.gy_request import Served
from protocols.diameter.message import Limits
from protocols.diameter.result_codes import SERVICE_STATUS
from tests.unit.diameter.diam_wire import V, avp, ccr, grouped, u32, u64, utf8

MSCC, RSU, USU = 456, 437, 446
SERVED = Served.of("ocs.test.example", "test.example", check=False)


def sub(kind: int, data: str) -> bytes:
    return grouped(443, u32(450, kind), utf8(444, data))


def parse(*extra: bytes, **kw: object):  # type: ignore[no-untyped-def]
    msg = decode(ccr(*extra, **kw))  # type: ignore[arg-type]
    assert msg.problem is None, msg.problem
    return parse_ccr(msg, SERVED)


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        (0, IdentityType.E164),
        (1, IdentityType.IMSI),
        (2, IdentityType.SIP_URI),
        (3, IdentityType.NAI),
        (4, IdentityType.PRIVATE),
    ],
)
def test_subscription_id_types(kind: int, expected: IdentityType) -> None:
    """Subscription-Id-Type E164/IMSI/SIP_URI/NAI/PRIVATE -> Identity."""
    req = parse(sub(kind, "abc"))
    assert req.subscribers == (Identity(expected, "abc"),)


def test_mscc_services_with_reporting_reason_and_tariff_change() -> None:
    """Per-MSCC RG/SI, RSU units, USU with Tariff-Change-Usage and 3GPP Reporting-Reason."""
    usu_before = grouped(USU, u64(421, 700), u32(452, 0), u32(872, 3, flags=V | 0x40, vendor=10415))
    usu_after = grouped(USU, u64(421, 300), u32(452, 1))
    m1 = grouped(
        MSCC,
        u32(432, 10),
        u32(439, 7),
        grouped(RSU, u64(421, 5000)),
        usu_before,
        usu_after,
        u32(872, 4, flags=V | 0x40, vendor=10415),
    )
    m2 = grouped(MSCC, u32(432, 30), grouped(RSU))
    req = parse(sub(0, "336"), m1, m2, req_type=2, number=3)
    assert req.request_type is CcRequestType.UPDATE and req.request_key == "3"
    assert req.multiple_services
    s1, s2 = req.services
    assert s1.service == ServiceKey(10, 7) and s1.requested == Usage(total_octets=5000)
    assert [u.tariff_change for u in s1.used] == [TariffChange.BEFORE, TariffChange.AFTER]
    assert s1.used[0].usage == Usage(total_octets=700) and s1.used[0].reporting_reasons == (3, 4)
    assert (
        s2.service == ServiceKey(30, None) and s2.requested == Usage()
    )  # empty RSU = default grant


def test_open5gs_single_mscc_without_rating_group() -> None:
    """One MSCC, empty RSU, no Rating-Group -> ServiceKey(None, None)."""
    req = parse(sub(0, "1"), grouped(MSCC, grouped(RSU)))
    assert req.services[0].service == ServiceKey() and req.services[0].requested == Usage()


def test_command_level_units_without_mscc() -> None:
    """No MSCC: command-level RSU/USU form one service (MSI absent)."""
    req = parse(
        sub(0, "1"), grouped(RSU, u32(420, 60)), grouped(USU, u32(420, 30)), req_type=2, number=1
    )
    assert not req.multiple_services
    (svc,) = req.services
    assert svc.requested == Usage(seconds=60) and svc.used[0].usage == Usage(seconds=30)


def test_ccr_i_without_units_asks_default_grant_and_ccr_t_without_usage_is_empty() -> None:
    """CCR-I naming nothing asks the default grant; a bare CCR-T reports nothing."""
    assert parse(sub(0, "1")).services[0].requested == Usage()
    assert parse(req_type=3, number=2).services == ()


def test_cc_money_in_micro_units() -> None:
    """CC-Money Unit-Value{Value-Digits, Exponent} -> micro-units."""
    money = grouped(413, grouped(445, u64(447, 125), u32(429, (-2) & 0xFFFFFFFF)))
    req = parse(sub(0, "1"), grouped(MSCC, u32(432, 10), grouped(USU, money)), req_type=2, number=1)
    assert req.services[0].used[0].usage == Usage(money=1_250_000)


def test_event_requested_action_and_event_id() -> None:
    """CCR-EVENT: Requested-Action and event id = Session-Id;CC-Request-Number."""
    req = parse(sub(0, "1"), u32(436, 1), req_type=4, session="s;9")
    assert req.requested_action is EventAction.REFUND and req.event_id == "s;9;0"


def test_service_context_suffix_match() -> None:
    """standards §2.5: `ext.MNC.MCC.release.32251@3gpp.org` matches on the suffix."""
    assert parse(sub(0, "1"), context="10.01.234.8.32251@3gpp.org").session_id


def test_unknown_context_is_5031_with_failed_avp() -> None:
    """standards §2.5: an unknown Service-Context-Id -> 5031 naming it."""
    with pytest.raises(GyReject) as rej:
        parse(sub(0, "1"), context="32260@3gpp.org")
    assert rej.value.problem.result_code is ResultCode.RATING_FAILED
    assert rej.value.problem.failed_avps[0].code == 461


def test_initial_without_subscriber_is_5005() -> None:
    """A CCR-I with neither Subscription-Id nor User-Name -> 5005 with a sample Subscription-Id."""
    with pytest.raises(GyReject) as rej:
        parse()
    assert rej.value.problem.result_code is ResultCode.MISSING_AVP


def test_one_table_covers_every_status() -> None:
    """Every ServiceStatus has exactly one Result-Code."""
    assert set(SERVICE_STATUS) == set(ServiceStatus)


def _codes(group: Avp) -> list[tuple[int, int]]:
    return [(a.code, a.vendor_id) for a in group.value]


def test_mscc_answer_units_fui_redirect_and_3gpp_gating() -> None:
    """GSU units, Tariff-Time-Change, Validity-Time, FUI REDIRECT, Result-Code; 3GPP only if allowed."""
    outcome = ServiceOutcome(
        ServiceKey(10),
        ServiceStatus.GRANTED,
        granted=Usage(total_octets=1000, seconds=60, input_octets=1, output_octets=2, events=3),
        validity_time=600,
        volume_threshold=200,
        time_threshold=10,
        quota_holding_time=30,
        final_unit=FinalUnit(FinalUnitAction.REDIRECT, redirect_url="http://t/"),
        tariff_time_change=1_800_000_000,
    )
    with_3gpp = gy_answer.mscc(outcome, tgpp=True)
    assert (869, 10415) in _codes(with_3gpp) and (871, 10415) in _codes(with_3gpp)
    plain = gy_answer.mscc(outcome, tgpp=False)
    assert all(v == 0 for _, v in _codes(plain))
    gsu = next(a for a in plain.value if a.code == 431)
    assert {a.code for a in gsu.value} == {420, 421, 412, 414, 417, 451}
    ttc = next(a for a in gsu.value if a.code == 451)
    assert ttc.value == datetime.datetime.fromtimestamp(1_800_000_000)
    fui = next(a for a in plain.value if a.code == 430)
    assert [a.code for a in fui.value] == [449, 434]
    assert next(a for a in plain.value if a.code == 268).value == 2001


def test_restrict_access_fui_and_failure_codes() -> None:
    """FUI RESTRICT_ACCESS carries its filters; a 4012 MSCC has a Result-Code and no GSU."""
    fu = FinalUnit(
        FinalUnitAction.RESTRICT_ACCESS,
        filter_ids=("f1",),
        restriction_rules=("permit out ip from any to 10.0.0.1",),
    )
    fui = gy_answer.final_unit_indication(fu)
    assert [a.code for a in fui.value] == [449, 438, 11]
    limited = gy_answer.mscc(
        ServiceOutcome(ServiceKey(30), ServiceStatus.CREDIT_LIMIT_REACHED), tgpp=True
    )
    assert [(a.code, a.value) for a in limited.value] == [(432, 30), (268, 4012)]


def test_u64_grant_saturates() -> None:
    """A grant above the AVP's range is capped, never wrapped."""
    gsu = gy_answer.gsu(Usage(total_octets=2**70, seconds=2**40))
    values = {a.code: a.value for a in gsu.value}
    assert values[421] == 2**64 - 1 and values[420] == 2**32 - 1


def test_avp_helper_roundtrip() -> None:
    """Sanity: a 5014-sized CC-Time is refused before mapping (guarded decoder first)."""
    assert decode(ccr(grouped(MSCC, avp(420, bytes(2))))).problem is not None


@pytest.mark.parametrize("uri", ["sip:alice@example.net", "SIP:alice@example.net"])
def test_sip_uri_subscriber_is_the_operators_sip_identity(uri: str) -> None:
    """END_USER_SIP_URI carries the whole URI: its key is the one ``ocs account create -i
    sip:alice@example.net`` stores (not ``sip:sip:...``), on both decoders."""
    operator = Identity.parse("sip:alice@example.net")
    assert operator.key() == "sip:alice@example.net"
    assert parse(sub(2, uri)).subscribers == (operator,)
    fast = fast_decode(ccr(sub(2, uri)), Limits())
    assert fast is not None and fast.request.subscribers == (operator,)
