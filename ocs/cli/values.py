"""What the ``ocs`` commands accept: one rule per kind of value.

The rules are :mod:`ocs.rules` (shared with the admin API); here each
raises ``click.BadParameter`` with the rule's message, which quotes the
value and states the rule; the command group (:mod:`ocs.cli.common`) prints
it as one line on stderr, exit status 2. Everything here is checked before
a command reaches the store, so bad input changes nothing.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

import click

from ocs import rules

P = ParamSpec("P")
R = TypeVar("R")
MAX_U32 = rules.MAX_U32
MAX_TEXT = rules.MAX_TEXT
MAX_REASON = rules.MAX_REASON


def _click(parse: Callable[P, R]) -> Callable[P, R]:
    """The rule ``parse`` of :mod:`ocs.rules`, its ValueError as click's BadParameter."""

    @functools.wraps(parse)
    def check(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return parse(*args, **kwargs)
        except ValueError as exc:
            raise click.BadParameter(str(exc)) from None

    return check


identity = _click(rules.identity)
account_id = _click(rules.account_id)
account_ref = _click(rules.account_ref)
bucket_id = _click(rules.bucket_id)
reference = _click(rules.reference)
reason = _click(rules.reason)
amount = _click(rules.amount)
expiry = _click(rules.expiry)
instant = _click(rules.instant)


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
