"""Nchf JSON <-> protocol-neutral charging values, sans-IO (TS 32.291 §6.1.6; TS 32.290 §5.2).

A ChargingDataRequest (already checked against the schema) becomes an
:class:`NchfRequest`: the subscriber from ``subscriberIdentifier`` (TS 29.571
SUPI/GPSI forms ``imsi-``, ``msisdn-``, ``nai-``, ``gci-``, ``gli-``), one
ServiceRequest per ``multipleUnitUsage`` item keyed by its rating group
(``requestedUnit`` present: quota asked, ``{}`` meaning the policy's default
grant; each ``usedUnitContainer`` one usage report, its triggers kept as the
3GPP Reporting-Reason values the records carry), ``invocationSequenceNumber``
as the idempotency key. A container closed by a TARIFF_TIME_CHANGE trigger,
and those before it, are usage before the switch; the containers after it are
usage after (TS 32.255 §5.2.2.4: the SMF closes the container at the change).

The charging answer becomes a ChargingDataResponse: one
MultipleUnitInformation per rating group (``resultCode`` from
:mod:`protocols.nchf.problems`, ``grantedUnit`` with ``tariffTimeChange``,
validity and holding times, thresholds, ``finalUnitIndication``, the
``uPFID`` echoed). Notifications become a ChargingNotifyRequest
(REAUTHORIZATION with the rating groups, or ABORT_CHARGING).
"""

from __future__ import annotations

import datetime
import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

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
    ServiceRequest,
    TariffChange,
    Usage,
    UsedUnits,
)
from protocols.nchf.problems import RESULT_CODES

OWNER_PREFIX = "nchf:"
A_NOTIFY_URI = "notify_uri"  # session attribute: where notifications go
A_CONSUMER = "consumer"

_IDENTITY_PREFIXES = (
    ("imsi-", IdentityType.IMSI),
    ("msisdn-", IdentityType.E164),
    ("nai-", IdentityType.NAI),
)
# Wireline identities (TS 23.316): kept whole, as private identities.
_PRIVATE_PREFIXES = ("gci-", "gli-")

# Unit attributes of RequestedUnit / UsedUnitContainer / GrantedUnit -> Usage fields.
_UNITS = (
    ("totalVolume", "total_octets"),
    ("uplinkVolume", "input_octets"),
    ("downlinkVolume", "output_octets"),
    ("time", "seconds"),
    ("serviceSpecificUnits", "events"),
)

# Trigger types of a container -> 3GPP Reporting-Reason (TS 32.299 §7.2.175), kept in records.
_REASONS = {
    "QUOTA_THRESHOLD": 0,
    "QHT": 1,
    "FINAL": 2,
    "QUOTA_EXHAUSTED": 3,
    "VALIDITY_TIME": 4,
    "OTHER_QUOTA_TYPE": 5,
    "FORCED_REAUTHORISATION": 7,
    "UNUSED_QUOTA_TIMER": 9,
}
TARIFF_TIME_CHANGE = "TARIFF_TIME_CHANGE"

_FUA_NAMES = {
    FinalUnitAction.TERMINATE: "TERMINATE",
    FinalUnitAction.REDIRECT: "REDIRECT",
    FinalUnitAction.RESTRICT_ACCESS: "RESTRICT_ACCESS",
}

_REAUTHORIZE = frozenset(
    {NotificationKind.TOPUP, NotificationKind.ADJUST, NotificationKind.POLICY_CHANGE}
)
_ABORT = frozenset({NotificationKind.BLOCKED, NotificationKind.DELETED, NotificationKind.TERMINATE})

_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


class BadRequest(Exception):
    """A body that passed the schema but cannot be charged (TS 29.500 cause, JSON Pointer)."""

    def __init__(self, pointer: str, reason: str, cause: str = "MANDATORY_IE_INCORRECT") -> None:
        super().__init__(f"{pointer}: {reason}")
        self.pointer = pointer
        self.reason = reason
        self.cause = cause


