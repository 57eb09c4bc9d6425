"""Gy sessions over real TCP against the real charging core and Redis (standards §2.5-§2.8)."""

from __future__ import annotations

import asyncio
import sys
import uuid
from pathlib import Path

from diameter.message.avp.grouped import SubscriptionId
from diameter.message.commands.credit_control import CreditControlRequest
from diameter.message.constants import E_SUBSCRIPTION_ID_TYPE_END_USER_SIP_URI
from prometheus_client import REGISTRY

from ocs.accounts import Accounts, BucketSpec
from ocs.vocabulary.types import Identity, UnitType
from tests.core_fixtures import NewAccount
from tests.integration.diameter.conftest import NewClient, StartServer
from tests.integration.diameter.gy_client import GyClient, mscc, plain, result_of, rsu, usu

DATA, VOICE, SMS = 10, 30, 40
ROOT = Path(__file__).parents[3]


def sid() -> str:
    return f"gw.test.example;{uuid.uuid4().hex}"


async def money(accounts: Accounts, account_id: str) -> tuple[int, int]:
    view = await accounts.show(account_id)
    main = [b for b in view["buckets"] if b["unit"] == "money"]
    return sum(b["amount"] for b in main), sum(b["reserved"] for b in main)


async def test_full_session_two_rating_groups(
    gy: GyClient, accounts: Accounts, new_account: NewAccount
) -> None:
    """CCR-I/U/T with two rating groups: per-MSCC grants, exact debit, nothing left reserved."""
    acct = await new_account(money=1_000_000)
    s = sid()
    a = await gy.call(gy.ccr(s, 1, 0, acct.identity.value, [mscc(DATA, rsu()), mscc(VOICE, rsu())]))
    assert (a.result_code, a.cc_request_type, a.cc_request_number) == (2001, 1, 0)
    by_rg = {m.rating_group: m for m in a.multiple_services_credit_control}
    assert (
        by_rg[DATA].result_code == 2001
        and by_rg[DATA].granted_service_unit.cc_total_octets == 10_000
    )
    assert by_rg[VOICE].granted_service_unit.cc_time == 300
    assert by_rg[DATA].validity_time == 600
    assert by_rg[DATA].volume_quota_threshold == 2_000  # 3GPP AVP: the client advertised 10415
    assert (await money(accounts, acct.account_id))[1] > 0
    u = await gy.call(
        gy.ccr(
            s,
            2,
            1,
            None,
            [
                mscc(DATA, rsu(), [usu(cc_total_octets=5_000)]),
                mscc(VOICE, rsu(), [usu(cc_time=60)]),
            ],
        )
    )
    assert u.result_code == 2001 and all(
        m.result_code == 2001 for m in u.multiple_services_credit_control
    )
    t = await gy.call(
        gy.ccr(
            s,
            3,
            2,
            None,
            [mscc(DATA, None, [usu(cc_total_octets=1_000)]), mscc(VOICE, None, [usu(cc_time=30)])],
        )
    )
    assert t.result_code == 2001
    assert all(m.granted_service_unit is None for m in t.multiple_services_credit_control)
    # data 6,000 octets = 60; voice 90 s = 600 + 30 x 10 = 900
    assert await money(accounts, acct.account_id) == (1_000_000 - 60 - 900, 0)


async def test_mixed_2001_and_4012_in_one_cca(gy: GyClient, new_account: NewAccount) -> None:
    """One CCA mixes 2001 (data from a bundle) and 4012 (voice, no money) per MSCC (standards §2.8)."""
    acct = await new_account(money=0, buckets=[BucketSpec(UnitType.TOTAL_OCTETS, 50_000)])
    a = await gy.call(
        gy.ccr(sid(), 1, 0, acct.identity.value, [mscc(DATA, rsu()), mscc(VOICE, rsu())])
    )
    codes = {m.rating_group: m.result_code for m in a.multiple_services_credit_control}
    assert a.result_code == 2001 and codes == {DATA: 2001, VOICE: 4012}


async def test_open5gs_shape_uses_default_service(
    gy: GyClient, accounts: Accounts, new_account: NewAccount
) -> None:
    """One MSCC, empty RSU, no Rating-Group (Open5GS) is charged through the default service."""
    acct = await new_account()
    s = sid()
    a = await gy.call(gy.ccr(s, 1, 0, acct.identity.value, [mscc(None, rsu())]))
    (m,) = a.multiple_services_credit_control
    assert m.result_code == 2001 and m.granted_service_unit.cc_total_octets == 10_000
    await gy.call(gy.ccr(s, 3, 1, None, [mscc(None, None, [usu(cc_total_octets=1_000)])]))
    assert (await money(accounts, acct.account_id))[0] == 1_000_000 - 10


