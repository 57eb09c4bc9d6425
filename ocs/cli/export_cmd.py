"""``ocs export``: run the charged-session exporter, or verify its files.

* ``ocs export``          follow the streams until SIGTERM / SIGINT (clean stop)
* ``ocs export --once``   drain what is there, close complete periods, exit (cron)
* ``ocs export verify DIR``  recompute totals from the rows and check them
  against batch metadata and manifests; exit 1 with one line on stderr on
  any mismatch.

Exit status: 0 done, 1 a write failure (``--once``) or a verify mismatch,
2 a configuration error.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path
from types import FrameType
from typing import Any

import click
import redis
import yaml

from ocs.export.config import ExportConfig, load_export_config
from ocs.export.exporter import Exporter
from ocs.export.verify import verify

DEFAULT_CONFIG = Path("config/ocs.yaml")
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"


def _read_config(path: Path | None) -> tuple[dict[str, Any], Path | None]:
    """The whole config mapping (empty if no file is given and the default is absent)."""
    if path is None:
        if not DEFAULT_CONFIG.exists():
            return {}, None
        path = DEFAULT_CONFIG
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise click.ClickException(f"{path}: {exc}") from exc
    if not isinstance(raw, dict):
        raise click.ClickException(f"{path}: expected a mapping at the top level")
    return raw, path


def _redis_url(option: str | None, whole: dict[str, Any]) -> str:
    if option:
        return option
    section = whole.get("redis")
    if isinstance(section, dict) and isinstance(section.get("url"), str):
        return str(section["url"])
    return DEFAULT_REDIS_URL


def _export_config(
    whole: dict[str, Any], path: Path | None, output_dir: Path | None
) -> ExportConfig:
    from pydantic import ValidationError

    try:
        from ocs.config import ConfigError
    except ImportError:  # pragma: no cover - until ocs.config lands
        ConfigError = ValidationError  # type: ignore[misc,assignment]

    raw = dict(whole.get("export") or {})
    if output_dir is not None:
        raw["output_dir"] = str(output_dir)
    try:
        return load_export_config(raw, path)
    except ConfigError as exc:
        click.echo(f"ocs export: {exc}", err=True)
        sys.exit(2)


@click.group("export", invoke_without_command=True)
@click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path, dir_okay=False),
    envvar="OCS_CONFIG",
    help="config file (default config/ocs.yaml if present)",
)
@click.option("--redis-url", envvar="OCS_REDIS_URL", help="overrides redis.url of the config")
@click.option(
    "--output-dir",
    type=click.Path(path_type=Path, file_okay=False),
    help="overrides export.output_dir",
)
@click.option("--once", is_flag=True, help="drain the streams, close complete periods, exit")
@click.pass_context
def export_cli(
    ctx: click.Context,
    config_path: Path | None,
    redis_url: str | None,
    output_dir: Path | None,
    once: bool,
) -> None:
    """Export charged-session records to invoice files (exactly once)."""
    if ctx.invoked_subcommand is not None:
        return
    whole, path = _read_config(config_path)
    cfg = _export_config(whole, path, output_dir)
    client = redis.Redis.from_url(
        _redis_url(redis_url, whole),
        decode_responses=False,
        socket_timeout=10,
        socket_connect_timeout=5,
    )
    exporter = Exporter(client, cfg)

    def _stop(signum: int, frame: FrameType | None) -> None:
        exporter.stop()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    status = exporter.run(once=once)
    if status != 0:
        click.echo(
            f"ocs export: stopped with nothing acknowledged past the failure: "
            f"{exporter.health()['reason']}",
            err=True,
        )
    client.close()
    sys.exit(status)


@export_cli.command("verify")
@click.argument("directory", type=click.Path(path_type=Path, file_okay=False))
def verify_cmd(directory: Path) -> None:
    """Recompute totals from the rows under DIRECTORY and check every manifest."""
    report = verify(directory)
    if not report.ok:
        more = f" (+{len(report.problems) - 1} more)" if len(report.problems) > 1 else ""
        click.echo(f"export verify: FAILED: {report.problems[0]}{more}", err=True)
        sys.exit(1)
    click.echo(
        f"export verify: ok: {report.periods} periods ({report.closed} closed), "
        f"{report.batches} batches, {report.rows} rows, {report.records} records"
    )


def main() -> None:  # pragma: no cover - `python -m ocs.export`
    export_cli(prog_name=os.environ.get("OCS_PROG", "ocs export"))