class NchfRequest(NamedTuple):
    """One ChargingDataRequest in charging-API values."""

    sequence: int
    subscriber: Identity | None
    services: tuple[ServiceRequest, ...]
    upf_ids: Mapping[int, str]  # rating group -> uPFID to echo
    notify_uri: str | None
    consumer: str

    @property
    def request_key(self) -> str:
        return str(self.sequence)


def identity(text: str) -> Identity:
    """A charging identity from a TS 29.571 SUPI or GPSI string; ValueError otherwise."""
    for prefix, kind in _IDENTITY_PREFIXES:
        if text.startswith(prefix) and len(text) > len(prefix):
            return Identity(kind, text[len(prefix) :])
    if text.startswith(_PRIVATE_PREFIXES) and len(text) > 4:
        return Identity(IdentityType.PRIVATE, text)
    raise ValueError("expected imsi-, msisdn-, nai-, gci- or gli- followed by the identity")


def consumer_name(body: Mapping[str, Any]) -> str:
    """The consumer as it names itself: NF instance id, else FQDN, else address."""
    nf = body.get("nfConsumerIdentification") or {}
    for key in ("nFName", "nFFqdn", "nFIPv4Address", "nFIPv6Address"):
        value = nf.get(key)
        if isinstance(value, str) and value:
            return value
    return "unnamed"


def parse_request(
    body: Mapping[str, Any], max_units: int = 64, max_containers: int = 64
) -> NchfRequest:
    """A schema-valid ChargingDataRequest -> :class:`NchfRequest` (BadRequest if unusable)."""
    subscriber = None
    text = body.get("subscriberIdentifier")
    if text is not None:
        try:
            subscriber = identity(text)
        except ValueError as exc:
            raise BadRequest("/subscriberIdentifier", str(exc)) from None
    units = body.get("multipleUnitUsage") or ()
    if len(units) > max_units:
        raise BadRequest("/multipleUnitUsage", f"more than {max_units} items", "INVALID_MSG_FORMAT")
    services = []
    upf: dict[int, str] = {}
    for i, unit in enumerate(units):
        containers = unit.get("usedUnitContainer") or ()
        if len(containers) > max_containers:
            raise BadRequest(
                f"/multipleUnitUsage/{i}/usedUnitContainer",
                f"more than {max_containers} items",
                "INVALID_MSG_FORMAT",
            )
        rg = unit["ratingGroup"]
        requested = unit.get("requestedUnit")
        services.append(
            ServiceRequest(
                ServiceKey(rg),
                usage_of(requested) if requested is not None else None,
                used_units(containers),
            )
        )
        if "uPFID" in unit:
            upf[rg] = unit["uPFID"]
    return NchfRequest(
        sequence=body["invocationSequenceNumber"],
        subscriber=subscriber,
        services=tuple(services),
        upf_ids=upf,
        notify_uri=body.get("notifyUri"),
        consumer=consumer_name(body),
    )


def usage_of(units: Mapping[str, Any]) -> Usage:
    values = {name: units[attr] for attr, name in _UNITS if attr in units}
    return Usage(**values) if values else Usage()


def used_units(containers: Sequence[Mapping[str, Any]]) -> tuple[UsedUnits, ...]:
    """One report per container; tariff side from the TARIFF_TIME_CHANGE trigger."""
    triggers = [[t.get("triggerType") for t in c.get("triggers") or ()] for c in containers]
    switch = max((i for i, types in enumerate(triggers) if TARIFF_TIME_CHANGE in types), default=-1)
    out = []
    for i, container in enumerate(containers):
        side = None if switch < 0 else TariffChange.BEFORE if i <= switch else TariffChange.AFTER
        reasons = tuple(_REASONS[t] for t in triggers[i] if t in _REASONS)
        out.append(UsedUnits(usage_of(container), side, reasons))
    return tuple(out)


def charging_data_ref(body: Mapping[str, Any], consumer: str) -> str:
    """The resource id of a create: a digest of what names the session, so a
    retransmitted create (same body) names the same resource and is answered
    from the first answer, never opening a second session."""
    pdu = body.get("pDUSessionChargingInformation") or {}
    info = pdu.get("pduSessionInformation") or {}
    key = [
        consumer,
        body.get("subscriberIdentifier"),
        body.get("invocationTimeStamp"),
        body.get("invocationSequenceNumber"),
        body.get("chargingId"),
        pdu.get("chargingId"),
        info.get("pduSessionID"),
    ]
    return hashlib.blake2b(_dumps(key).encode(), digest_size=12).hexdigest()


