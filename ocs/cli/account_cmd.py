"""``ocs account ...``: create, show, list, top up, adjust, block, delete.

Every command reaches the same Redis as ``ocs serve`` with the same
configuration (the embedded server through its socket in the data
directory). Bad input gives one line on stderr and exit status 2.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import click

from ocs.cli import values
from ocs.cli.common import fail, run_with_store
from ocs.policy.quantities import format_money
from ocs.vocabulary.types import Identity, NotificationKind, UnitType

if TYPE_CHECKING:
    from ocs.accounts import Accounts

UNIT_NAMES = [u.value for u in UnitType]


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
    callback=values.callback(values.identity),
    help="TYPE:VALUE, e.g. e164:33612345678, imsi:208..., nai:user@isp (repeatable)",
)
@click.option("--plan", required=True, help="a plan name from the policies")
@click.option("--money", default="0", help="opening money balance, e.g. 10.00")
@click.option(
    "--id",
    "account_id",
    default=None,
    callback=values.callback(values.account_id),
    help="account id (default: generated)",
)
@click.pass_obj
def create(
    obj: dict[str, Any],
    identities: tuple[Identity, ...],
    plan: str,
    money: str,
    account_id: str | None,
) -> None:
    """Create an account with its identities and opening balance."""
    if len({i.key() for i in identities}) != len(identities):
        raise click.BadParameter("the same identity twice", param_hint="--identity")
    opening = values.amount(money, UnitType.MONEY, zero=True)
    policies = obj["policies"]()
    if plan not in policies.plans:
        fail(f"--plan: unknown plan {plan!r} (expected one of {', '.join(sorted(policies.plans))})")
    currency = policies.plans[plan].currency
    ids = list(identities)

    async def go(accounts: Accounts) -> None:
        from ocs.accounts import BucketSpec
        from ocs.audit import Actor
        from ocs.plans import Renewals

        buckets = [BucketSpec(UnitType.MONEY, opening)]
        acct = await accounts.create(ids, plan, currency, buckets, account_id, actor=Actor.cli())
        # The plan's recurring bundles start with the account (idempotent).
        await Renewals(accounts.redis, accounts.partitions, policies).renew_account(acct)
        click.echo(acct)

    run_with_store(obj, go)


@account_cli.command("show")
@click.argument("ref", callback=values.callback(values.account_ref))
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
@click.option("--limit", type=values.COUNT, default=1000, show_default=True)
@click.pass_obj
def list_accounts(obj: dict[str, Any], limit: int) -> None:
    """List account ids."""

    async def go(accounts: Accounts) -> None:
        for acct in await accounts.list(limit):
            click.echo(acct)

    run_with_store(obj, go)


def _bucket_options(f: Callable[..., None]) -> Callable[..., None]:
    f = click.option("--unit", type=click.Choice(UNIT_NAMES), default="money", show_default=True)(f)
    f = click.option(
        "--bucket",
        default=None,
        callback=values.callback(values.bucket_id),
        help="bucket id (default: the main money bucket)",
    )(f)
    f = click.option(
        "--expires",
        default=None,
        callback=values.callback(values.expiry),
        help="+30d, +12h, ISO date or unix seconds (in the future)",
    )(f)
    f = click.option(
        "--rating-group",
        "rating_groups",
        type=values.RATING_GROUP,
        multiple=True,
        help="restrict a new bucket to these rating groups",
    )(f)
    f = click.option(
        "--priority", type=values.PRIORITY, default=100, show_default=True, help="lower first"
    )(f)
    return f


def _credit(
    obj: dict[str, Any],
    ref: str,
    amount: str,
    unit: str,
    bucket: str | None,
    expires: int | None,
    rating_groups: tuple[int, ...],
    priority: int,
    negative: bool,
    kind: NotificationKind,
    payment_ref: str,
    reason: str,
) -> None:
    from ocs.accounts import BucketSpec
    from ocs.audit import Actor

    u = UnitType(unit)
    try:
        delta = values.amount(amount, u, negative=negative)
    except click.BadParameter as exc:
        exc.param_hint = "AMOUNT"
        raise
    spec = BucketSpec(
        u,
        0,
        bucket_id=bucket,
        expires=expires or 0,
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
        reply = await accounts.credit(
            await accounts.resolve(ref), spec, delta, kind, payment_ref, actor=Actor.cli(reason)
        )
        if reply.get("dup"):
            click.echo(f"already applied (--ref {payment_ref}): bucket {reply.get('bucket')}")
            return
        click.echo(f"bucket {reply.get('bucket')} now {reply.get('amt')}")

    run_with_store(obj, go)


def _credit_command(name: str, negative: bool, kind: NotificationKind, help_text: str) -> None:
    """`topup` and `adjust`: the same options, one credits, one corrects."""

    @account_cli.command(name, help=help_text, context_settings={"ignore_unknown_options": True})
    @click.argument("ref", callback=values.callback(values.account_ref))
    @click.argument("amount")
    @_bucket_options
    @click.option(
        "--ref",
        "payment_ref",
        default="",
        callback=values.callback(values.reference),
        help="idempotency reference (a payment id)",
    )
    @click.option(
        "--reason",
        callback=values.callback(values.reason),
        help="why (kept in the audit trail)" + ("; required" if negative else ""),
        # click >= 8.3 counts an explicit default of None as given: none at all when required.
        **({"required": True} if negative else {"default": ""}),
    )
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
            opts["reason"] or "",
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
    @click.argument("ref", callback=values.callback(values.account_ref))
    @click.pass_obj
    def cmd(obj: dict[str, Any], ref: str) -> None:
        from ocs.audit import Actor

        async def go(accounts: Accounts) -> None:
            n = await accounts.set_status(await accounts.resolve(ref), status, actor=Actor.cli())
            click.echo(f"{status}; {n} live session(s) notified")

        run_with_store(obj, go)


_status_command(
    "block", "blocked", "Block an account: live sessions are aborted (ASR / Disconnect)."
)
_status_command("unblock", "active", "Make a blocked account active again.")
_status_command("delete", "deleted", "Delete an account: its identities are freed.")

__all__ = ["account_cli"]
