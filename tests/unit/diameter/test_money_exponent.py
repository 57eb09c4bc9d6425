"""A CC-Money Exponent out of range is refused at once (5004), never computed."""

from __future__ import annotations

import pytest

from protocols.diameter import avps as A
from protocols.diameter.constants import AvpCode, ResultCode
from protocols.diameter.gy_parse import GyReject, money_of


def unit_value(digits: int, exponent: int) -> list:  # type: ignore[type-arg]
    return [
        A.group(
            AvpCode.UNIT_VALUE,
            [A.new(AvpCode.VALUE_DIGITS, digits), A.new(AvpCode.EXPONENT, exponent)],
        )
    ]


def test_huge_exponent_is_5004_with_the_avp() -> None:
    """Exponent 2^31-1 (standards §1.8: bad input gets an answer, the server keeps serving)."""
    with pytest.raises(GyReject) as info:
        money_of(unit_value(1, 2**31 - 1))
    assert info.value.problem.result_code == ResultCode.INVALID_AVP_VALUE
    assert [a.code for a in info.value.problem.failed_avps] == [AvpCode.EXPONENT]


@pytest.mark.parametrize(
    ("digits", "exponent", "micro"),
    [
        (125, -2, 1_250_000),
        (3, 0, 3_000_000),
        (7, -7, 0),
        (-15, -7, -1),
        (1, 24, 10**30),
    ],
)
def test_money_in_range(digits: int, exponent: int, micro: int) -> None:
    """Value-Digits x 10^Exponent in micro-units, truncated toward zero."""
    assert money_of(unit_value(digits, exponent)) == micro
