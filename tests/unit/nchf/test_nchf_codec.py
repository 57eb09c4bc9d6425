"""Nchf JSON <-> charging values (sans-IO): identities, units, tariff sides, answers, notifications."""

from __future__ import annotations

import json

import pytest

from ocs.vocabulary import errors
from ocs.vocabulary.types import (
    ChargingAnswer,
    FinalUnit,
    FinalUnitAction,
    Identity,
    IdentityType,
    Notification,
    NotificationKind,
    ServiceKey,
    ServiceOutcome,
    ServiceStatus,
    TariffChange,
    Usage,
)
from protocols.nchf import codec, problems, schema

CONSUMER = {"nodeFunctionality": "SMF", "nFName": "smf-1"}


def body(**extra: object) -> dict[str, object]:
    return {
        "nfConsumerIdentification": CONSUMER,
        "invocationTimeStamp": "2026-01-01T00:00:00Z",
        "invocationSequenceNumber": 3,
        **extra,
    }


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("imsi-208011234567890", Identity(IdentityType.IMSI, "208011234567890")),
        ("msisdn-33612345678", Identity(IdentityType.E164, "33612345678")),
        ("nai-alice@example.net", Identity(IdentityType.NAI, "alice@example.net")),
        ("gci-abc", Identity(IdentityType.PRIVATE, "gci-abc")),
        ("gli-xyz", Identity(IdentityType.PRIVATE, "gli-xyz")),
    ],
)
def test_subscriber_identifier_forms(text: str, expected: Identity) -> None:
    """TS 29.571 SUPI / GPSI prefixes map to the charging identities accounts are made with."""
    assert codec.identity(text) == expected


@pytest.mark.parametrize("text", ["imsi-", "tel:+336", "33612345678", "IMSI-2080"])
def test_unusable_subscriber_identifier(text: str) -> None:
    """Anything else is refused (ValueError), never looked up as something it is not."""
    with pytest.raises(ValueError, match="imsi-"):
        codec.identity(text)


def test_units_become_service_requests() -> None:
    """requestedUnit {} is the default grant, absent asks nothing; containers are reports."""
    req = codec.parse_request(
        body(
            subscriberIdentifier="msisdn-33612345678",
            notifyUri="http://smf/notify/1",
            multipleUnitUsage=[
                {"ratingGroup": 10, "requestedUnit": {}, "uPFID": "upf-a"},
                {"ratingGroup": 20, "requestedUnit": {"totalVolume": 5, "time": 6}},
                {
                    "ratingGroup": 30,
                    "usedUnitContainer": [
                        {
                            "localSequenceNumber": 1,
                            "uplinkVolume": 7,
                            "downlinkVolume": 8,
                            "serviceSpecificUnits": 2,
                            "triggers": [
                                {
                                    "triggerType": "QUOTA_THRESHOLD",
                                    "triggerCategory": "IMMEDIATE_REPORT",
                                },
                                {"triggerType": "QOS_CHANGE", "triggerCategory": "DEFERRED_REPORT"},
                            ],
                        }
                    ],
                },
            ],
        )
    )
    assert req.sequence == 3 and req.request_key == "3"
    assert req.subscriber == Identity(IdentityType.E164, "33612345678")
    assert req.notify_uri == "http://smf/notify/1" and req.consumer == "smf-1"
    a, b, c = req.services
    assert a.service == ServiceKey(10) and a.requested == Usage() and a.used == ()
    assert b.requested == Usage(total_octets=5, seconds=6)
    assert c.requested is None
    (report,) = c.used
    assert report.usage == Usage(input_octets=7, output_octets=8, events=2)
    assert report.reporting_reasons == (0,) and report.tariff_change is None
    assert req.upf_ids == {10: "upf-a"}


