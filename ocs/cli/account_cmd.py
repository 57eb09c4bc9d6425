"""``ocs account ...``: create, show, list, top up, adjust, block, delete.

Every command reaches the same Redis as ``ocs serve`` with the same
configuration (the embedded server through its socket in the data
directory). Bad input gives one line on stderr and exit status 2.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

import click

from ocs.accounts import AccountError, Accounts, BucketSpec
from ocs.cli.common import fail, run_with_store
from ocs.plans import Renewals
from ocs.policy.quantities import format_money, parse_money, parse_octets, parse_seconds
from ocs.vocabulary.types import Identity, NotificationKind, UnitType

UNIT_NAMES = [u.value for u in UnitType]


def parse_amount(text: str, unit: UnitType, allow_negative: bool = False) -> int:
    """An amount in the unit's own notation: money '10.50', octets '1GB', seconds '1h'."""
    negative = text.startswith("-")
    if negative and not allow_negative:
        raise click.BadParameter(f"{text!r}: must not be negative", param_hint="AMOUNT")
    body = text[1:] if negative else text
    try:
        if unit is UnitType.MONEY:
            value = parse_money(body)
        elif unit is UnitType.SECONDS:
            value = parse_seconds(body)
        else:
            value = parse_octets(body) if unit is not UnitType.EVENTS else int(body)
    except ValueError as exc:
        raise click.BadParameter(f"{text!r}: {exc}", param_hint="AMOUNT") from None
    if value == 0 and not allow_negative:
        raise click.BadParameter(f"{text!r}: must be more than zero", param_hint="AMOUNT")
    return -value if negative else value


def parse_expiry(text: str | None) -> int:
    """Unix seconds from '+30d' / '+12h', an ISO date-time, or a number."""
    if not text:
        return 0
    try:
        if text.startswith("+"):
            return int(time.time()) + parse_seconds(text[1:])
        if text.isdigit():
            return int(text)
        from datetime import datetime

        return int(datetime.fromisoformat(text).timestamp())
    except ValueError:
        raise click.BadParameter(
            f"{text!r}: expected +30d, +12h, an ISO date or unix seconds", param_hint="--expires"
        ) from None


def _identities(values: tuple[str, ...]) -> list[Identity]:
    out = []
    for v in values:
        try:
            out.append(Identity.parse(v))
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--identity") from None
    return out


@click.group("account")
def account_cli() -> None:
    """Accounts, identities and balances."""


@account_cli.command("create")
@click.option(
    "--identity",
    "-i",
    "identities",
    multiple=True,
    required=True,
    help="TYPE:VALUE, e.g. e164:33612345678, imsi:208..., nai:user@isp (repeatable)",
)
@click.option("--plan", required=True, help="a plan name from the policies")
@click.option("--money", default="0", help="opening money balance, e.g. 10.00")
@click.option("--id", "account_id", default=None, help="account id (default: generated)")
@click.pass_obj
def create(
    obj: dict[str, Any], identities: tuple[str, ...], plan: str, money: str, account_id: str | None
) -> None:
    """Create an account with its identities and opening balance."""
    ids = _identities(identities)
    opening = (
        parse_amount(money, UnitType.MONEY, allow_negative=False) if money not in ("0", "") else 0
    )

    async def go(accounts: Accounts) -> None:
        policies = obj["policies"]()
        if plan not in policies.plans:
            fail(f"unknown plan {plan!r} (expected one of {', '.join(sorted(policies.plans))})")
        currency = policies.plans[plan].currency
        buckets = (
            [BucketSpec(UnitType.MONEY, opening)] if opening else [BucketSpec(UnitType.MONEY, 0)]
        )
        acct = await accounts.create(ids, plan, currency, buckets, account_id)
        # The plan's recurring bundles start with the account (idempotent).
        await Renewals(accounts.redis, accounts.partitions, policies).renew_account(acct)
        click.echo(acct)

    run_with_store(obj, go)


@account_cli.command("show")
@click.argument("ref")
@click.option("--json", "as_json", is_flag=True, help="machine-readable output")
@click.pass_obj
def show(obj: dict[str, Any], ref: str, as_json: bool) -> None:
    """Show an account (by id or identity): buckets, reservations, live sessions."""

    async def go(accounts: Accounts) -> None:
        view = await accounts.show(await accounts.resolve(ref))
        if as_json:
            click.echo(json.dumps(view, indent=2, sort_keys=True))
            return
        _print_account(view)

    run_with_store(obj, go)


