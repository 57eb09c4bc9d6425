"""``ocs account ...``: create, show, list, top up, adjust, expire, block, delete,
plan, identity; and (other modules) history, statement, records, sessions,
terminate, import.

Every command reaches the same Redis as ``ocs serve`` with the same
configuration (the embedded server through its socket in the data
directory). Bad input gives one line on stderr and exit status 2. Amounts
are printed in human units (``15.00 EUR``, ISO 8601 times in the policies'
zone); ``--json`` keeps the integers. Every change is written to the audit
trail as ``os:<user>`` via ``cli``; ``--ref`` makes a change idempotent (a
repeat prints "already applied" and changes nothing).
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import click

from ocs.cli import human, values
from ocs.cli.common import already, display_zone, fail, run_change, run_with_store
from ocs.cli.history_cmd import history, records, sessions, statement, terminate
from ocs.cli.import_cmd import import_accounts
from ocs.vocabulary.types import Identity, NotificationKind, UnitType

if TYPE_CHECKING:
    from zoneinfo import ZoneInfo

    from ocs.accounts import Accounts

UNIT_NAMES = [u.value for u in UnitType]
_NUMBER = re.compile(r"-[0-9.]")


@click.group("account")
def account_cli() -> None:
    """Accounts, identities and balances."""


def ref_option(f: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--ref",
        "change_ref",
        default="",
        callback=values.callback(values.reference),
        help="idempotency reference: a repeat changes nothing",
    )(f)


def reason_option(required: bool = False) -> Callable[[Callable[..., Any]], Any]:
    return click.option(
        "--reason",
        callback=values.callback(values.reason),
        help="why (kept in the audit trail)" + ("; required" if required else ""),
        # click >= 8.3 counts an explicit default of None as given: none at all when required.
        **({"required": True} if required else {"default": ""}),
    )


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
@click.option("--test", is_flag=True, help="a load-test account (left out of exports)")
@ref_option
@click.pass_obj
def create(
    obj: dict[str, Any],
    identities: tuple[Identity, ...],
    plan: str,
    money: str,
    account_id: str | None,
    test: bool,
    change_ref: str,
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
        made = await accounts.create_account(
            ids, plan, currency, buckets, account_id, actor=Actor.cli(), ref=change_ref, test=test
        )
        # The plan's recurring bundles start with the account (idempotent).
        await Renewals(accounts.redis, accounts.partitions, policies).renew_account(made.account_id)
        click.echo(made.account_id)
        if made.replayed:
            click.echo(already(change_ref), err=True)

    run_with_store(obj, go)


@account_cli.command("show")
@click.argument("ref", callback=values.callback(values.account_ref))
@click.option("--json", "as_json", is_flag=True, help="machine-readable output (integers)")
@click.pass_obj
def show(obj: dict[str, Any], ref: str, as_json: bool) -> None:
    """Show an account (by id or identity): buckets, reservations, live sessions."""
    zone = None if as_json else display_zone(obj)

    async def go(accounts: Accounts) -> None:
        view = await accounts.show(await accounts.resolve(ref))
        if zone is None:
            click.echo(json.dumps(view, indent=2, sort_keys=True))
            return
        _print_account(view, zone)

    run_with_store(obj, go)


def _print_account(view: dict[str, Any], zone: ZoneInfo) -> None:
    cur = str(view.get("currency", ""))
    money = sum(b["amount"] for b in view["buckets"] if b["unit"] == "money")
    avail = sum(max(b["available"], 0) for b in view["buckets"] if b["unit"] == "money")
    test = ", test account" if view.get("test") == "1" else ""
    click.echo(
        f"account    {view['account']}  ({view.get('status')}, plan {view.get('plan')}, "
        f"{cur}{test})"
    )
    click.echo(f"identities {', '.join(view['identities'])}")
    click.echo(f"money      {human.money(money, cur)}  (available {human.money(avail, cur)})")
    for b in view["buckets"]:
        line = (
            f"  bucket {b['id']:<22} {b['unit']:<13} {human.amount(b['amount'], b['unit'], cur)}"
            f"  reserved {human.amount(b['reserved'], b['unit'], cur)}"
        )
        if b["expires"]:
            line += f"  expires {human.when(b['expires'], zone)}"
        click.echo(line)
    click.echo(f"sessions   {len(view['sessions'])} live")


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


class _SignedAmount(click.Command):
    """topup / adjust: unknown options pass as arguments (an amount may be negative,
    '-0.75'), so a mistyped option is caught here, with click's suggestion."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        names = {n for p in self.params for n in getattr(p, "opts", ()) if n[:1] == "-"}
        takes_value = {
            n for p in self.params if isinstance(p, click.Option) and not p.is_flag for n in p.opts
        }
        previous = ""
        for arg in args:
            if arg == "--":
                break
            name = arg.split("=", 1)[0]
            if (
                arg.startswith("-")
                and not _NUMBER.match(arg)
                and name not in names
                and previous not in takes_value
            ):
                raise click.NoSuchOption(
                    name, possibilities=difflib.get_close_matches(name, sorted(names), n=1), ctx=ctx
                )
            previous = arg
        return super().parse_args(ctx, args)


