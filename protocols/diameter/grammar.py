"""Command and grouped-AVP grammars (CCF) of the requests this server accepts.

RFC 6733 §3.2 (CCF), §5.3.1 CER, §5.5.1 DWR, §5.4.1 DPR, §6.7.4 Proxy-Info,
§6.11 Vendor-Specific-Application-Id; RFC 4006 §3.1 CCR, §8.45 Subscription-Id,
§8.16 MSCC, §8.18 RSU, §8.19 USU. One table per message; the guarded decoder
(:mod:`protocols.diameter.codec`) checks them and turns a breach into 5005
(missing), 5008 (not allowed) or 5009 (too many), and enumerations out of range
into 5004.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from protocols.diameter.constants import (
    APP_COMMON,
    APP_CREDIT_CONTROL,
    VENDOR_3GPP,
    AvpCode,
    Command,
    TgppAvpCode,
)

Key = tuple[int, int]  # (AVP code, Vendor-Id)
UNBOUNDED = None


@dataclass(frozen=True, slots=True)
class Grammar:
    """``rules`` maps an AVP to (min, max) occurrences; ``open`` means ``*[AVP]``."""

    name: str
    rules: Mapping[Key, tuple[int, int | None]]
    open: bool = True
    forbidden: frozenset[Key] = field(default_factory=frozenset)


def _k(code: int, vendor: int = 0) -> Key:
    return (int(code), vendor)


def _one(code: int) -> tuple[Key, tuple[int, int | None]]:
    return _k(code), (1, 1)


def _opt(code: int, vendor: int = 0) -> tuple[Key, tuple[int, int | None]]:
    return _k(code, vendor), (0, 1)


def _many(code: int, vendor: int = 0, least: int = 0) -> tuple[Key, tuple[int, int | None]]:
    return _k(code, vendor), (least, UNBOUNDED)


A = AvpCode


def _keys(*codes: int) -> frozenset[Key]:
    return frozenset(_k(c) for c in codes)


# AVPs that only answers carry: never allowed in a request (5008).
_ANSWER_ONLY = _keys(
    A.RESULT_CODE, A.EXPERIMENTAL_RESULT, A.FAILED_AVP, A.ERROR_MESSAGE, A.ERROR_REPORTING_HOST
)

# Grants and answer-side Gy AVPs: a CCR carrying them at command level is wrong.
_CCA_ONLY = _keys(
    A.GRANTED_SERVICE_UNIT,
    A.FINAL_UNIT_INDICATION,
    A.VALIDITY_TIME,
    A.COST_INFORMATION,
    A.CHECK_BALANCE_RESULT,
    A.CC_SESSION_FAILOVER,
    A.CREDIT_CONTROL_FAILURE_HANDLING,
)

CER = Grammar(
    "CER",
    dict(
        [
            _one(A.ORIGIN_HOST),
            _one(A.ORIGIN_REALM),
            _many(A.HOST_IP_ADDRESS, least=1),
            _one(A.VENDOR_ID),
            _one(A.PRODUCT_NAME),
            _opt(A.ORIGIN_STATE_ID),
            _many(A.SUPPORTED_VENDOR_ID),
            _many(A.AUTH_APPLICATION_ID),
            _many(A.INBAND_SECURITY_ID),
            _many(A.ACCT_APPLICATION_ID),
            _many(A.VENDOR_SPECIFIC_APPLICATION_ID),
            _opt(A.FIRMWARE_REVISION),
        ]
    ),
    forbidden=_ANSWER_ONLY,
)

DWR = Grammar(
    "DWR",
    dict([_one(A.ORIGIN_HOST), _one(A.ORIGIN_REALM), _opt(A.ORIGIN_STATE_ID)]),
    forbidden=_ANSWER_ONLY,
)

DPR = Grammar(
    "DPR",
    dict([_one(A.ORIGIN_HOST), _one(A.ORIGIN_REALM), _one(A.DISCONNECT_CAUSE)]),
    forbidden=_ANSWER_ONLY,
)

CCR = Grammar(
    "CCR",
    dict(
        [
            _one(A.SESSION_ID),
            _one(A.ORIGIN_HOST),
            _one(A.ORIGIN_REALM),
            _one(A.DESTINATION_REALM),
            _one(A.AUTH_APPLICATION_ID),
            _one(A.SERVICE_CONTEXT_ID),
            _one(A.CC_REQUEST_TYPE),
            _one(A.CC_REQUEST_NUMBER),
            _opt(A.DESTINATION_HOST),
            _opt(A.USER_NAME),
            _opt(A.ORIGIN_STATE_ID),
            _opt(A.EVENT_TIMESTAMP),
            _many(A.SUBSCRIPTION_ID),
            _opt(A.SERVICE_IDENTIFIER),
            _opt(A.TERMINATION_CAUSE),
            _opt(A.REQUESTED_SERVICE_UNIT),
            _opt(A.REQUESTED_ACTION),
            _many(A.USED_SERVICE_UNIT),
            _opt(A.MULTIPLE_SERVICES_INDICATOR),
            _many(A.MULTIPLE_SERVICES_CREDIT_CONTROL),
            _many(A.PROXY_INFO),
            _many(A.ROUTE_RECORD),
        ]
    ),
    forbidden=_ANSWER_ONLY | _CCA_ONLY,
)

SUBSCRIPTION_ID = Grammar(
    "Subscription-Id",
    dict([_one(A.SUBSCRIPTION_ID_TYPE), _one(A.SUBSCRIPTION_ID_DATA)]),
    open=False,
)

_UNIT_RULES = [
    _opt(A.CC_TIME),
    _opt(A.CC_MONEY),
    _opt(A.CC_TOTAL_OCTETS),
    _opt(A.CC_INPUT_OCTETS),
    _opt(A.CC_OUTPUT_OCTETS),
    _opt(A.CC_SERVICE_SPECIFIC_UNITS),
]

RSU = Grammar("Requested-Service-Unit", dict(_UNIT_RULES))
USU = Grammar(
    "Used-Service-Unit",
    dict(
        [
            *_UNIT_RULES,
            _opt(A.TARIFF_CHANGE_USAGE),
            _many(TgppAvpCode.REPORTING_REASON, VENDOR_3GPP),
        ]
    ),
)

MSCC = Grammar(
    "Multiple-Services-Credit-Control",
    dict(
        [
            _opt(A.REQUESTED_SERVICE_UNIT),
            _many(A.USED_SERVICE_UNIT),
            _many(A.SERVICE_IDENTIFIER),
            _opt(A.RATING_GROUP),
            _many(TgppAvpCode.REPORTING_REASON, VENDOR_3GPP),
        ]
    ),
    forbidden=_ANSWER_ONLY | _CCA_ONLY,
)

# RFC 4006 §8.22-§8.23 as written. The reference decoder does not check them (they are
# not in GROUPS: an odd CC-Money is read leniently, its missing digits as 0, as it always
# was); the fast path takes only a CC-Money that meets them.
UNIT_VALUE = Grammar("Unit-Value", dict([_one(A.VALUE_DIGITS), _opt(A.EXPONENT)]), open=False)
CC_MONEY = Grammar("CC-Money", dict([_one(A.UNIT_VALUE), _opt(A.CURRENCY_CODE)]), open=False)

PROXY_INFO = Grammar(
    "Proxy-Info",
    dict([_one(A.PROXY_HOST), _one(A.PROXY_STATE)]),
)

VENDOR_SPECIFIC_APPLICATION_ID = Grammar(
    "Vendor-Specific-Application-Id",
    dict(
        [
            _one(A.VENDOR_ID),
            _opt(A.AUTH_APPLICATION_ID),
            _opt(A.ACCT_APPLICATION_ID),
        ]
    ),
    open=False,
)

# Requests we serve, by (command, application); anything else is 3001 / 3007.
REQUESTS: Mapping[tuple[int, int], Grammar] = {
    (Command.CAPABILITIES_EXCHANGE, APP_COMMON): CER,
    (Command.DEVICE_WATCHDOG, APP_COMMON): DWR,
    (Command.DISCONNECT_PEER, APP_COMMON): DPR,
    (Command.CREDIT_CONTROL, APP_CREDIT_CONTROL): CCR,
}

# Grouped AVPs whose content we read and therefore check.
GROUPS: Mapping[Key, Grammar] = {
    _k(A.SUBSCRIPTION_ID): SUBSCRIPTION_ID,
    _k(A.REQUESTED_SERVICE_UNIT): RSU,
    _k(A.USED_SERVICE_UNIT): USU,
    _k(A.MULTIPLE_SERVICES_CREDIT_CONTROL): MSCC,
    _k(A.PROXY_INFO): PROXY_INFO,
    _k(A.VENDOR_SPECIFIC_APPLICATION_ID): VENDOR_SPECIFIC_APPLICATION_ID,
}

# Grouped AVPs whose content the Gy mapping reads: an unknown M-bit AVP inside them
# (at any depth) is 5001. Other known groups (e.g. 3GPP Service-Information) are
# carried, never read: unknown M-bit AVPs inside them are tolerated unless
# ``Limits.strict_mbit`` (one stack's missing dictionary entry must not stop charging).
READ_GROUPS: frozenset[Key] = frozenset(GROUPS) | {_k(A.CC_MONEY), _k(A.UNIT_VALUE)}

# Enumerations we act on: a value outside the set is 5004 (standards §2.9).
ENUMERATIONS: Mapping[Key, frozenset[int]] = {
    _k(A.CC_REQUEST_TYPE): frozenset({1, 2, 3, 4}),
    _k(A.REQUESTED_ACTION): frozenset({0, 1, 2, 3}),
    _k(A.SUBSCRIPTION_ID_TYPE): frozenset({0, 1, 2, 3, 4}),
    _k(A.MULTIPLE_SERVICES_INDICATOR): frozenset({0, 1}),
    _k(A.TARIFF_CHANGE_USAGE): frozenset({0, 1, 2}),
    _k(A.DISCONNECT_CAUSE): frozenset({0, 1, 2}),
    _k(A.CC_UNIT_TYPE): frozenset({0, 1, 2, 3, 4, 5}),
}