def test_tariff_time_change_splits_containers() -> None:
    """The container closed by TARIFF_TIME_CHANGE and those before it: BEFORE; after it: AFTER."""
    switch = {"triggerType": "TARIFF_TIME_CHANGE", "triggerCategory": "IMMEDIATE_REPORT"}
    used = codec.used_units(
        [
            {"localSequenceNumber": 1, "totalVolume": 1},
            {"localSequenceNumber": 2, "totalVolume": 2, "triggers": [switch]},
            {"localSequenceNumber": 3, "totalVolume": 3},
        ]
    )
    assert [u.tariff_change for u in used] == [
        TariffChange.BEFORE,
        TariffChange.BEFORE,
        TariffChange.AFTER,
    ]


def test_limits_on_units_and_containers() -> None:
    """More items than configured: BadRequest naming the array (400 INVALID_MSG_FORMAT)."""
    many = body(multipleUnitUsage=[{"ratingGroup": n} for n in range(3)])
    with pytest.raises(codec.BadRequest) as exc:
        codec.parse_request(many, max_units=2)
    assert exc.value.pointer == "/multipleUnitUsage" and exc.value.cause == "INVALID_MSG_FORMAT"
    containers = [{"localSequenceNumber": i} for i in range(3)]
    deep = body(multipleUnitUsage=[{"ratingGroup": 1, "usedUnitContainer": containers}])
    with pytest.raises(codec.BadRequest) as exc:
        codec.parse_request(deep, max_containers=2)
    assert exc.value.pointer == "/multipleUnitUsage/0/usedUnitContainer"


def test_charging_data_ref_names_the_session() -> None:
    """The same create gives the same id; another session (charging id, time) another one."""
    one = body(
        subscriberIdentifier="imsi-208011234567890", pDUSessionChargingInformation={"chargingId": 1}
    )
    two = {**one, "pDUSessionChargingInformation": {"chargingId": 2}}
    later = {**one, "invocationTimeStamp": "2026-01-01T00:00:01Z"}
    ref = codec.charging_data_ref(one, "smf-1")
    assert ref == codec.charging_data_ref(dict(one), "smf-1") and len(ref) == 24
    assert len({ref, codec.charging_data_ref(two, "smf-1"), codec.charging_data_ref(later, "smf-1"),
                codec.charging_data_ref(one, "smf-2")}) == 4  # fmt: skip


