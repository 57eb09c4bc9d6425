"""One CCR in ``ocs.charging`` values, and whether this server serves it (RFC 4006 §3.1, §8;
RFC 6733 §6.1.4; 3GPP TS 32.299 §6.3, §7.2; standards §2.5).

Pure values, no python-diameter: both decoders produce a :class:`GyRequest`
(the fast path from struct offsets, :mod:`protocols.diameter.fastpath`; the
reference from python-diameter's AVPs, :mod:`protocols.diameter.gy_parse`),
and both go through the one check :meth:`Served.refusal` before charging. The
tables both read values with are here too (Subscription-Id-Type, Termination-
Cause, CC-Money arithmetic).
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass

from ocs.vocabulary.types import (
    EventAction,
    Identity,
    IdentityType,
    ServiceRequest,
    TerminationCause,
)
from protocols.diameter.constants import CcRequestType

DEFAULT_CONTEXTS = ("32251@3gpp.org",)

# Subscription-Id-Type (RFC 4006 §8.47), in value order: END_USER_E164 .. END_USER_PRIVATE.
IDENTITY_TYPES = (
    IdentityType.E164,
    IdentityType.IMSI,
    IdentityType.SIP_URI,
    IdentityType.NAI,
    IdentityType.PRIVATE,
)

ADMINISTRATIVE = 4  # Termination-Cause DIAMETER_ADMINISTRATIVE (RFC 6733 §8.15)


def termination_cause(value: int | None) -> TerminationCause:
    """Why the gateway ended the session: ADMINISTRATIVE is ours to record, the rest normal."""
    return TerminationCause.ADMIN if value == ADMINISTRATIVE else TerminationCause.NORMAL


MAX_MONEY_EXPONENT = 24  # 10^24: far beyond any currency amount, cheap to compute


def money_micro(digits: int, exponent: int) -> int:
    """Value-Digits x 10^Exponent in micro-units, truncated toward zero, exactly
    (integers only; callers bound ``exponent`` by MAX_MONEY_EXPONENT first)."""
    shift = exponent + 6
    scale: int = 10 ** abs(shift)
    if shift >= 0:
        return digits * scale
    return digits // scale if digits >= 0 else -(-digits // scale)


@dataclass(slots=True)
class GyRequest:
    """One CCR in ``ocs.charging`` values (read-only; not frozen only because a frozen
    dataclass costs four times as much to build, once per CCR on the hot path)."""

    session_id: str
    request_type: CcRequestType
    request_number: int
    subscribers: tuple[Identity, ...]
    services: tuple[ServiceRequest, ...]
    multiple_services: bool  # the CCR used MSCC: answer per MSCC
    requested_action: EventAction = EventAction.DIRECT_DEBIT
    termination_cause: TerminationCause = TerminationCause.NORMAL
    origin_state_id: int | None = None

    @property
    def request_key(self) -> str:
        return str(self.request_number)

    @property
    def event_id(self) -> str:
        return f"{self.session_id};{self.request_number}"


class Refusal(enum.Enum):
    """Why a well-formed CCR is not served; the reference path answers it (naming its AVP)."""

    DESTINATION_HOST = "destination_host"  # 3002: routed to another host
    DESTINATION_REALM = "destination_realm"  # 3003: a realm we do not serve
    SERVICE_CONTEXT = "service_context"  # 5031: not a Service-Context-Id we rate
    NO_SUBSCRIBER = "no_subscriber"  # 5005: a CCR-I / EVENT naming nobody


@dataclass(frozen=True, slots=True)
class Served:
    """What this server serves: who it is, and which Service-Context-Ids."""

    origin_host: str
    origin_realm: str
    contexts: tuple[str, ...] = DEFAULT_CONTEXTS
    check_destination: bool = True

    @classmethod
    def of(
        cls, host: str, realm: str, contexts: Sequence[str] = DEFAULT_CONTEXTS, check: bool = True
    ) -> Served:
        return cls(host.lower(), realm.lower(), tuple(contexts), check)

    def refusal(
        self,
        destination_host: str | None,
        destination_realm: str | None,
        context: str | None,
        request_type: CcRequestType,
        has_subscriber: bool,
    ) -> Refusal | None:
        """The one check both paths make before charging, in the order they answer:
        Destination-Host, Destination-Realm (RFC 6733 §6.1.4, when checked), then
        Service-Context-Id on its suffix (PS charging may prefix ``ext.MNC.MCC.release.``,
        standards §2.5), then a subscriber for CCR-I and EVENT."""
        if self.check_destination:
            if destination_host is not None and destination_host.lower() != self.origin_host:
                return Refusal.DESTINATION_HOST
            if destination_realm is not None and destination_realm.lower() != self.origin_realm:
                return Refusal.DESTINATION_REALM
        if context is not None and not context.endswith(self.contexts):
            return Refusal.SERVICE_CONTEXT
        if not has_subscriber and (
            request_type is CcRequestType.INITIAL or request_type is CcRequestType.EVENT
        ):
            return Refusal.NO_SUBSCRIBER
        return None
