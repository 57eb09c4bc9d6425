"""``ocs store ...``: the store's installation and local setups to try it on.

One module per command, named in :data:`COMMANDS` and imported only when it
runs (or ``--help`` lists it), so another command joins the group with one
line here (``ocs store migrate`` from the store's own module):

- ``init``           record the partition count at install (:mod:`ocs.cli.store_init`)
- ``info``           the store: kind, nodes, partitions and where they live
- ``local-cluster``  a Valkey Cluster on loopback, in the foreground (:mod:`ocs.cli.store_local`)
- ``local-sentinel`` a primary, a replica and three sentinels, in the foreground
- ``migrate``        convert state an older ocs wrote to this layout (:mod:`ocs.cli.store_migrate`)
"""

from __future__ import annotations

from importlib import import_module

import click

from ocs.cli.common import OneLineGroup

COMMANDS = {
    "init": "ocs.cli.store_init:init_cmd",
    "info": "ocs.cli.store_info:info_cmd",
    "local-cluster": "ocs.cli.store_local:local_cluster_cmd",
    "local-sentinel": "ocs.cli.store_local:local_sentinel_cmd",
    "migrate": "ocs.cli.store_migrate:migrate_cmd",
}


class _LazyGroup(OneLineGroup):
    """Commands imported from :data:`COMMANDS` when named."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *COMMANDS})

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        found = super().get_command(ctx, name)
        if found is None and name in COMMANDS:
            module, _, attr = COMMANDS[name].partition(":")
            loaded = getattr(import_module(module), attr)
            if isinstance(loaded, click.Command):
                found = loaded
        return found


@click.group("store", cls=_LazyGroup)
def store_cli() -> None:
    """The store: partitions at install, what it is made of, local clusters to try."""