def timestamp(seconds: float) -> str:
    """TS 29.571 DateTime (RFC 3339, UTC, millisecond precision)."""
    when = datetime.datetime.fromtimestamp(seconds, tz=datetime.UTC)
    return when.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def granted_unit(granted: Usage, tariff_time_change: int | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for attr, name in _UNITS:
        value = getattr(granted, name)
        if value is not None:
            out[attr] = max(value, 0)
    if tariff_time_change is not None:
        out["tariffTimeChange"] = timestamp(tariff_time_change)
    return out


def final_unit_indication(fu: FinalUnit) -> dict[str, Any]:
    out: dict[str, Any] = {"finalUnitAction": _FUA_NAMES[fu.action]}
    if fu.action is FinalUnitAction.RESTRICT_ACCESS:
        if fu.restriction_rules:
            out["restrictionFilterRule"] = fu.restriction_rules[0]
            out["restrictionFilterRuleList"] = list(fu.restriction_rules)
        if fu.filter_ids:
            out["filterId"] = fu.filter_ids[0]
            out["filterIdList"] = list(fu.filter_ids)
    if fu.action is FinalUnitAction.REDIRECT and fu.redirect_url:
        out["redirectServer"] = {
            "redirectAddressType": "URL",
            "redirectServerAddress": fu.redirect_url,
        }
    return out


def unit_information(outcome: ServiceOutcome, upf_id: str | None) -> dict[str, Any]:
    """One MultipleUnitInformation (TS 32.291 §6.1.6.2.2.6)."""
    out: dict[str, Any] = {
        "resultCode": RESULT_CODES[outcome.status],
        "ratingGroup": outcome.service.rating_group,
    }
    if outcome.granted is not None:
        out["grantedUnit"] = granted_unit(outcome.granted, outcome.tariff_time_change)
    if outcome.validity_time is not None:
        out["validityTime"] = outcome.validity_time
    if outcome.quota_holding_time is not None:
        out["quotaHoldingTime"] = outcome.quota_holding_time
    if outcome.time_threshold is not None:
        out["timeQuotaThreshold"] = min(outcome.time_threshold, 0xFFFFFFFF)
    if outcome.volume_threshold is not None:
        out["volumeQuotaThreshold"] = outcome.volume_threshold
    if outcome.final_unit is not None:
        out["finalUnitIndication"] = final_unit_indication(outcome.final_unit)
    if upf_id is not None:
        out["uPFID"] = upf_id
    return out


def response_body(
    answer: ChargingAnswer,
    request: NchfRequest,
    now: float,
    session_failover: str | None = None,
    failure_handling: str | None = None,
) -> bytes:
    """The ChargingDataResponse of a create or update (TS 32.291 §6.1.6.2.2.2)."""
    body: dict[str, Any] = {
        "invocationTimeStamp": timestamp(now),
        "invocationSequenceNumber": request.sequence,
    }
    if failure_handling is not None:
        body["invocationResult"] = {"failureHandling": failure_handling}
    if session_failover is not None:
        body["sessionFailover"] = session_failover
    units = [
        unit_information(o, request.upf_ids.get(o.service.rating_group or 0))
        for o in answer.services
        if o.service.rating_group is not None
    ]
    if units:
        body["multipleUnitInformation"] = units
    return _dumps(body).encode()


def notify_body(note: Notification) -> bytes | None:
    """The ChargingNotifyRequest for a core notification, or None if it asks for none."""
    if note.kind in _ABORT:
        return _dumps({"notificationType": "ABORT_CHARGING"}).encode()
    if note.kind in _REAUTHORIZE:
        body: dict[str, Any] = {"notificationType": "REAUTHORIZATION"}
        if note.rating_groups:
            body["reauthorizationDetails"] = [{"ratingGroup": rg} for rg in note.rating_groups]
        return _dumps(body).encode()
    return None
