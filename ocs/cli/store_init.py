"""``ocs store init --partitions N``: the partition count, chosen once at install.

Accounts are spread over N partitions (``crc32(account id) mod N``); every
key of an account shares its partition's hash tag ``{pNN}``, so each
partition is one Redis Cluster slot and N bounds the primaries a cluster
can spread the accounts over (README "Redis Cluster"). The count is recorded
in the store (``ocs:meta:partitions``); asking for another one later is
refused: every account would move.
"""

from __future__ import annotations

from typing import Any

import click

from ocs.cli.common import fail, run_with_client
from ocs.store.keys import DEFAULT_PARTITIONS


@click.command("init")
@click.option(
    "--partitions",
    type=int,
    default=DEFAULT_PARTITIONS,
    show_default=True,
    help="partition count: a power of two up to 1024 (fixed from then on)",
)
@click.pass_obj
def init_cmd(obj: dict[str, Any], partitions: int) -> None:
    """Record the partition count of a new store (refused if it has another)."""
    from ocs.store.client import Store, check_partition_count, init_partitions

    try:
        check_partition_count(partitions)
    except ValueError as exc:
        fail(f"store init: {exc}")

    async def action(client: Store) -> None:
        created = await init_partitions(client, partitions)
        state = "recorded" if created else "already recorded"
        click.echo(f"partitions: {partitions} ({state})")

    run_with_client(obj, action, "store init")
