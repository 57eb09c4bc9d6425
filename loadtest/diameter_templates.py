"""Pre-encoded Gy requests with per-request fields patched in (RFC 4006 §3.1, RFC 6733 §3).

Each CCR shape (request type x the rating groups it carries) is encoded
once with python-diameter, the reference codec, with sentinel values in
the fields that change per request: the variable digits of the Session-Id,
the subscriber's MSISDN, CC-Request-Number, and the used units of each
MSCC. The sentinels' offsets are found once; a request is then a copy of
the template bytes with ``struct.pack_into`` at those offsets and the
Hop-by-Hop / End-to-End identifiers in the header. Every patched field has
a fixed width (Session-Ids and MSISDNs of one run are the same length,
Unsigned32/64 values are fixed size), so lengths never change.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass

from diameter.message import Message
from diameter.message.avp.grouped import (
    MultipleServicesCreditControl,
    RequestedServiceUnit,
    SubscriptionId,
    UsedServiceUnit,
)
from diameter.message.commands import (
    CapabilitiesExchangeRequest,
    CreditControlRequest,
    DeviceWatchdogAnswer,
)

from loadtest.spec import Service

INITIAL, UPDATE, TERMINATION, EVENT = 1, 2, 3, 4
COMMAND_NAMES = {INITIAL: "CCR-I", UPDATE: "CCR-U", TERMINATION: "CCR-T", EVENT: "CCR-E"}
SESSION_DIGITS = 10  # the per-session counter at the end of every Session-Id
GY_APPLICATION = 4
VENDOR_3GPP = 10415

_NUMBER_SENTINEL = 0xDEADBEE1
_U64_SENTINEL = 0x5A5A5A5A5A5A5A00
_U32_SENTINEL = 0x5A5A5A00
_HEADER_IDS = struct.Struct(">II")
_U32 = struct.Struct(">I")
_U64 = struct.Struct(">Q")


class TemplateError(ValueError):
    """A sentinel was not found exactly once: the template cannot be patched."""


def _offset(data: bytes, needle: bytes, what: str) -> int:
    at = data.find(needle)
    if at < 0 or data.find(needle, at + 1) >= 0:
        raise TemplateError(f"{what}: sentinel found {data.count(needle)} times")
    return at


@dataclass(frozen=True, slots=True)
class Template:
    """One encoded CCR and where its variable fields are."""

    data: bytes
    session_at: int  # offset of the SESSION_DIGITS digits
    number_at: int
    subscriber_at: int  # -1: no Subscription-Id in this shape
    subscriber_len: int
    usage_at: tuple[tuple[int, bool], ...]  # (offset, is 64-bit) per MSCC

    def render(
        self,
        session_digits: bytes,
        number: int,
        hop_by_hop: int,
        end_to_end: int,
        subscriber: bytes = b"",
        usage: Sequence[int] = (),
    ) -> bytearray:
        buf = bytearray(self.data)
        _HEADER_IDS.pack_into(buf, 12, hop_by_hop, end_to_end)
        buf[self.session_at : self.session_at + SESSION_DIGITS] = session_digits
        _U32.pack_into(buf, self.number_at, number)
        if self.subscriber_at >= 0:
            buf[self.subscriber_at : self.subscriber_at + self.subscriber_len] = subscriber
        for (at, wide), value in zip(self.usage_at, usage, strict=False):
            (_U64 if wide else _U32).pack_into(buf, at, value)
        return buf


def _used_unit(service: Service, sentinel_index: int) -> UsedServiceUnit:
    if service.unit == "seconds":
        return UsedServiceUnit(cc_time=_U32_SENTINEL + sentinel_index)
    if service.unit == "events":
        return UsedServiceUnit(cc_service_specific_units=_U64_SENTINEL + sentinel_index)
    return UsedServiceUnit(cc_total_octets=_U64_SENTINEL + sentinel_index)


def _usage_sentinel(service: Service, index: int) -> tuple[bytes, bool]:
    if service.unit == "seconds":
        return _U32.pack(_U32_SENTINEL + index), False
    return _U64.pack(_U64_SENTINEL + index), True


class GyTemplates:
    """The CCR templates of one simulated gateway (one Origin-Host)."""

    def __init__(
        self,
        origin_host: str,
        origin_realm: str,
        destination_realm: str,
        session_prefix: str,
        subscriber_len: int,
        service_context: str = "32251@3gpp.org",
    ) -> None:
        self.origin_host = origin_host
        self.origin_realm = origin_realm
        self.destination_realm = destination_realm
        self.session_prefix = session_prefix  # "<origin-host>;<run>;"
        self.subscriber_len = subscriber_len
        self.service_context = service_context
        self._cache: dict[tuple[int, tuple[Service, ...]], Template] = {}

    def get(self, request_type: int, services: tuple[Service, ...]) -> Template:
        key = (request_type, services)
        found = self._cache.get(key)
        if found is None:
            found = self._build(request_type, services)
            self._cache[key] = found
        return found

    def _build(self, request_type: int, services: tuple[Service, ...]) -> Template:
        ccr = CreditControlRequest()
        ccr.header.application_id = GY_APPLICATION
        ccr.header.is_proxyable = True
        ccr.session_id = self.session_prefix + "0" * SESSION_DIGITS
        ccr.origin_host = self.origin_host.encode()
        ccr.origin_realm = self.origin_realm.encode()
        ccr.destination_realm = self.destination_realm.encode()
        ccr.auth_application_id = GY_APPLICATION
        ccr.service_context_id = self.service_context
        ccr.cc_request_type = request_type
        ccr.cc_request_number = _NUMBER_SENTINEL
        marker = "Z" * self.subscriber_len
        if request_type in (INITIAL, EVENT):
            ccr.subscription_id = [SubscriptionId(0, marker)]  # END_USER_E164
        if request_type == EVENT:
            ccr.requested_action = 0  # DIRECT_DEBITING (RFC 4006 §8.41)
        if request_type == TERMINATION:
            ccr.termination_cause = 1  # DIAMETER_LOGOUT (RFC 6733 §8.15)
        ccr.multiple_services_indicator = 1
        ccr.multiple_services_credit_control = [
            self._mscc(request_type, svc, i) for i, svc in enumerate(services)
        ]
        data = ccr.as_bytes()
        session_at = _offset(data, ccr.session_id.encode(), "Session-Id") + len(self.session_prefix)
        usage = []
        if request_type in (UPDATE, TERMINATION):
            for i, svc in enumerate(services):
                needle, wide = _usage_sentinel(svc, i)
                usage.append((_offset(data, needle, f"usage {i}"), wide))
        has_sub = request_type in (INITIAL, EVENT)
        return Template(
            data=data,
            session_at=session_at,
            number_at=_offset(data, _U32.pack(_NUMBER_SENTINEL), "CC-Request-Number"),
            subscriber_at=_offset(data, marker.encode(), "Subscription-Id") if has_sub else -1,
            subscriber_len=self.subscriber_len,
            usage_at=tuple(usage),
        )

    @staticmethod
    def _mscc(request_type: int, svc: Service, index: int) -> MultipleServicesCreditControl:
        if request_type == EVENT:
            return MultipleServicesCreditControl(
                rating_group=svc.rating_group,
                requested_service_unit=RequestedServiceUnit(cc_service_specific_units=1),
            )
        used = [_used_unit(svc, index)] if request_type in (UPDATE, TERMINATION) else []
        return MultipleServicesCreditControl(
            rating_group=svc.rating_group,
            requested_service_unit=RequestedServiceUnit() if request_type != TERMINATION else None,
            used_service_unit=used,
        )


def cer(origin_host: str, origin_realm: str, state_id: int, address: str = "127.0.0.1") -> bytes:
    """A Capabilities-Exchange-Request for Gy (RFC 6733 §5.3.1), ids 0 (patched by the sender)."""
    msg = CapabilitiesExchangeRequest()
    msg.origin_host = origin_host.encode()
    msg.origin_realm = origin_realm.encode()
    msg.host_ip_address = [address]
    msg.vendor_id = 0
    msg.product_name = "ocs-loadtest"
    msg.origin_state_id = state_id
    msg.auth_application_id = [GY_APPLICATION]
    msg.supported_vendor_id = [VENDOR_3GPP]
    return bytes(msg.as_bytes())


def dwa(request: bytes, origin_host: str, origin_realm: str, state_id: int) -> bytes:
    """Answer the server's Device-Watchdog-Request (RFC 6733 §5.5.2)."""
    req = Message.from_bytes(request)
    ans = req.to_answer()
    assert isinstance(ans, DeviceWatchdogAnswer)
    ans.header.hop_by_hop_identifier = req.header.hop_by_hop_identifier
    ans.header.end_to_end_identifier = req.header.end_to_end_identifier
    ans.result_code = 2001
    ans.origin_host = origin_host.encode()
    ans.origin_realm = origin_realm.encode()
    ans.origin_state_id = state_id
    return bytes(ans.as_bytes())


def generic_answer(request: bytes, origin_host: str, origin_realm: str) -> bytes:
    """A 2001 answer to a server-initiated request we do not act on (RAR, ASR, DPR)."""
    req = Message.from_bytes(request)
    ans = req.to_answer()
    ans.header.hop_by_hop_identifier = req.header.hop_by_hop_identifier
    ans.header.end_to_end_identifier = req.header.end_to_end_identifier
    if getattr(req, "session_id", None):
        ans.session_id = req.session_id
    ans.result_code = 2001
    ans.origin_host = origin_host.encode()
    ans.origin_realm = origin_realm.encode()
    return bytes(ans.as_bytes())
