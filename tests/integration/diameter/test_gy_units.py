"""Gy requests in a unit the service is not rated in, over real TCP.

What is charged and what is recorded must agree: a Requested- or
Used-Service-Unit that carries no quantity in the service's rated unit is
refused with RATING_FAILED (5031, standards §2.8), changing nothing, instead of
being charged as one unit (events) or as nothing (session reports).
"""

from __future__ import annotations

import uuid

from diameter.message.avp.grouped import CcMoney, UnitValue

from ocs.accounts import Accounts
from ocs.charging.api import ChargingService
from ocs.charging.records import ChargedRecord, decode_record
from tests.core_fixtures import NewAccount
from tests.integration.diameter.gy_client import GyClient, failed_codes, mscc, rsu, usu

VOICE, SMS = 30, 40  # rated in seconds / in events (tests/policies/test.yaml)
RATING_FAILED = 5031
AVP_SERVICE_CONTEXT_ID = 461
AVP_MSCC, AVP_RATING_GROUP = 456, 432


def sid() -> str:
    return f"gw.test.example;{uuid.uuid4().hex}"


async def money(accounts: Accounts, account_id: str) -> int:
    view = await accounts.show(account_id)
    return sum(b["amount"] for b in view["buckets"] if b["unit"] == "money")


async def records(charging: ChargingService, account_id: str) -> list[ChargedRecord]:
    entries = await charging.redis.xrange(charging.store.keys(account_id).records)
    found = (decode_record(fields[b"r"]) for _, fields in entries)
    return [r for r in found if r.account == account_id]


async def test_event_in_service_specific_units_on_a_time_service_is_refused(
    gy: GyClient, accounts: Accounts, charging: ChargingService, new_account: NewAccount
) -> None:
    """EVENT, voice (seconds) asked in 120 service-specific units: MSCC 5031, nothing charged."""
    acct = await new_account(money=10_000)
    cca = await gy.call(
        gy.ccr(
            sid(),
            4,
            0,
            acct.identity.value,
            [mscc(VOICE, rsu(cc_service_specific_units=120))],
            requested_action=0,
        )
    )
    (answer,) = cca.multiple_services_credit_control
    assert answer.result_code == RATING_FAILED
    assert answer.granted_service_unit is None
    assert await money(accounts, acct.account_id) == 10_000
    assert await records(charging, acct.account_id) == []


async def test_event_mscc_5031_names_its_mscc_in_failed_avp(
    gy: GyClient, new_account: NewAccount
) -> None:
    """EVENT with MSCC refused 5031: Failed-AVP holds MSCC{Rating-Group} (standards §2.8),
    as a session's 5031 MSCC does."""
    acct = await new_account(money=10_000)
    cca = await gy.call(
        gy.ccr(
            sid(),
            4,
            0,
            acct.identity.value,
            [mscc(VOICE, rsu(cc_service_specific_units=120))],
            requested_action=0,
        )
    )
    assert cca.result_code == 2001
    assert cca.multiple_services_credit_control[0].result_code == RATING_FAILED
    assert failed_codes(cca.raw) == [AVP_MSCC, AVP_RATING_GROUP]


async def test_command_level_event_in_a_foreign_unit_is_refused_with_failed_avp(
    gy: GyClient, accounts: Accounts, charging: ChargingService, new_account: NewAccount
) -> None:
    """EVENT without MSCC, default service (octets) asked in events: 5031 + Failed-AVP."""
    acct = await new_account(money=10_000)
    ccr = gy.ccr(
        sid(),
        4,
        0,
        acct.identity.value,
        requested_action=0,
        requested_service_unit=rsu(cc_service_specific_units=120),
    )
    cca = await gy.call(ccr)
    assert cca.result_code == RATING_FAILED
    failed = [a.code for f in cca.failed_avp for a in f.additional_avps]
    assert failed == [AVP_SERVICE_CONTEXT_ID]  # standards §2.8: 5031 needs a Failed-AVP
    assert await money(accounts, acct.account_id) == 10_000
    assert await records(charging, acct.account_id) == []


async def test_event_in_the_rated_unit_charges_what_it_records(
    gy: GyClient, accounts: Accounts, charging: ChargingService, new_account: NewAccount
) -> None:
    """EVENT, voice asked in 120 s: GSU 120 s, the debit equals the record's charge of 120 s."""
    acct = await new_account(money=10_000)
    cca = await gy.call(
        gy.ccr(
            sid(),
            4,
            0,
            acct.identity.value,
            [mscc(VOICE, rsu(cc_time=120))],
            requested_action=0,
        )
    )
    (answer,) = cca.multiple_services_credit_control
    assert answer.result_code == 2001
    assert answer.granted_service_unit.cc_time == 120
    (record,) = await records(charging, acct.account_id)
    (service,) = record.services
    assert service.used == {"seconds": 120}
    # test policy: first 60 s for 600, then 10 per second
    assert record.charged == service.charged == 600 + 60 * 10
    assert await money(accounts, acct.account_id) == 10_000 - record.charged


async def test_session_report_in_a_foreign_unit_is_refused_not_recorded_free(
    gy: GyClient, accounts: Accounts, charging: ChargingService, new_account: NewAccount
) -> None:
    """CCR-U reporting voice (seconds) only in service-specific units: MSCC 5031, not free usage."""
    acct = await new_account(money=10_000)
    session = sid()
    msisdn = acct.identity.value
    opened = await gy.call(gy.ccr(session, 1, 0, msisdn, [mscc(VOICE, rsu(cc_time=60))]))
    assert opened.multiple_services_credit_control[0].result_code == 2001
    update = await gy.call(
        gy.ccr(session, 2, 1, msisdn, [mscc(VOICE, rsu(), [usu(cc_service_specific_units=120)])])
    )
    assert update.multiple_services_credit_control[0].result_code == RATING_FAILED
    closed = await gy.call(gy.ccr(session, 3, 2, msisdn, [mscc(VOICE, None, [usu(cc_time=30)])]))
    assert closed.result_code == 2001
    (record,) = await records(charging, acct.account_id)
    (service,) = record.services
    assert service.used == {"seconds": 30}  # never "events": 120 charged nothing
    assert await money(accounts, acct.account_id) == 10_000 - record.charged


async def test_refund_of_negative_money_is_refused(
    gy: GyClient, accounts: Accounts, charging: ChargingService, new_account: NewAccount
) -> None:
    """REFUND_ACCOUNT of CC-Money -5.00 (Value-Digits is signed) would debit: refused, 5031."""
    acct = await new_account(money=10_000)
    negative = CcMoney(unit_value=UnitValue(value_digits=-500, exponent=-2))
    cca = await gy.call(
        gy.ccr(
            sid(),
            4,
            0,
            acct.identity.value,
            [mscc(SMS, rsu(cc_money=negative))],
            requested_action=1,
        )
    )
    assert cca.multiple_services_credit_control[0].result_code == RATING_FAILED
    assert await money(accounts, acct.account_id) == 10_000
    assert await records(charging, acct.account_id) == []
