"""``ocs store migrate``: convert state written by an older ocs to this
version's layout (:mod:`ocs.store.migrate`). Run it with every server
stopped: ``ocs serve`` refuses to start on a store that needs it, and a
request that meets old state is refused (nothing changed) with a message
naming this command.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from ocs.cli.common import run_with_client

if TYPE_CHECKING:
    from ocs.store.client import Store


@click.command("migrate")
@click.pass_obj
def migrate_cmd(obj: dict[str, Any]) -> None:
    """Convert accounts and sessions an older ocs wrote (servers stopped)."""
    from ocs.store.migrate import migrate

    async def action(client: Store) -> None:
        report = await migrate(client, progress=lambda line: click.echo(line, err=True))
        click.echo(
            f"store migrated: {report.accounts} accounts and {report.sessions} sessions "
            f"converted, {report.already} already in this layout"
        )

    run_with_client(obj, action, "store migrate")
