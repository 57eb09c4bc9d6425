"""Protocol-neutral values of the charging API.

These are the only types that cross between ``protocols/`` and ``ocs/``: no
Diameter AVP and no RADIUS attribute appears here. All are immutable. The
ones built for every request (usage, service requests and outcomes, the
answer) are NamedTuples: a frozen dataclass costs about 170 ns per field to
build (``object.__setattr__``), a NamedTuple one allocation, and a Gy CCR
makes a dozen of them; the rest are frozen dataclasses. Money is an ``int`` of
micro-units of the account's currency; usage is an ``int`` of octets, seconds
or events. Per-service outcomes are values (one Gy CCR can mix a grant and a
credit-limit answer, RFC 4006 §5.1.2); request-level failures are the
exceptions in :mod:`ocs.vocabulary.errors`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import NamedTuple


class UnitType(enum.Enum):
    """What a quantity counts. Money is in micro-units of the account currency."""

    MONEY = "money"
    TOTAL_OCTETS = "total_octets"
    INPUT_OCTETS = "input_octets"
    OUTPUT_OCTETS = "output_octets"
    SECONDS = "seconds"
    EVENTS = "events"  # service-specific units (RFC 4006 CC-Service-Specific-Units)


class IdentityType(enum.Enum):
    """Subscriber identity kinds (RFC 4006 §8.47 Subscription-Id-Type)."""

    E164 = "e164"
    IMSI = "imsi"
    SIP_URI = "sip"
    NAI = "nai"  # also RADIUS User-Name
    PRIVATE = "private"


@dataclass(frozen=True, slots=True)
class Identity:
    """One identity of a subscriber, e.g. ``Identity(IdentityType.E164, "33612345678")``.

    A SIP URI is kept without its ``sip:`` scheme (any case, RFC 3261 §19.1.1), which
    its type already says: a gateway's ``sip:alice@example.net`` (Gy Subscription-Id
    END_USER_SIP_URI carries the whole URI) and the operator's
    ``sip:alice@example.net`` (type ``sip``, value ``alice@example.net``) are one key,
    ``sip:alice@example.net``.
    """

    type: IdentityType
    value: str

    def __post_init__(self) -> None:
        if self.type is IdentityType.SIP_URI and self.value[:4].lower() == "sip:":
            object.__setattr__(self, "value", self.value[4:])

    def key(self) -> str:
        return f"{self.type.value}:{self.value}"

    @classmethod
    def parse(cls, text: str) -> Identity:
        """Parse ``type:value`` (``e164:336...``, ``imsi:208...``, ``nai:user@realm``)."""
        kind, sep, value = text.partition(":")
        expected = f"identity {text!r}: expected TYPE:VALUE, e.g. e164:33612345678"
        if not sep or not value:
            raise ValueError(expected)
        try:
            identity = cls(IdentityType(kind), value)
        except ValueError:
            kinds = ", ".join(t.value for t in IdentityType)
            raise ValueError(
                f"identity {text!r}: unknown type {kind!r}, expected one of {kinds}"
            ) from None
        if not identity.value:  # ``sip:sip:``: nothing after the scheme either
            raise ValueError(expected)
        return identity


@dataclass(frozen=True, slots=True)
class ServiceKey:
    """A charged service as the gateway names it: rating group and/or service id.

    Both ``None`` means the command-level (non-MSCC) service; the policy maps it
    to its default service.
    """

    rating_group: int | None = None
    service_id: int | None = None
    # "rg/sid", the service's name in scripts and stored state; made once,
    # since every request looks it up several times.
    _key: str = field(init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        rg = "" if self.rating_group is None else str(self.rating_group)
        sid = "" if self.service_id is None else str(self.service_id)
        object.__setattr__(self, "_key", f"{rg}/{sid}")

    def key(self) -> str:
        return self._key


class Usage(NamedTuple):
    """Units used or requested, by unit type. Absent types are zero / not asked."""

    total_octets: int | None = None
    input_octets: int | None = None
    output_octets: int | None = None
    seconds: int | None = None
    events: int | None = None
    money: int | None = None

    def get(self, unit: UnitType) -> int | None:
        return getattr(self, unit._value_)  # type: ignore[no-any-return]

    def as_dict(self) -> dict[str, int]:
        # A fixed tuple of names, not an Enum iteration: this runs per report.
        out: dict[str, int] = {}
        for name in _USAGE_FIELDS:
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        return out

    @classmethod
    def of(cls, unit: UnitType, amount: int) -> Usage:
        if unit is UnitType.TOTAL_OCTETS:  # the common grant, without a kwargs dict
            return cls(total_octets=amount)
        return cls(**{unit.value: amount})

    def is_empty(self) -> bool:
        return not self.as_dict()


_USAGE_FIELDS = tuple(unit.value for unit in UnitType)


class TariffChange(enum.Enum):
    """Tariff-Change-Usage of a report (RFC 4006 §8.27)."""

    BEFORE = 0
    AFTER = 1
    INDETERMINATE = 2


class UsedUnits(NamedTuple):
    """One usage report for a service (a Gy USU, or a RADIUS counter delta)."""

    usage: Usage
    tariff_change: TariffChange | None = None
    reporting_reasons: tuple[int, ...] = ()  # 3GPP Reporting-Reason values, kept for records
    # True when the counters are totals since the session started (RADIUS
    # Acct-*-Octets, Acct-Session-Time): the core charges the difference from
    # the last report, and a total lower than the last starts a new epoch
    # (charged from zero, never credited; standards §3.4).
    cumulative: bool = False


class ServiceRequest(NamedTuple):
    """What the gateway says for one service in one request.

    ``requested`` is ``None`` when the gateway asks for no new quota (e.g. a
    CCR-U after final units, RFC 4006 §5.6.2); a ``Usage()`` with no fields
    means "give the policy's default grant" (an empty RSU).
    """

    service: ServiceKey
    requested: Usage | None = None
    used: tuple[UsedUnits, ...] = ()


class FinalUnitAction(enum.Enum):
    """RFC 4006 §8.35 Final-Unit-Action."""

    TERMINATE = 0
    REDIRECT = 1
    RESTRICT_ACCESS = 2


@dataclass(frozen=True, slots=True)
class FinalUnit:
    """What the gateway must do when this grant is used up (RFC 4006 §5.6)."""

    action: FinalUnitAction
    redirect_url: str | None = None
    filter_ids: tuple[str, ...] = ()
    restriction_rules: tuple[str, ...] = ()


class ServiceStatus(enum.Enum):
    """Per-service outcome; each protocol maps it through one table."""

    GRANTED = "granted"  # Gy 2001
    CREDIT_LIMIT_REACHED = "credit_limit_reached"  # Gy 4012
    SERVICE_DENIED = "service_denied"  # Gy 4010
    RATING_FAILED = "rating_failed"  # Gy 5031 (unknown service)
    NOT_APPLICABLE = "not_applicable"  # Gy 4011 (service not credit-controlled)


class ServiceOutcome(NamedTuple):
    """The answer for one service of one request.

    ``granted`` is ``None`` when nothing is granted (terminate, final units
    spent, or a failure status). ``charged`` is what this request debited for
    the service (micro-units); ``shortfall`` is usage the balance could not
    cover (recorded, never debited below a bucket's floor).
    """

    service: ServiceKey
    status: ServiceStatus
    granted: Usage | None = None
    validity_time: int | None = None  # seconds
    volume_threshold: int | None = None  # octets left when the gateway must report
    time_threshold: int | None = None  # seconds left when the gateway must report
    quota_holding_time: int | None = None
    final_unit: FinalUnit | None = None
    tariff_time_change: int | None = None  # unix seconds of the next tariff switch in the grant
    charged: int = 0
    shortfall: int = 0


@dataclass(frozen=True, slots=True)
class SessionRef:
    """Who the session is and where it came from.

    ``owner`` is an opaque routing tag the protocol layer sets (e.g.
    ``"diameter:<origin-host>"`` or ``"radius:<nas-ip>"``); notifications carry
    it back so the right front end pushes RAR/ASR or CoA/Disconnect.
    ``attributes`` are protocol-neutral strings kept with the session for pushes
    (e.g. NAS-IP-Address, Framed-IP-Address, Origin-State-Id).
    """

    session_id: str
    owner: str = ""
    attributes: tuple[tuple[str, str], ...] = ()


class ChargingAnswer(NamedTuple):
    """Answer to initiate / update / terminate: one outcome per requested service."""

    session_id: str
    request_number: int
    account_id: str
    services: tuple[ServiceOutcome, ...]
    replayed: bool = False  # true when answered from the stored first outcome


class EventAction(enum.Enum):
    """One-shot requests (RFC 4006 §5.4 and §8.41 Requested-Action)."""

    DIRECT_DEBIT = 0
    REFUND = 1
    CHECK_BALANCE = 2
    PRICE_ENQUIRY = 3


@dataclass(frozen=True, slots=True)
class EventAnswer:
    """Answer to an event request.

    ``units`` is what was debited / refunded / priced; ``cost`` is its price in
    micro-units; ``enough_credit`` answers CHECK_BALANCE.
    """

    event_id: str
    account_id: str
    action: EventAction
    status: ServiceStatus
    service: ServiceKey
    units: Usage | None = None
    cost: int = 0
    currency: str = ""
    enough_credit: bool | None = None
    replayed: bool = False


class TerminationCause(enum.Enum):
    """Why a session ended; recorded in the charged-session record."""

    NORMAL = "normal"
    ABANDONED = "abandoned"  # supervision timer, no termination from the gateway
    PEER_RESTART = "peer_restart"  # Diameter Origin-State-Id increased
    NAS_REBOOT = "nas_reboot"  # RADIUS Accounting-On/Off
    ADMIN = "admin"  # account blocked / deleted
    CREDIT_EXHAUSTED = "credit_exhausted"
    SERVICE_DENIED = "service_denied"
    OTHER = "other"


class NotificationKind(enum.Enum):
    """Events the core publishes for the protocol front ends to push."""

    TOPUP = "topup"  # balance increased: re-authorise (RAR / CoA)
    ADJUST = "adjust"
    POLICY_CHANGE = "policy_change"
    BLOCKED = "blocked"  # abort the session (ASR / Disconnect)
    DELETED = "deleted"
    TERMINATE = "terminate"  # an operator ends this one session (ASR / Disconnect)
    LOW_BALANCE = "low_balance"  # for integrations: money fell below a threshold
    EXHAUSTED = "exhausted"  # for integrations: no money left, or a grant refused


@dataclass(frozen=True, slots=True)
class Notification:
    """One push request for one live session (published on account changes)."""

    kind: NotificationKind
    account_id: str
    session_id: str
    owner: str
    attributes: tuple[tuple[str, str], ...] = ()
    rating_groups: tuple[int, ...] = field(default=())
