"""``ocs plan renew``: renew recurring allowances now (for cron; idempotent)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from ocs.cli import values
from ocs.cli.common import run_with_store

if TYPE_CHECKING:
    from ocs.accounts import Accounts


@click.group("plan")
def plan_cli() -> None:
    """Plans' recurring allowances."""


@plan_cli.command("renew")
@click.option(
    "--account",
    "ref",
    default=None,
    callback=values.callback(values.account_ref),
    help="only this account (id or identity)",
)
@click.pass_obj
def renew(obj: dict[str, Any], ref: str | None) -> None:
    """Renew what is due; running it twice in a period renews once."""

    async def go(accounts: Accounts) -> None:
        from ocs.plans import Renewals

        renewals = Renewals(accounts.redis, accounts.partitions, obj["policies"]())
        if ref:
            n = await renewals.renew_account(await accounts.resolve(ref))
            click.echo(f"renewed {n} allowance(s)")
        else:
            seen, n = await renewals.renew_all()
            click.echo(f"renewed {n} allowance(s) over {seen} account(s)")

    run_with_store(obj, go)