async def test_command_level_rsu_without_msi(gy: GyClient, new_account: NewAccount) -> None:
    """No MSCC: command-level RSU gets a command-level GSU and Result-Code (standards §2.5)."""
    acct = await new_account()
    ccr = gy.ccr(sid(), 1, 0, acct.identity.value)
    ccr.requested_service_unit = rsu()
    a = await gy.call(ccr)
    assert a.result_code == 2001 and a.granted_service_unit.cc_total_octets == 10_000
    assert not a.multiple_services_credit_control


async def test_fui_terminate_then_ccr_t(
    gy: GyClient, accounts: Accounts, new_account: NewAccount
) -> None:
    """A voice grant cut short by the balance carries FUI TERMINATE; the client ends with CCR-T."""
    acct = await new_account(money=1_000)
    s = sid()
    a = await gy.call(gy.ccr(s, 1, 0, acct.identity.value, [mscc(VOICE, rsu())]))
    (m,) = a.multiple_services_credit_control
    assert m.result_code == 2001 and m.final_unit_indication.final_unit_action == 0
    assert 0 < m.granted_service_unit.cc_time < 300
    t = await gy.call(
        gy.ccr(s, 3, 1, None, [mscc(VOICE, None, [usu(cc_time=m.granted_service_unit.cc_time)])])
    )
    assert t.result_code == 2001
    assert (await money(accounts, acct.account_id))[1] == 0


async def test_fui_redirect_then_topup_rar_and_new_grant(
    gy: GyClient, accounts: Accounts, new_account: NewAccount
) -> None:
    """FUI REDIRECT, final units used (debit, no GSU, Validity-Time), top-up -> RAR -> CCR-U -> grant."""
    acct = await new_account(money=55)
    s = sid()
    a = await gy.call(gy.ccr(s, 1, 0, acct.identity.value, [mscc(DATA, rsu())]))
    (m,) = a.multiple_services_credit_control
    fui = m.final_unit_indication
    assert (
        fui.final_unit_action == 1
        and fui.redirect_server.redirect_server_address == "http://topup.test/"
    )
    # final units used up: USU, no rating AVPs -> debit, reserve nothing, Validity-Time only
    u = await gy.call(gy.ccr(s, 2, 1, None, [mscc(DATA, None, [usu(cc_total_octets=5_000)])]))
    (m,) = u.multiple_services_credit_control
    assert m.granted_service_unit is None and m.validity_time is not None
    # Validity-Time over, still no credit: a CCR-U without USU gets 4012 (standards §2.6)
    e = await gy.call(gy.ccr(s, 2, 2, None, [mscc(DATA, rsu())]))
    assert e.multiple_services_credit_control[0].result_code == 4012
    await accounts.credit(acct.account_id, BucketSpec(UnitType.MONEY, 0), 1_000_000)
    await asyncio.wait_for(gy.server_request_event.wait(), 5.0)
    rar = gy.server_requests[-1]
    assert rar.header.command_code == 258 and rar.session_id == s and rar.re_auth_request_type == 0
    g = await gy.call(gy.ccr(s, 2, 3, None, [mscc(DATA, rsu())]))
    (m,) = g.multiple_services_credit_control
    assert m.result_code == 2001 and m.granted_service_unit.cc_total_octets == 10_000


async def test_block_sends_asr(gy: GyClient, accounts: Accounts, new_account: NewAccount) -> None:
    """Blocking an account sends ASR (274) to the peer owning its session; then 4010 on CCR-U."""
    acct = await new_account()
    s = sid()
    await gy.call(gy.ccr(s, 1, 0, acct.identity.value, [mscc(DATA, rsu())]))
    gy.server_request_event.clear()
    await accounts.set_status(acct.account_id, "blocked")
    await asyncio.wait_for(gy.server_request_event.wait(), 2.0)
    asr = gy.server_requests[-1]
    assert asr.header.command_code == 274 and asr.session_id == s
    u = await gy.call(gy.ccr(s, 2, 1, None, [mscc(DATA, rsu(), [usu(cc_total_octets=100)])]))
    assert [m.result_code for m in u.multiple_services_credit_control] == [4010]
    # after ASR and ASA comes the CCR-T: usage debited, nothing left reserved
    t = await gy.call(gy.ccr(s, 3, 2, None, [mscc(DATA, None, [usu(cc_total_octets=100)])]))
    assert t.result_code == 2001
    amount, reserved = await money(accounts, acct.account_id)
    assert reserved == 0 and amount < 1_000_000