def _credit(
    obj: dict[str, Any],
    ref: str,
    amount: str,
    opts: dict[str, Any],
    negative: bool,
    kind: NotificationKind,
) -> None:
    from ocs.accounts import BucketSpec
    from ocs.audit import Actor

    u = UnitType(opts["unit"])
    try:
        delta = values.amount(amount, u, negative=negative)
    except click.BadParameter as exc:
        exc.param_hint = "AMOUNT"
        raise
    spec = BucketSpec(
        u,
        0,
        bucket_id=opts["bucket"],
        expires=opts["expires"] or 0,
        rating_groups=opts["rating_groups"],
        priority=opts["priority"],
    )
    payment, reason = opts["change_ref"], opts["reason"] or ""
    zone = display_zone(obj)

    async def go(accounts: Accounts) -> None:
        acct = await accounts.resolve(ref)
        reply = await accounts.credit(acct, spec, delta, kind, payment, actor=Actor.cli(reason))
        if reply.get("dup"):
            click.echo(already(payment))
            return
        view = await accounts.show(acct)
        cur = str(view.get("currency", ""))
        bucket = next((b for b in view["buckets"] if b["id"] == reply["bucket"]), None)
        line = f"bucket {reply.get('bucket')} now {human.amount(int(reply['amt']), u.value, cur)}"
        if bucket is not None and bucket["expires"]:
            line += f", expires {human.when(bucket['expires'], zone)}"
        click.echo(line)

    run_with_store(obj, go)


def _credit_command(name: str, negative: bool, kind: NotificationKind, help_text: str) -> None:
    """`topup` and `adjust`: the same options, one credits, one corrects."""

    @account_cli.command(
        name,
        cls=_SignedAmount,
        help=help_text,
        context_settings={"ignore_unknown_options": True},
    )
    @click.argument("ref", callback=values.callback(values.account_ref))
    @click.argument("amount")
    @_bucket_options
    @ref_option
    @reason_option(required=negative)
    @click.pass_obj
    def cmd(obj: dict[str, Any], /, ref: str, amount: str, **opts: Any) -> None:
        _credit(obj, ref, amount, opts, negative, kind)


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
    "Correct a bucket by AMOUNT (may be negative, never below the bucket's floor); --reason "
    "is required.",
)


@account_cli.command("expire")
@click.argument("ref", callback=values.callback(values.account_ref))
@click.argument("bucket", callback=values.callback(values.bucket_id))
@click.option(
    "--at",
    "at",
    default="now",
    callback=values.callback(values.instant),
    help="when: now (default: what it holds is forfeited), an ISO time, +1d",
)
@reason_option()
@ref_option
@click.pass_obj
def expire(
    obj: dict[str, Any], ref: str, bucket: str, at: int, reason: str, change_ref: str
) -> None:
    """Give BUCKET a new expiry; now forfeits what it holds."""
    from ocs.audit import Actor

    zone = display_zone(obj)
    run_change(
        obj,
        ref,
        change_ref,
        lambda accounts, acct: accounts.expire_bucket(
            acct, bucket, at, actor=Actor.cli(reason), ref=change_ref
        ),
        lambda reply: (
            f"bucket {bucket} expires {human.when(int(reply['exp']), zone)}; "
            f"{reply.get('sessions', 0)} live session(s) notified"
        ),
    )


