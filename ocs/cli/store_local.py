"""``ocs store local-cluster`` / ``local-sentinel``: a store to try ocs on, in the foreground.

Both run every node from the same binary as the embedded server
(:mod:`ocs.store.local_cluster`), on free loopback ports, with their data
under ``--dir`` (default ``var/cluster`` or ``var/sentinel`` under the
configuration's base directory, like every configured path). They print
the URL to configure ocs with (``OCS_REDIS__URL=...``), write it to
``--url-file`` once the store is ready, and stop every node on SIGTERM or
SIGINT. A cluster run again on the same directory comes back with its data
and ports; nothing outlives the command.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

import click

from ocs.cli.common import fail

if TYPE_CHECKING:
    from ocs.config import Config
    from ocs.store.local_cluster import LocalCluster, LocalSentinel

_DIR = click.option(
    "--dir",
    "directory",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="the nodes' data (default: var/cluster or var/sentinel beside the configuration)",
)
_URL_FILE = click.option(
    "--url-file",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="write the store's URL here once it is ready (removed at exit)",
)
_FSYNC = click.option(
    "--appendfsync",
    type=click.Choice(["always", "everysec", "no"]),
    default="everysec",
    show_default=True,
)


@click.command("local-cluster")
@_DIR
@click.option("--primaries", type=click.IntRange(1, 16), default=3, show_default=True)
@click.option("--replicas", type=click.IntRange(0, 2), default=1, show_default=True)
@_FSYNC
@_URL_FILE
@click.pass_obj
def local_cluster_cmd(
    obj: dict[str, Any],
    directory: Path | None,
    primaries: int,
    replicas: int,
    appendfsync: str,
    url_file: Path | None,
) -> None:
    """Run a Valkey Cluster on loopback (default 3 primaries + 3 replicas) until stopped."""
    from ocs.store.local_cluster import LocalCluster

    config: Config = obj["config"]()
    where = directory.absolute() if directory else config.path(Path("var/cluster"))
    setup = LocalCluster(where, primaries, replicas, appendfsync, binary=config.redis.binary)
    _run(setup, url_file, "store local-cluster")


@click.command("local-sentinel")
@_DIR
@_FSYNC
@_URL_FILE
@click.pass_obj
def local_sentinel_cmd(
    obj: dict[str, Any], directory: Path | None, appendfsync: str, url_file: Path | None
) -> None:
    """Run a primary, a replica and three sentinels on loopback until stopped."""
    from ocs.store.local_cluster import LocalSentinel

    config: Config = obj["config"]()
    where = directory.absolute() if directory else config.path(Path("var/sentinel"))
    setup = LocalSentinel(where, appendfsync, binary=config.redis.binary)
    _run(setup, url_file, "store local-sentinel")


def _run(setup: LocalCluster | LocalSentinel, url_file: Path | None, command: str) -> None:
    from ocs.store.embedded import EmbeddedError

    stopping: list[int] = []

    def stop(signum: int, _: FrameType | None) -> None:
        stopping.append(signum)

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, stop)
    try:
        setup.start()  # from the main thread: the nodes live as long as this command
    except (EmbeddedError, OSError) as exc:
        fail(f"{command}: {exc}")
    try:
        click.echo(f"OCS_REDIS__URL={setup.url}", err=True)
        if url_file is not None:
            url_file.parent.mkdir(parents=True, exist_ok=True)
            url_file.write_text(setup.url + "\n")
        while not stopping:
            time.sleep(0.2)
    finally:
        if url_file is not None:
            url_file.unlink(missing_ok=True)
        setup.stop()