async def test_raa_5002_is_accepted(
    gy: GyClient, accounts: Accounts, new_account: NewAccount
) -> None:
    """The client answers our RAR with 5002 (no such session): handled, the peer stays open."""
    acct = await new_account(money=55)
    await gy.call(gy.ccr(sid(), 1, 0, acct.identity.value, [mscc(DATA, rsu())]))
    gy.push_result = 5002
    gy.server_request_event.clear()
    await accounts.credit(acct.account_id, BucketSpec(UnitType.MONEY, 0), 1_000)
    await asyncio.wait_for(gy.server_request_event.wait(), 2.0)
    assert (await gy.dwr()).result_code == 2001


async def test_events_each_action(
    gy: GyClient, accounts: Accounts, new_account: NewAccount
) -> None:
    """CCR-EVENT: DIRECT_DEBITING, REFUND_ACCOUNT, CHECK_BALANCE, PRICE_ENQUIRY (standards §2.7)."""
    acct = await new_account(money=10_000)
    msisdn = acct.identity.value

    async def event(action: int, number: int = 0) -> object:
        return await gy.call(
            gy.ccr(
                sid(),
                4,
                number,
                msisdn,
                [mscc(SMS, rsu(cc_service_specific_units=2))],
                requested_action=action,
            )
        )

    debit = await event(0)
    assert debit.result_code == 2001
    assert (
        debit.multiple_services_credit_control[0].granted_service_unit.cc_service_specific_units
        == 2
    )
    assert (await money(accounts, acct.account_id))[0] == 10_000 - 1_000
    refund = await event(1)
    assert refund.result_code == 2001
    assert (await money(accounts, acct.account_id))[0] == 10_000
    check = await gy.call(gy.ccr(sid(), 4, 0, msisdn, requested_action=2))
    assert check.result_code == 2001 and check.check_balance_result == 0
    price = await gy.call(
        gy.ccr(
            sid(),
            4,
            0,
            msisdn,
            requested_action=3,
            # the default service is rated in octets (a unit it is not rated
            # in gets 5031: test_gy_units.py)
            requested_service_unit=rsu(cc_total_octets=3_000),
            service_identifier=None,
        )
    )
    assert price.result_code == 2001 and price.cost_information is not None
    assert (await money(accounts, acct.account_id)) == (10_000, 0)


async def test_refund_is_idempotent(
    gy: GyClient, accounts: Accounts, new_account: NewAccount
) -> None:
    """standards §2.7: a repeated REFUND_ACCOUNT (same Session-Id and number) credits once."""
    acct = await new_account(money=10_000)
    ccr = gy.ccr(
        sid(),
        4,
        0,
        acct.identity.value,
        [mscc(SMS, rsu(cc_service_specific_units=1))],
        requested_action=1,
    )
    first = await gy.call(ccr)
    ccr.header.hop_by_hop_identifier = 0
    ccr.header.end_to_end_identifier = (
        0  # a new End-to-End id: only the core's idempotency catches it
    )
    second = await gy.call(ccr)
    assert first.result_code == second.result_code == 2001
    assert (await money(accounts, acct.account_id))[0] == 10_500


async def test_out_of_order_updates_are_answered(gy: GyClient, new_account: NewAccount) -> None:
    """standards §2.5: pipelined CCR-Us arriving out of order are each answered."""
    acct = await new_account()
    s = sid()
    await gy.call(gy.ccr(s, 1, 0, acct.identity.value, [mscc(DATA, rsu())]))
    u2 = gy.call(gy.ccr(s, 2, 2, None, [mscc(DATA, rsu(), [usu(cc_total_octets=10)])]))
    u1 = gy.call(gy.ccr(s, 2, 1, None, [mscc(DATA, rsu(), [usu(cc_total_octets=10)])]))
    a2, a1 = await asyncio.gather(u2, u1)
    assert (a1.cc_request_number, a2.cc_request_number) == (1, 2)
    assert {a1.result_code, a2.result_code} <= {2001, 5002}
    assert a1.result_code == 2001 or a2.result_code == 2001


