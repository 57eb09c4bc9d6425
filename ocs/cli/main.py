"""The ``ocs`` command: serve, account, policy, plan, export, and the
subcommands other packages register under the entry-point group
``ocs.commands`` (``ocs loadtest`` comes from :mod:`loadtest.cli`), as front
ends register under ``ocs.frontends``: the CLI never imports the tools.

The commands import what they use when they run (the store client, pydantic
models, structlog): a command refused for bad input starts in a fraction of
the time, and ``ocs --help`` too.
"""

from __future__ import annotations

from functools import cache
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from ocs import __version__
from ocs.cli.account_cmd import account_cli
from ocs.cli.admin_cmd import admin_cli
from ocs.cli.common import OneLineGroup, fail, pid_file_option
from ocs.cli.export_cmd import export_cli
from ocs.cli.plan_cmd import plan_cli
from ocs.cli.policy_cmd import policy_cli
from ocs.cli.store_cmd import store_cli

if TYPE_CHECKING:
    from ocs.config import Config
    from ocs.policy.loader import PolicySet

DEFAULT_CONFIG = Path("config/ocs.yaml")


@cache
def _registered() -> dict[str, EntryPoint]:
    return {ep.name: ep for ep in entry_points(group="ocs.commands")}


class _Commands(OneLineGroup):
    """The built-in commands, and those registered under ``ocs.commands``,
    imported only when named (or listed by ``--help``)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *_registered()})

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        found = super().get_command(ctx, name)
        if found is None and name in _registered():
            loaded = _registered()[name].load()
            if isinstance(loaded, click.Command):
                found = loaded
        return found


@click.group(cls=_Commands)
@click.version_option(
    __version__, "--version", "-V", prog_name="ocs", message="%(prog)s %(version)s"
)
@click.option(
    "--config",
    "-c",
    "config_file",
    type=click.Path(path_type=Path),
    default=None,
    envvar="OCS_CONFIG",
    help="configuration file (default: config/ocs.yaml if present)",
)
@click.pass_context
def cli(ctx: click.Context, config_file: Path | None) -> None:
    """ocs: online charging server (Diameter Gy, RADIUS accounting, Redis balances)."""
    if config_file is None and DEFAULT_CONFIG.exists():
        config_file = DEFAULT_CONFIG

    @cache
    def config() -> Config:
        from ocs.config import ConfigError, load_config
        from ocs.logging import configure

        # Commands print results on stdout; only warnings go to stderr (serve
        # reconfigures from the configuration before it logs anything). Every
        # command that may log reads the configuration first.
        configure(level="warning", fmt="console")
        try:
            return load_config(config_file)
        except ConfigError as exc:
            fail(str(exc))

    @cache
    def policies() -> PolicySet:
        from ocs.policy.loader import PolicyError, load_policies

        cfg = config()
        try:
            return load_policies(cfg.path(cfg.policies.dir))
        except PolicyError as exc:
            fail(str(exc))
        except OSError as exc:  # a policy file that cannot be read
            fail(f"{exc.filename}: cannot read: {exc.strerror}")

    ctx.obj = {"config": config, "policies": policies, "config_file": config_file}


@cli.command()
@click.option("--workers", type=int, default=None, help="worker processes (default: config)")
@click.option("--worker-index", type=int, default=None, hidden=True)
@click.option("--node-start", type=int, default=None, hidden=True)
@pid_file_option("the node's")
@click.pass_obj
def serve(
    obj: dict[str, Any],
    workers: int | None,
    worker_index: int | None,
    node_start: int | None,
    pid_file: Path | None,
) -> None:
    """Run the server: store, policies, front ends, supervision, /metrics."""
    import time

    from ocs.config import ConfigError
    from ocs.logging import configure
    from ocs.policy.loader import PolicyError
    from ocs.preflight import NodeConflict
    from ocs.runtime import claim_node, run_server
    from ocs.service_manager import pid_file as holding_pid_file
    from ocs.store.embedded import EmbeddedError

    config: Config = obj["config"]()
    configure(config.logging.level, config.logging.format, config.logging.mask_identities)
    obj["policies"]()  # fail early, with the named error, on a bad policy set
    count = workers if workers is not None else config.workers
    if count < 1:
        fail(f"--workers: expected at least 1, got {count}")
    try:
        if worker_index is not None:  # a worker: its supervisor claimed the node
            run_server(config, worker_index, node_start or 0, supervised=True)
            return
        lock = claim_node(config)  # a second node, orphans, a busy port: exit 2 now
        try:
            with holding_pid_file(pid_file):
                start = time.time_ns()  # this node's start: one Origin-State-Id for all workers
                if count > 1:
                    from ocs.workers import run_workers

                    raise SystemExit(run_workers(config, count, start, lock))
                run_server(config, 0, start)
        finally:
            if lock is not None:
                lock.release()
    except (ConfigError, PolicyError, NodeConflict, EmbeddedError) as exc:
        fail(str(exc))


cli.add_command(account_cli)
cli.add_command(admin_cli)
cli.add_command(policy_cli)
cli.add_command(plan_cli)
cli.add_command(export_cli)
cli.add_command(store_cli)


def main() -> None:
    cli(prog_name="ocs")