def test_response_carries_every_grant_attribute_and_validates() -> None:
    """Granted units, tariff switch, times, thresholds, FUI and uPFID; the schema accepts it."""
    outcomes = (
        ServiceOutcome(
            ServiceKey(10),
            ServiceStatus.GRANTED,
            Usage(total_octets=1000, input_octets=400, output_octets=600),
            validity_time=600,
            volume_threshold=200,
            time_threshold=30,
            quota_holding_time=60,
            final_unit=FinalUnit(FinalUnitAction.REDIRECT, redirect_url="http://topup/"),
            tariff_time_change=1_795_550_400,
        ),
        ServiceOutcome(
            ServiceKey(20),
            ServiceStatus.GRANTED,
            Usage(seconds=30, events=2),
            final_unit=FinalUnit(
                FinalUnitAction.RESTRICT_ACCESS,
                filter_ids=("f1", "f2"),
                restriction_rules=("permit out ip from any to 10.0.0.1",),
            ),
        ),
        ServiceOutcome(ServiceKey(30), ServiceStatus.CREDIT_LIMIT_REACHED),
        ServiceOutcome(ServiceKey(40), ServiceStatus.NOT_APPLICABLE),
    )
    answer = ChargingAnswer("s", 3, "acct", outcomes)
    req = codec.NchfRequest(3, None, (), {10: "upf-a"}, None, "smf-1")
    raw = codec.response_body(answer, req, 1_795_550_000.5, "FAILOVER_SUPPORTED", "TERMINATE")
    out = json.loads(raw)
    schema.validate(out, "ChargingDataResponse")
    assert out["invocationTimeStamp"] == "2026-11-24T19:53:20.500Z"
    assert out["sessionFailover"] == "FAILOVER_SUPPORTED"
    assert out["invocationResult"] == {"failureHandling": "TERMINATE"}
    data, voice, limit, free = out["multipleUnitInformation"]
    assert data == {
        "resultCode": "SUCCESS",
        "ratingGroup": 10,
        "grantedUnit": {
            "totalVolume": 1000,
            "uplinkVolume": 400,
            "downlinkVolume": 600,
            "tariffTimeChange": "2026-11-24T20:00:00.000Z",
        },
        "validityTime": 600,
        "quotaHoldingTime": 60,
        "timeQuotaThreshold": 30,
        "volumeQuotaThreshold": 200,
        "finalUnitIndication": {
            "finalUnitAction": "REDIRECT",
            "redirectServer": {
                "redirectAddressType": "URL",
                "redirectServerAddress": "http://topup/",
            },
        },
        "uPFID": "upf-a",
    }
    assert voice["grantedUnit"] == {"time": 30, "serviceSpecificUnits": 2}
    assert voice["finalUnitIndication"]["filterIdList"] == ["f1", "f2"]
    assert voice["finalUnitIndication"]["restrictionFilterRule"].startswith("permit")
    assert limit == {"resultCode": "QUOTA_LIMIT_REACHED", "ratingGroup": 30}
    assert free["resultCode"] == "QUOTA_MANAGEMENT_NOT_APPLICABLE"


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        (NotificationKind.TOPUP, {"notificationType": "REAUTHORIZATION", "reauthorizationDetails": [{"ratingGroup": 10}, {"ratingGroup": 20}]}),
        (NotificationKind.POLICY_CHANGE, {"notificationType": "REAUTHORIZATION", "reauthorizationDetails": [{"ratingGroup": 10}, {"ratingGroup": 20}]}),
        (NotificationKind.BLOCKED, {"notificationType": "ABORT_CHARGING"}),
        (NotificationKind.DELETED, {"notificationType": "ABORT_CHARGING"}),
        (NotificationKind.LOW_BALANCE, None),
    ],
)  # fmt: skip
def test_notification_bodies(kind: NotificationKind, expected: object) -> None:
    """Top-up / policy change re-authorise the rating groups; block / delete abort; others send nothing."""
    note = Notification(kind, "acct", "sid", "nchf:smf-1", (), (10, 20))
    raw = codec.notify_body(note)
    assert (json.loads(raw) if raw else None) == expected
    if raw:
        schema.validate(json.loads(raw), "ChargingNotifyRequest")


@pytest.mark.parametrize(
    ("exc", "status", "cause"),
    [
        (errors.UserUnknown("x"), 404, "USER_UNKNOWN"),
        (errors.AccountBlocked("x"), 403, "END_USER_REQUEST_DENIED"),
        (errors.UnknownSession("x"), 404, "CONTEXT_NOT_FOUND"),
        (errors.InvalidRequest("x"), 400, "CHARGING_FAILED"),
        (errors.StorageUnavailable("x"), 503, "NF_CONGESTION"),
    ],
)
def test_request_failures_map_to_problem_causes(
    exc: errors.ChargingError, status: int, cause: str
) -> None:
    """One table from charging exceptions to HTTP status and ProblemDetails cause."""
    found = problems.for_exception(exc)
    assert (found.status, found.cause) == (status, cause)
    assert problems.for_exception(errors.StorageUnavailable("x"), 500).cause == "SYSTEM_FAILURE"
    schema.validate(json.loads(problems.problem(found, "d", (("/a", "b"),))), "ProblemDetails")


def test_every_service_status_has_a_result_code() -> None:
    """Each per-service status maps to a ResultCode of TS 32.291 §6.1.6.3.14."""
    enum = schema.document()["components"]["schemas"]["ResultCode"]["anyOf"][0]["enum"]
    assert {problems.RESULT_CODES[s] for s in ServiceStatus} <= set(enum)
