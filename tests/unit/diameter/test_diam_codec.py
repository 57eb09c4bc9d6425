"""The guarded decoder turns every malformed input into the right Result-Code and Failed-AVP.

standards §1.6 (result-code table), §1.8 (bad input), §2.9 (Gy bad input).
"""

from __future__ import annotations

import struct

import pytest
from diameter.message.avp import AvpGrouped

from protocols.diameter.codec import decode
from protocols.diameter.constants import ResultCode as RC
from protocols.diameter.message import Limits
from tests.unit.diameter.diam_wire import M, V, avp, ccr, cer, grouped, message, u32, u64, utf8

MSCC = 456


def _failed_chain(avp_obj: object) -> list[int]:
    """Codes along the first-child chain of a Failed-AVP entry."""
    chain = []
    while True:
        chain.append(avp_obj.code)  # type: ignore[attr-defined]
        if not isinstance(avp_obj, AvpGrouped) or not avp_obj.value:
            return chain
        avp_obj = avp_obj.value[0]


def test_valid_ccr_has_no_problem() -> None:
    """A well-formed CCR decodes with no problem and keeps AVP order."""
    d = decode(ccr(grouped(MSCC, u32(432, 10), grouped(437))))
    assert d.problem is None
    assert [a.code for a in d.avps][:2] == [263, 264]
    assert d.header.command_code == 272
    assert d.header.is_request


CASES = [
    # (scenario, bytes, result code, failed-AVP chain or None)
    ("5011 version 2", message(280, version=2), RC.UNSUPPORTED_VERSION, None),
    ("3008 E bit in a request", message(280, flags=0xA0), RC.INVALID_HDR_BITS, None),
    ("3008 P bit on DWR", message(280, flags=0xC0), RC.INVALID_HDR_BITS, None),
    ("3007 unknown application", message(272, app=16777238), RC.APPLICATION_UNSUPPORTED, None),
    ("3001 ACR on app 4", message(271, app=4), RC.COMMAND_UNSUPPORTED, None),
    ("3001 RAR sent to the server", message(258, app=4), RC.COMMAND_UNSUPPORTED, None),
    ("5001 unknown M-bit AVP", ccr(utf8(99999, "x")), RC.AVP_UNSUPPORTED, [99999]),
    (
        "5001 unknown M-bit AVP inside MSCC",
        ccr(grouped(MSCC, u32(432, 1), utf8(99999, "x"))),
        RC.AVP_UNSUPPORTED,
        [MSCC, 99999],
    ),
    (
        "5001 unknown M-bit AVP inside USU inside MSCC",
        ccr(grouped(MSCC, grouped(446, u32(99998, 1)))),
        RC.AVP_UNSUPPORTED,
        [MSCC, 446, 99998],
    ),
    ("5004 CC-Request-Type 0", ccr(u32(416, 0), req_type=None), RC.INVALID_AVP_VALUE, [416]),
    ("5004 CC-Request-Type 5", ccr(u32(416, 5), req_type=None), RC.INVALID_AVP_VALUE, [416]),
    (
        "5004 bad UTF-8 in Service-Context-Id",
        ccr(utf8(461, b"\xff\xfe"), context=None),
        RC.INVALID_AVP_VALUE,
        [461],
    ),
    (
        "5004 Subscription-Id-Type 9",
        ccr(grouped(443, u32(450, 9), utf8(444, "1"))),
        RC.INVALID_AVP_VALUE,
        [443, 450],
    ),
    ("5005 missing Service-Context-Id", ccr(context=None), RC.MISSING_AVP, [461]),
    ("5005 missing CC-Request-Number", ccr(number=None), RC.MISSING_AVP, [415]),
    (
        "5005 loadtest_cc shape: no type, no context",
        ccr(req_type=None, context=None),
        RC.MISSING_AVP,
        None,
    ),
    (
        "5005 Subscription-Id without data",
        ccr(grouped(443, u32(450, 0))),
        RC.MISSING_AVP,
        [443, 444],
    ),
    ("5008 Result-Code in a CCR", ccr(u32(268, 2001)), RC.AVP_NOT_ALLOWED, [268]),
    (
        "5008 GSU at CCR command level",
        ccr(grouped(431, u32(420, 1))),
        RC.AVP_NOT_ALLOWED,
        [431, 420],
    ),
    ("5009 CC-Request-Number twice", ccr(u32(415, 1)), RC.AVP_OCCURS_TOO_MANY_TIMES, [415]),
    (
        "5009 two Rating-Groups in one MSCC",
        ccr(grouped(MSCC, u32(432, 1), u32(432, 2))),
        RC.AVP_OCCURS_TOO_MANY_TIMES,
        [MSCC, 432],
    ),
    ("5014 Unsigned32 with 8 octets", ccr(avp(432, bytes(8))), RC.INVALID_AVP_LENGTH, [432]),
    ("5014 AVP length < 8", ccr(avp(432, bytes(4), length=6)), RC.INVALID_AVP_LENGTH, [432]),
    ("5014 AVP length past the end", ccr(avp(1, b"abcd", length=400)), RC.INVALID_AVP_LENGTH, [1]),
    (
        "5014 grouped children do not add up",
        ccr(avp(MSCC, u32(432, 1) + struct.pack(">II", 420, (M << 24) | 40))),
        RC.INVALID_AVP_LENGTH,
        [MSCC, 420],
    ),
    (
        "3009 V bit with vendor 0",
        ccr(avp(872, bytes(4), flags=V | M, vendor=0)),
        RC.INVALID_AVP_BITS,
        [872],
    ),
    ("5015 length field != octets", message(280, length=24), RC.INVALID_MESSAGE_LENGTH, None),
]


