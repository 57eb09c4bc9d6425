"""``ocs store info``: what the configured store is made of.

The kind (one server, cluster, Sentinel), the partition count, and for a
cluster where each partition lives now: its slot, the primary serving it
and that primary's replicas.
"""

from __future__ import annotations

import json
from typing import Any

import click

from ocs.cli.common import run_with_client


@click.command("info")
@click.option("--json", "as_json", is_flag=True, help="machine-readable output")
@click.pass_obj
def info_cmd(obj: dict[str, Any], as_json: bool) -> None:
    """Kind of store, partitions, and (cluster) which node serves each partition."""
    from ocs.store.client import Store, describe_store

    async def action(client: Store) -> None:
        info = await describe_store(client)
        if as_json:
            click.echo(json.dumps(info, indent=2, sort_keys=True))
            return
        click.echo(f"store: {info['store']}")
        recorded = "" if info["partitions_recorded"] else " (not recorded yet: the default)"
        click.echo(f"partitions: {info['partitions']}{recorded}")
        for node in info.get("primaries", []):
            parts = " ".join(str(p) for p in node["partitions"]) or "-"
            replicas = ", ".join(node["replicas"]) or "none"
            click.echo(
                f"primary {node['address']}: {node['slots']} slots, partitions {parts}; "
                f"replicas {replicas}"
            )

    run_with_client(obj, action, "store info")