def _status_command(name: str, status: str, help_text: str) -> None:
    @account_cli.command(name, help=help_text)
    @click.argument("ref", callback=values.callback(values.account_ref))
    @reason_option()
    @ref_option
    @click.pass_obj
    def cmd(obj: dict[str, Any], ref: str, reason: str, change_ref: str) -> None:
        from ocs.audit import Actor

        run_change(
            obj,
            ref,
            change_ref,
            lambda accounts, acct: accounts.change_status(
                acct, status, actor=Actor.cli(reason), ref=change_ref
            ),
            lambda reply: f"{status}; {reply.get('sessions', 0)} live session(s) notified",
        )


_status_command(
    "block", "blocked", "Block an account: live sessions are aborted (ASR / Disconnect)."
)
_status_command("unblock", "active", "Make a blocked account active again.")
_status_command("delete", "deleted", "Delete an account: its identities are freed.")


@account_cli.command("plan")
@click.argument("ref", callback=values.callback(values.account_ref))
@click.argument("plan")
@click.option("--no-renew", is_flag=True, help="do not renew the new plan's allowances now")
@reason_option()
@ref_option
@click.pass_obj
def change_plan(
    obj: dict[str, Any], ref: str, plan: str, no_renew: bool, reason: str, change_ref: str
) -> None:
    """Move an account to PLAN (same currency); live sessions are re-authorised."""
    policies = obj["policies"]()
    if plan not in policies.plans:
        fail(f"PLAN: unknown plan {plan!r} (expected one of {', '.join(sorted(policies.plans))})")

    async def go(accounts: Accounts) -> None:
        from ocs.audit import Actor
        from ocs.plans import Renewals

        acct = await accounts.resolve(ref)
        reply = await accounts.assign_plan(
            acct, plan, policies.plans[plan].currency, actor=Actor.cli(reason), ref=change_ref
        )
        if reply.get("dup"):
            click.echo(already(change_ref))
            return
        renewed = 0
        if not no_renew:
            renewed = await Renewals(accounts.redis, accounts.partitions, policies).renew_account(
                acct
            )
        click.echo(
            f"plan {reply.get('from')} -> {plan}; {reply.get('sessions', 0)} live session(s) "
            f"re-authorised; {renewed} allowance(s) renewed"
        )

    run_with_store(obj, go)


@account_cli.group("identity")
def identity_cli() -> None:
    """Add or remove an identity of an account."""


def _identity_command(name: str, remove: bool, help_text: str) -> None:
    @identity_cli.command(name, help=help_text)
    @click.argument("ref", callback=values.callback(values.account_ref))
    @click.argument("identity", callback=values.callback(values.identity))
    @reason_option()
    @ref_option
    @click.pass_obj
    def cmd(
        obj: dict[str, Any], ref: str, identity: Identity, reason: str, change_ref: str
    ) -> None:
        from ocs.audit import Actor

        def call(accounts: Accounts, acct: str) -> Awaitable[dict[str, Any]]:
            change = accounts.remove_identity if remove else accounts.add_identity
            return change(acct, identity, actor=Actor.cli(reason), ref=change_ref)

        done = f"{'removed' if remove else 'added'} {identity.key()}"
        run_change(obj, ref, change_ref, call, lambda _: done)


_identity_command("add", False, "Give the account IDENTITY (it must be free).")
_identity_command("remove", True, "Take IDENTITY from the account (never its last); it is freed.")

for _command in (history, statement, records, sessions, terminate, import_accounts):
    account_cli.add_command(_command)

__all__ = ["account_cli"]
