"""What the ``ocs`` commands accept: one rule per kind of value.

Each parser returns the value or raises ``click.BadParameter`` with a
message that quotes the value and states the rule; the command group
(:mod:`ocs.cli.errors`) prints it as one line on stderr, exit status 2.
Everything here is checked before a command reaches the store, so bad
input changes nothing. Identity formats follow what gateways send:
Subscription-Id-Data of RFC 4006 §8.46-8.47 (E.164 digits without "+",
IMSI digits), RADIUS User-Name for NAI (RFC 7542, at most 253 octets).
"""

from __future__ import annotations

import math
import re
import time
from datetime import datetime
from typing import Any

import click

from ocs.policy.quantities import MAX_QUANTITY, parse_money, parse_octets, parse_seconds
from ocs.vocabulary.types import Identity, IdentityType, UnitType

MAX_U32 = 2**32 - 1  # Rating-Group, Service-Identifier (RFC 4006 §8.28-8.29: Unsigned32)
MAX_TEXT = 253  # a RADIUS attribute's value; more than any identity or reference needs

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


def identity(text: str) -> Identity:
    """``TYPE:VALUE`` with the value in its type's format."""
    try:
        ident = Identity.parse(text)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    rule = _DIGITS.get(ident.type)
    if rule is not None and not rule[0].fullmatch(ident.value):
        raise click.BadParameter(f"{text!r}: {rule[1]}")
    if rule is None and not _text_ok(ident.value):
        raise click.BadParameter(
            f"{text!r}: expected 1 to {MAX_TEXT} characters without spaces or control characters"
        )
    return ident


def account_id(text: str) -> str:
    if not _ACCOUNT_ID.fullmatch(text):
        raise click.BadParameter(
            f"{text!r}: an account id is 1 to 64 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit (':' marks an identity)"
        )
    return text


def account_ref(text: str) -> str:
    """An account id, or an identity (``TYPE:VALUE``), as ``ocs account show`` takes."""
    if ":" in text:
        return identity(text).key()
    return account_id(text)


def bucket_id(text: str) -> str:
    if not _BUCKET_ID.fullmatch(text):
        raise click.BadParameter(
            f"{text!r}: a bucket id is 1 to 64 letters, digits, '.', '_', ':' or '-'"
        )
    return text


def reference(text: str) -> str:
    """An idempotency reference (a payment id): empty, or printable text."""
    if text and not _text_ok(text):
        raise click.BadParameter(
            f"{text!r}: expected up to {MAX_TEXT} characters without spaces or control characters"
        )
    return text


MAX_REASON = 500  # an audit reason: a sentence, not a document


def reason(text: str) -> str:
    """Why a change is made (audit trail): printable text, spaces allowed, one line."""
    if len(text) > MAX_REASON or any(c in text for c in "\r\n\x00") or not text.isprintable():
        raise click.BadParameter(
            f"{text[:40]!r}: expected one line of up to {MAX_REASON} printable characters"
        )
    return text


def amount(text: str, unit: UnitType, negative: bool = False, zero: bool = False) -> int:
    """An amount in the unit's notation: money '10.50', octets '1GB', seconds '1h',
    events '3'. A sign only where ``negative`` is allowed; zero only where ``zero``."""
    sign = -1 if text.startswith("-") else 1
    if sign < 0 and not negative:
        raise click.BadParameter(f"{text!r}: must not be negative")
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
        raise click.BadParameter(f"{text!r}: {exc}") from None
    if value == 0 and not zero:
        raise click.BadParameter(f"{text!r}: must not be zero")
    return sign * value


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
        raise click.BadParameter(f"{text!r}: {expected}") from None
    if at <= clock:
        raise click.BadParameter(f"{text!r}: must be in the future")
    if at > MAX_QUANTITY:
        raise click.BadParameter(f"{text!r}: beyond the largest supported time")
    return at


def _text_ok(text: str) -> bool:
    return len(text.encode()) <= MAX_TEXT and bool(_PRINTABLE.fullmatch(text))


class Finite(click.FloatRange):
    """A float in a range that is a number (click's FloatRange lets 'nan' through)."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        return number


PORT = click.IntRange(1, 65535)
RATING_GROUP = click.IntRange(0, MAX_U32)
PRIORITY = click.IntRange(0, MAX_U32)
COUNT = click.IntRange(min=1)  # how many of something: at least one
NONNEGATIVE = click.IntRange(min=0)


def callback(parse: Any) -> Any:
    """A click option/argument callback applying ``parse`` (to each value of a
    multiple option; None passes through)."""

    def check(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
        if value is None:
            return None
        if isinstance(value, tuple):
            return tuple(parse(v) for v in value)
        return parse(value)

    return check