@pytest.mark.parametrize(("scenario", "data", "code", "chain"), CASES, ids=[c[0] for c in CASES])
def test_error_table(scenario: str, data: bytes, code: RC, chain: list[int] | None) -> None:
    """standards §1.6 / §1.8 / §2.9: each row gets its Result-Code and Failed-AVP."""
    d = decode(data)
    assert d.problem is not None, scenario
    assert d.problem.result_code == code
    if chain is not None:
        assert len(d.problem.failed_avps) == 1
        assert _failed_chain(d.problem.failed_avps[0]) == chain


def test_missing_avp_sample_is_zero_filled() -> None:
    """standards §1.6 5005: Failed-AVP is a sample with a zero-filled minimum payload."""
    d = decode(ccr(number=None))
    assert d.problem is not None
    sample = d.problem.failed_avps[0]
    assert (sample.code, sample.payload, sample.is_mandatory) == (415, bytes(4), True)


def test_invalid_length_sample_keeps_header_and_zero_payload() -> None:
    """standards §1.6 5014: header + zero-filled minimum payload."""
    d = decode(ccr(avp(421, bytes(3))))
    assert d.problem is not None
    sample = d.problem.failed_avps[0]
    assert (sample.code, sample.payload) == (421, bytes(8))


def test_nested_group_bomb_is_5012() -> None:
    """standards §1.8: nested grouped bomb -> bounded depth -> 5012, no recursion error."""
    inner = u32(432, 1)
    for _ in range(200):
        inner = grouped(MSCC, inner)
    d = decode(ccr(inner))
    assert d.problem is not None
    assert d.problem.result_code == RC.UNABLE_TO_COMPLY


def test_avp_count_limit_is_5012() -> None:
    """standards §1.8: bounded AVP count -> 5012."""
    d = decode(ccr(*[utf8(1, "u", flags=0)] * 50), Limits(max_avps=40))
    assert d.problem is not None
    assert d.problem.result_code == RC.UNABLE_TO_COMPLY


def test_mscc_count_limit_is_5012() -> None:
    """standards §2.9: thousands of MSCCs are capped -> 5012."""
    d = decode(ccr(*[grouped(MSCC, u32(432, i)) for i in range(70)]), Limits(max_mscc=64))
    assert d.problem is not None
    assert d.problem.result_code == RC.UNABLE_TO_COMPLY


def test_unknown_avp_without_m_bit_is_ignored() -> None:
    """standards §1.6: unknown AVPs with M = 0 are ignored."""
    d = decode(ccr(utf8(99999, "x", flags=0), grouped(MSCC, u32(99998, 1, flags=0))))
    assert d.problem is None


def test_unknown_group_with_m0_is_ignored_even_with_m_children() -> None:
    """standards §1.6: an unrecognised grouped AVP with M = 0 may be ignored."""
    d = decode(ccr(grouped(99997, u32(99996, 1), flags=0)))
    assert d.problem is None


def test_nonzero_padding_is_accepted() -> None:
    """standards §1.8: non-zero padding is accepted."""
    good = utf8(1, "abc", flags=0)
    bad_pad = good[:-1] + b"\x7f"
    assert decode(ccr(bad_pad)).problem is None


def test_vendor_avps_and_3gpp_in_usu() -> None:
    """3GPP Reporting-Reason (V, vendor 10415) inside a USU decodes cleanly."""
    usu = grouped(446, u32(420, 5), u32(872, 3, flags=V | M, vendor=10415))
    d = decode(ccr(grouped(MSCC, u32(432, 1), usu)))
    assert d.problem is None


def test_answers_are_not_checked_for_unknown_m_bits() -> None:
    """An answer is never answered: its unknown AVPs are not our 5001."""
    raa = message(258, utf8(263, "s"), u32(268, 2001), utf8(99999, "x"), app=4, flags=0x40)
    d = decode(raa)
    assert d.problem is None
    assert not d.header.is_request


def test_valid_cer_decodes() -> None:
    """A CER with Product-Name M=0 and a VSAI decodes with no problem."""
    vsai = grouped(260, u32(266, 10415), u32(258, 4))
    assert decode(cer(vsai)).problem is None


def test_short_input_is_5015_not_an_exception() -> None:
    """decode() is total: fewer than 20 octets still give a Problem."""
    d = decode(b"\x01\x00")
    assert d.problem is not None
    assert d.problem.result_code == RC.INVALID_MESSAGE_LENGTH


def test_u64_value() -> None:
    """CC-Total-Octets keeps 64-bit values."""
    d = decode(ccr(grouped(MSCC, grouped(446, u64(421, 2**63 + 5)))))
    assert d.problem is None


def test_unknown_m_bit_inside_carried_3gpp_group_is_tolerated() -> None:
    """Unknown M-bit AVP inside Service-Information (carried, never read): accepted;
    with strict_mbit it is 5001 like everywhere else."""
    service_info = grouped(
        873,
        grouped(874, u32(99990, 1, flags=V | M, vendor=10415), flags=V | M, vendor=10415),
        flags=V | M,
        vendor=10415,
    )
    assert decode(ccr(service_info)).problem is None
    strict = decode(ccr(service_info), Limits(strict_mbit=True))
    assert strict.problem is not None
    assert strict.problem.result_code == RC.AVP_UNSUPPORTED
    assert _failed_chain(strict.problem.failed_avps[0]) == [873, 874, 99990]