def _print_account(view: dict[str, Any]) -> None:
    click.echo(f"account   {view['account']}  ({view.get('status')}, plan {view.get('plan')})")
    click.echo(f"identities {', '.join(view['identities'])}")
    for b in view["buckets"]:
        amount = (
            format_money(b["amount"], view.get("currency", ""))
            if b["unit"] == "money"
            else b["amount"]
        )
        click.echo(
            f"  bucket {b['id']:<14} {b['unit']:<13} {amount}  reserved {b['reserved']}"
            + (f"  expires {b['expires']}" if b["expires"] else "")
        )
    click.echo(f"sessions  {len(view['sessions'])} live")


@account_cli.command("list")
@click.option("--limit", default=1000, show_default=True)
@click.pass_obj
def list_accounts(obj: dict[str, Any], limit: int) -> None:
    """List account ids."""

    async def go(accounts: Accounts) -> None:
        for acct in await accounts.list(limit):
            click.echo(acct)

    run_with_store(obj, go)


def _bucket_options(f: Callable[..., None]) -> Callable[..., None]:
    f = click.option("--unit", type=click.Choice(UNIT_NAMES), default="money", show_default=True)(f)
    f = click.option("--bucket", default=None, help="bucket id (default: the main money bucket)")(f)
    f = click.option("--expires", default=None, help="+30d, +12h, ISO date or unix seconds")(f)
    f = click.option(
        "--rating-group",
        "rating_groups",
        type=int,
        multiple=True,
        help="restrict a new bucket to these rating groups",
    )(f)
    f = click.option("--priority", type=int, default=100, show_default=True)(f)
    return f


def _credit(
    obj: dict[str, Any],
    ref: str,
    amount: str,
    unit: str,
    bucket: str | None,
    expires: str | None,
    rating_groups: tuple[int, ...],
    priority: int,
    negative: bool,
    kind: NotificationKind,
    payment_ref: str,
) -> None:
    u = UnitType(unit)
    delta = parse_amount(amount, u, allow_negative=negative)
    spec = BucketSpec(
        u,
        0,
        bucket_id=bucket,
        expires=parse_expiry(expires),
        rating_groups=rating_groups,
        priority=priority,
    )
    if u is not UnitType.MONEY and not bucket and delta > 0:
        spec = BucketSpec(
            u,
            0,
            bucket_id=None,
            expires=spec.expires,
            rating_groups=rating_groups,
            priority=priority,
        )

    async def go(accounts: Accounts) -> None:
        reply = await accounts.credit(await accounts.resolve(ref), spec, delta, kind, payment_ref)
        click.echo(f"bucket {reply.get('bucket')} now {reply.get('amt')}")

    run_with_store(obj, go)


def _credit_command(name: str, negative: bool, kind: NotificationKind, help_text: str) -> None:
    """`topup` and `adjust`: the same options, one credits, one corrects."""

    @account_cli.command(name, help=help_text, context_settings={"ignore_unknown_options": True})
    @click.argument("ref")
    @click.argument("amount")
    @_bucket_options
    @click.option("--ref", "payment_ref", default="", help="idempotency reference (a payment id)")
    @click.pass_obj
    def cmd(obj: dict[str, Any], /, ref: str, amount: str, **opts: Any) -> None:
        _credit(
            obj,
            ref,
            amount,
            opts["unit"],
            opts["bucket"],
            opts["expires"],
            opts["rating_groups"],
            opts["priority"],
            negative,
            kind,
            opts["payment_ref"],
        )


_credit_command(
    "topup",
    False,
    NotificationKind.TOPUP,
    "Add AMOUNT to an account (money '10.00', or a bundle: --unit total_octets 1GB).",
)
_credit_command(
    "adjust",
    True,
    NotificationKind.ADJUST,
    "Correct a bucket by AMOUNT (may be negative, never below the bucket's floor).",
)


def _status_command(name: str, status: str, help_text: str) -> None:
    @account_cli.command(name, help=help_text)
    @click.argument("ref")
    @click.pass_obj
    def cmd(obj: dict[str, Any], ref: str) -> None:
        async def go(accounts: Accounts) -> None:
            n = await accounts.set_status(await accounts.resolve(ref), status)
            click.echo(f"{status}; {n} live session(s) notified")

        run_with_store(obj, go)


_status_command(
    "block", "blocked", "Block an account: live sessions are aborted (ASR / Disconnect)."
)
_status_command("unblock", "active", "Make a blocked account active again.")
_status_command("delete", "deleted", "Delete an account: its identities are freed.")

__all__ = ["account_cli", "parse_amount"]
_ = (AccountError, Awaitable, sys)
