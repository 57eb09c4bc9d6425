"""What operators may give ocs: one rule per kind of value, for the CLI and the admin API.

Each parser returns the value or raises ``ValueError`` with a message that
quotes the value and states the rule; the CLI (:mod:`ocs.cli.values`) turns
it into click's one-line usage error, the admin API into a 400 answer.
Identity formats follow what gateways send: Subscription-Id-Data of RFC 4006
§8.46-8.47 (E.164 digits without "+", IMSI digits), RADIUS User-Name for NAI
(RFC 7542, at most 253 octets).
"""

from __future__ import annotations

import re
import time
from datetime import datetime

from ocs.export.money import Currencies
from ocs.policy.quantities import MAX_QUANTITY, parse_money, parse_octets, parse_seconds
from ocs.vocabulary.types import Identity, IdentityType, UnitType

MAX_U32 = 2**32 - 1  # Rating-Group, Service-Identifier (RFC 4006 §8.28-8.29: Unsigned32)
MAX_TEXT = 253  # a RADIUS attribute's value; more than any identity or reference needs
MAX_REASON = 500  # an audit reason: a sentence, not a document

_DIGITS = {
    IdentityType.E164: (re.compile(r"[0-9]{1,15}"), "an E.164 number is 1 to 15 digits, no '+'"),
    IdentityType.IMSI: (re.compile(r"[0-9]{6,15}"), "an IMSI is 6 to 15 digits"),
}
_PRINTABLE = re.compile(r"[!-~\u00a0-\U0010ffff]+")  # no spaces, no control characters
# An account id is a Redis key part and a record id part: no ':' (that is an
# identity reference), '/', '{' or '}' (hash tags), and no spaces.
_ACCOUNT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_BUCKET_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,63}")
_EVENTS = re.compile(r"[0-9]+")
CURRENCIES = Currencies()  # ISO 4217 minor-unit exponents


def identity(text: str) -> Identity:
    """``TYPE:VALUE`` with the value in its type's format."""
    ident = Identity.parse(text)
    rule = _DIGITS.get(ident.type)
    if rule is not None and not rule[0].fullmatch(ident.value):
        raise ValueError(f"{text!r}: {rule[1]}")
    if rule is None and not text_ok(ident.value):
        raise ValueError(
            f"{text!r}: expected 1 to {MAX_TEXT} characters without spaces or control characters"
        )
    return ident


def account_id(text: str) -> str:
    if not _ACCOUNT_ID.fullmatch(text):
        raise ValueError(
            f"{text!r}: an account id is 1 to 64 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit (':' marks an identity)"
        )
    return text


def account_ref(text: str) -> str:
    """An account id, or an identity (``TYPE:VALUE``)."""
    if ":" in text:
        return identity(text).key()
    return account_id(text)


def bucket_id(text: str) -> str:
    if not _BUCKET_ID.fullmatch(text):
        raise ValueError(f"{text!r}: a bucket id is 1 to 64 letters, digits, '.', '_', ':' or '-'")
    return text


def reference(text: str) -> str:
    """An idempotency reference (a payment id): empty, or printable text."""
    if text and not text_ok(text):
        raise ValueError(
            f"{text!r}: expected up to {MAX_TEXT} characters without spaces or control characters"
        )
    return text


def reason(text: str) -> str:
    """Why a change is made (audit trail): one line of printable text, spaces allowed."""
    if len(text) > MAX_REASON or not text.isprintable():
        raise ValueError(
            f"{text[:40]!r}: expected one line of up to {MAX_REASON} printable characters"
        )
    return text


def amount(text: str, unit: UnitType, negative: bool = False, zero: bool = False) -> int:
    """An amount in the unit's notation: money '10.50', octets '1GB', seconds '1h',
    events '3'. A sign only where ``negative`` is allowed; zero only where ``zero``."""
    sign = -1 if text.startswith("-") else 1
    if sign < 0 and not negative:
        raise ValueError(f"{text!r}: must not be negative")
    body = text[1:] if sign < 0 else text
    try:
        if unit is UnitType.MONEY:
            value = parse_money(body)
        elif unit is UnitType.SECONDS:
            value = parse_seconds(body)
        elif unit is UnitType.EVENTS:
            if not _EVENTS.fullmatch(body):
                raise ValueError(f"expected a whole number of events, got {body!r}")
            value = int(body)
        else:
            value = parse_octets(body)
        if value > MAX_QUANTITY:
            raise ValueError(f"exceeds the largest supported quantity {MAX_QUANTITY}")
    except ValueError as exc:
        raise ValueError(f"{text!r}: {exc}") from None
    if value == 0 and not zero:
        raise ValueError(f"{text!r}: must not be zero")
    return sign * value


def money(
    text: str | None,
    minor: int | None,
    micro: int | None,
    currency: str,
    optional: bool = False,
) -> int:
    """Micro-units from exactly one of a decimal string ('15.00', '-2.5'), integer
    ISO 4217 minor units of ``currency`` (1500) or integer micro-units; none at all
    is 0 where ``optional``."""
    given = sum(v is not None for v in (text, minor, micro))
    if given == 0 and optional:
        return 0
    if given != 1:
        raise ValueError("give exactly one of a decimal amount, minor units or micro-units")
    if micro is not None:
        value = micro
    elif minor is not None:
        value = minor * 10 ** (6 - CURRENCIES.exponent(currency))
    else:
        assert text is not None
        value = amount(text, UnitType.MONEY, negative=True, zero=True)
    if abs(value) > MAX_QUANTITY:
        raise ValueError(f"{value}: exceeds the largest supported quantity {MAX_QUANTITY}")
    return value


def expiry(text: str | None, now: float | None = None) -> int:
    """Unix seconds from '+30d' / '+12h', an ISO date-time, or unix seconds; in the future."""
    if not text:
        return 0
    clock = time.time() if now is None else now
    expected = "expected +30d, +12h, an ISO date (2030-01-31) or unix seconds"
    try:
        if text.startswith("+"):
            at = int(clock) + parse_seconds(text[1:])
        elif _EVENTS.fullmatch(text):
            at = int(text)
        else:
            at = int(datetime.fromisoformat(text).timestamp())
    except (ValueError, OverflowError, OSError):
        raise ValueError(f"{text!r}: {expected}") from None
    if at <= clock:
        raise ValueError(f"{text!r}: must be in the future")
    if at > MAX_QUANTITY:
        raise ValueError(f"{text!r}: beyond the largest supported time")
    return at


def instant(text: str, now: float | None = None) -> int:
    """A moment, past or future: unix seconds, an ISO 8601 date-time (a date alone is
    its midnight, local time when no zone is given), 'now', or '-7d' / '+1h' from now."""
    clock = time.time() if now is None else now
    expected = "expected an ISO 8601 time (2026-11-27T10:00:00+01:00), unix seconds, now, -7d"
    try:
        if text == "now":
            return int(clock)
        if text.startswith(("+", "-")) and text[1:2].isdigit() and not _EVENTS.fullmatch(text[1:]):
            delta = parse_seconds(text[1:])
            return int(clock) + (delta if text[0] == "+" else -delta)
        if _EVENTS.fullmatch(text):
            return int(text)
        return int(datetime.fromisoformat(text).timestamp())
    except (ValueError, OverflowError, OSError):
        raise ValueError(f"{text!r}: {expected}") from None


def text_ok(text: str) -> bool:
    return len(text.encode()) <= MAX_TEXT and bool(_PRINTABLE.fullmatch(text))