async def test_ccr_right_after_cea(new_client, new_account: NewAccount) -> None:  # type: ignore[no-untyped-def]
    """A CCR written in the same packet as the CER is answered after the CEA."""
    acct = await new_account()
    c = await new_client(cer=False)
    from diameter.message.commands import CapabilitiesExchangeRequest

    cer = CapabilitiesExchangeRequest()
    cer.origin_host, cer.origin_realm = b"gw.test.example", b"test.example"
    cer.host_ip_address, cer.vendor_id, cer.product_name = ["127.0.0.1"], 0, "fast"
    cer.auth_application_id = [4]
    cer.header.hop_by_hop_identifier = cer.header.end_to_end_identifier = 1
    ccr = c.ccr(sid(), 1, 0, acct.identity.value, [mscc(DATA, rsu())])
    ccr.header.hop_by_hop_identifier = ccr.header.end_to_end_identifier = 2
    loop = asyncio.get_running_loop()
    futs = {h: loop.create_future() for h in (1, 2)}
    c._waiting.update(futs)
    c.write(cer.as_bytes() + ccr.as_bytes())
    cea, cca = await asyncio.wait_for(asyncio.gather(futs[1], futs[2]), 5)
    assert result_of(cea) == 2001 and result_of(cca) == 2001


async def test_cli_topup_reaches_gateway_as_rar(
    gy: GyClient, new_account: NewAccount, redis_url: str, tmp_path: Path
) -> None:
    """`ocs account topup` in another process -> RAR to the owning peer within one second."""
    acct = await new_account(money=55)
    s = sid()
    await gy.call(gy.ccr(s, 1, 0, acct.identity.value, [mscc(DATA, rsu())]))
    config = tmp_path / "ocs.yaml"
    config.write_text(
        f"redis: {{url: '{redis_url}'}}\npolicies: {{dir: '{ROOT / 'tests/policies'}'}}\n"
    )
    gy.server_request_event.clear()
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "ocs",
        "--config",
        str(config),
        "account",
        "topup",
        acct.identity.key(),
        "10.00",
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
    await asyncio.wait_for(gy.server_request_event.wait(), 1.0)  # the issue: within one second
    rar = gy.server_requests[-1]
    assert rar.header.command_code == 258 and rar.session_id == s
    g = await gy.call(gy.ccr(s, 2, 1, None, [mscc(DATA, rsu(), [usu(cc_total_octets=100)])]))
    assert g.multiple_services_credit_control[0].granted_service_unit.cc_total_octets == 10_000


async def test_metrics_count_requests_answers_and_latency(
    gy: GyClient, new_account: NewAccount
) -> None:
    """Prometheus: requests and answers per command / Result-Code, latency, peers, in flight."""
    acct = await new_account()

    def sample(name: str, **labels: str) -> float:
        return REGISTRY.get_sample_value(name, labels) or 0.0

    before = sample("ocs_diameter_answers_total", command="credit_control", result_code="2001")
    hist = sample("ocs_diameter_request_seconds_count", command="credit_control")
    await gy.call(gy.ccr(sid(), 1, 0, acct.identity.value, [mscc(DATA, rsu())]))
    await gy.call(gy.ccr(sid(), 2, 1, None, [mscc(DATA, rsu())]))  # 5002
    assert (
        sample("ocs_diameter_answers_total", command="credit_control", result_code="2001")
        == before + 1
    )
    assert sample("ocs_diameter_answers_total", command="credit_control", result_code="5002") >= 1
    assert sample("ocs_diameter_request_seconds_count", command="credit_control") == hist + 2
    assert sample("ocs_diameter_requests_total", command="credit_control") >= 2
    assert sample("ocs_diameter_peers_connected") >= 1
    assert sample("ocs_diameter_in_flight") == 0


