"""``ocs policy check FILE...`` and ``ocs policy show``: validate without a server."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from ocs.cli.common import fail


@click.group("policy")
def policy_cli() -> None:
    """Policy files: check and show."""


@policy_cli.command("check")
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
def check(files: tuple[Path, ...]) -> None:
    """Validate policy FILES as one set; prints the set's version."""
    from ocs.policy.loader import PolicyError, load_policy_files

    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        fail(f"{', '.join(missing)}: no such file")
    try:
        policies = load_policy_files(files)
    except PolicyError as exc:
        fail(str(exc))
    click.echo(
        f"ok: {len(policies.services)} services, {len(policies.tariffs)} tariffs, "
        f"{len(policies.plans)} plans; version {policies.version}"
    )


@policy_cli.command("show")
@click.pass_obj
def show(obj: dict[str, Any]) -> None:
    """Print the policy set the configuration points at, as JSON."""
    policies = obj["policies"]()
    click.echo(
        json.dumps(
            {
                "version": policies.version,
                "files": list(policies.files),
                "timezone": policies.timezone,
                "services": {k: v.model_dump(mode="json") for k, v in policies.services.items()},
                "tariffs": {k: v.model_dump(mode="json") for k, v in policies.tariffs.items()},
                "quotas": {k: v.model_dump(mode="json") for k, v in policies.quotas.items()},
                "plans": {k: v.model_dump(mode="json") for k, v in policies.plans.items()},
                "defaults": policies.defaults.model_dump(mode="json")
                if policies.defaults
                else None,
            },
            indent=2,
            sort_keys=True,
        )
    )