async def test_3gpp_shaped_ccr_with_service_information(
    gy: GyClient, new_account: NewAccount
) -> None:
    """A PGW-like CCR-I (Service-Information/PS-Information, User-Equipment-Info, IMSI and
    MSISDN, 3GPP-RAT-Type, MSCC with Service-Identifier) is served like any other."""
    from diameter.message.avp.grouped import (
        PsInformation,
        ServiceInformation,
        SubscriptionId,
        UserEquipmentInfo,
    )

    acct = await new_account()
    ccr = gy.ccr(sid(), 1, 0, None, [mscc(DATA, rsu(), service_identifier=[1000])])
    ccr.subscription_id = [
        SubscriptionId(1, "208011234567890"),  # IMSI, unknown to the account
        SubscriptionId(0, acct.identity.value),  # MSISDN
    ]
    ccr.service_context_id = "10.01.208.8.32251@3gpp.org"
    ccr.user_equipment_info = UserEquipmentInfo(0, b"3533110123456701")
    ccr.service_information = ServiceInformation(
        ps_information=PsInformation(
            tgpp_charging_id=b"\x00\x00\x00\x2a",
            pdp_address=["10.45.0.2"],
            sgsn_address=["192.0.2.1"],
            ggsn_address=["192.0.2.2"],
            tgpp_imsi_mcc_mnc="20801",
            called_station_id="internet",
            tgpp_rat_type=b"\x06",
            tgpp_user_location_info=bytes.fromhex("8202f8100001"),
        )
    )
    a = await gy.call(ccr)
    assert a.result_code == 2001
    (m,) = a.multiple_services_credit_control
    assert (m.rating_group, m.service_identifier, m.result_code) == (DATA, [1000], 2001)


async def test_failure_handling_overrides_sent_when_configured(
    start_server: StartServer, new_client: NewClient, new_account: NewAccount
) -> None:
    """standards §2.6: configured CCFH goes in CCA-I (not in CCA-U), DDFH in event CCAs."""
    server = await start_server(
        credit_control_failure_handling="continue", direct_debiting_failure_handling="continue"
    )
    c = await new_client(server)
    acct = await new_account()
    s = sid()
    i = await c.call(c.ccr(s, 1, 0, acct.identity.value, [mscc(DATA, rsu())]))
    assert i.credit_control_failure_handling == 1
    u = await c.call(c.ccr(s, 2, 1, None, [mscc(DATA, rsu())]))
    assert u.credit_control_failure_handling is None
    e = await c.call(c.ccr(sid(), 4, 0, acct.identity.value, requested_action=2))
    assert 428 in [a.code for a in plain(e.raw).avps]


async def test_sip_uri_subscriber_finds_the_account_the_operator_made(
    gy: GyClient, accounts: Accounts
) -> None:
    """An account created with ``-i sip:USER@HOST`` is charged by a CCR-I whose
    Subscription-Id is END_USER_SIP_URI ``sip:USER@HOST`` (the key was ``sip:sip:...``)."""
    user = f"alice-{uuid.uuid4().hex[:8]}@ims.example"
    created = await accounts.create(
        [Identity.parse(f"sip:{user}")], "basic", "EUR", [BucketSpec(UnitType.MONEY, 10_000)]
    )
    ccr = gy.ccr(f"gw;sip;{uuid.uuid4().hex}", 1, 0, None, [mscc(10, rsu())])
    ccr.subscription_id = [SubscriptionId(E_SUBSCRIPTION_ID_TYPE_END_USER_SIP_URI, f"sip:{user}")]
    cca = await gy.call(ccr)
    assert cca.result_code == 2001
    assert cca.multiple_services_credit_control[0].result_code == 2001
    assert (await money(accounts, created))[1] > 0  # reserved from that account


async def test_ccr_u_resent_late_is_replayed_or_refused_never_charged_twice(
    gy: GyClient, accounts: Accounts, new_account: NewAccount
) -> None:
    """A CCR-U re-sent (new End-to-End id, as after a T-flag failover) after newer ones:
    2001 replayed within the window of numbers kept, 5012 beyond; the balance never moves."""
    from ocs.store.layout import ANSWER_WINDOW

    acct = await new_account(money=10_000_000)
    s = sid()
    await gy.call(gy.ccr(s, 1, 0, acct.identity.value, [mscc(DATA, rsu())]))

    def ccr_u(n: int) -> CreditControlRequest:
        return gy.ccr(s, 2, n, None, [mscc(DATA, rsu(), [usu(cc_total_octets=10_000)])])

    for n in range(1, 11):
        assert (await gy.call(ccr_u(n))).result_code == 2001
    before = await money(accounts, acct.account_id)
    again = await gy.call(ccr_u(1))
    assert again.result_code == 2001 and await money(accounts, acct.account_id) == before
    for n in range(11, ANSWER_WINDOW + 3):
        await gy.call(ccr_u(n))
    before = await money(accounts, acct.account_id)
    late = await gy.call(ccr_u(1))
    assert late.result_code == 5012 and late.cc_request_number == 1
    assert await money(accounts, acct.account_id) == before
