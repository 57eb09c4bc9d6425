"""``ocs export``: run the charged-session and audit exporters, or verify their files.

* ``ocs export``          follow the streams until SIGTERM / SIGINT (clean stop)
* ``ocs export --once``   drain what is there, close complete periods, exit (cron)
* ``ocs export verify DIR``  recompute totals from the rows and check them
  against batch metadata and manifests; exit 1 with one line on stderr on
  any mismatch.

Two exporters run in one process, one per feed (:mod:`ocs.export.feeds`):
the charged records (invoice rows) on the main thread, the audit entries
(operator changes) on a second one; each acknowledges only what it wrote.
The exporter reads the ``export:`` section of the configuration and the same
``redis:`` section as ``ocs serve`` (attaching to the embedded server when no
URL is set). It serves its own ``/metrics`` and ``/health`` on
``export.metrics_port`` while following. Exit status: 0 done, 1 a write
failure (``--once``) or a verify mismatch, 2 a configuration error.
"""

from __future__ import annotations

import asyncio
import signal
import sys
import threading
import time
from contextlib import ExitStack
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

import click

from ocs.cli.common import OneLineGroup, fail, one_line, pid_file_option

if TYPE_CHECKING:  # the rest is imported when a command runs (see ocs.cli.main)
    from ocs.config import Config
    from ocs.export.config import ExportConfig
    from ocs.store.client import SyncStore

DEFAULT_CONFIG = Path("config/ocs.yaml")


def _log() -> Any:
    import structlog

    return structlog.get_logger("ocs.export")


def _config(ctx: click.Context, path: Path | None) -> Config:
    from ocs.config import ConfigError, load_config

    try:
        if path is not None:
            return load_config(path)
        if ctx.obj and "config" in ctx.obj:
            config: Config = ctx.obj["config"]()
            return config
        return load_config(DEFAULT_CONFIG if DEFAULT_CONFIG.exists() else None)
    except ConfigError as exc:
        fail(str(exc))


def _export_config(config: Config, output_dir: Path | None) -> ExportConfig:
    from ocs.config import ConfigError
    from ocs.export.config import load_export_config

    raw = dict(config.export or {})
    if output_dir is not None:
        raw["output_dir"] = str(output_dir)
    try:
        cfg = load_export_config(raw, config.file)
    except ConfigError as exc:
        fail(str(exc))
    return cfg.model_copy(update={"output_dir": config.path(cfg.output_dir)})


def _redis(config: Config, url: str | None, once: bool, stack: ExitStack) -> SyncStore:
    """A client for --redis-url, the configured store (one server, a cluster,
    Sentinel), or the embedded server of ``ocs serve``.

    The exporter never starts the embedded server itself (stopping it at exit
    would pull the store from under ``ocs serve``): following, it waits for
    the server to come up; ``--once`` fails at once.
    """
    from ocs.store.client import StoreConfigError, connect_sync, target_of

    if url is None and config.redis.embedded:
        from ocs.store.embedded import EmbeddedRedis

        embedded = EmbeddedRedis.from_config(config)
        while not embedded.is_running():
            if once:
                fail(
                    f"export: no embedded Redis running in {embedded.data_dir} "
                    "(start `ocs serve`, or set redis.url)"
                )
            _log().info("export_waiting_for_store", data_dir=str(embedded.data_dir))
            time.sleep(1.0)
        url = embedded.url
    try:
        client = connect_sync(target_of(config.redis, url), timeout=10)
    except StoreConfigError as exc:
        fail(f"export: {exc}")
    stack.callback(client.close)
    return client


def _serve_http(host: str, port: int, details: bool, stack: ExitStack) -> None:
    """/metrics, /livez, /readyz, /health on a daemon thread's event loop (the exporter blocks)."""
    from ocs.export.metrics import REGISTRY
    from ocs.http import serve_http

    loop = asyncio.new_event_loop()
    server = loop.run_until_complete(serve_http(host, port, REGISTRY, details))
    thread = threading.Thread(target=loop.run_forever, name="export-http", daemon=True)
    thread.start()
    bound = server.sockets[0].getsockname()[1] if server.sockets else port
    _log().info("export_http_listening", host=host, port=bound)

    def close() -> None:
        loop.call_soon_threadsafe(server.close)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)

    stack.callback(close)


@click.group("export", cls=OneLineGroup, invoke_without_command=True)
@click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="config file (default: the one given to `ocs -c`)",
)
@click.option("--redis-url", default=None, help="overrides redis.url of the config")
@click.option(
    "--output-dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="overrides export.output_dir",
)
@click.option("--once", is_flag=True, help="drain the streams, close complete periods, exit")
@pid_file_option("the exporter's")
@click.pass_context
def export_cli(
    ctx: click.Context,
    config_path: Path | None,
    redis_url: str | None,
    output_dir: Path | None,
    once: bool,
    pid_file: Path | None,
) -> None:
    """Export charged-session records to invoice files, exactly once."""
    if ctx.invoked_subcommand is not None:
        return
    config = _config(ctx, config_path)
    from ocs.logging import configure

    configure(config.logging.level, config.logging.format, config.logging.mask_identities)
    cfg = _export_config(config, output_dir)
    from ocs.service_manager import pid_file as holding_pid_file

    with ExitStack() as stack:
        stack.enter_context(holding_pid_file(pid_file))
        sys.exit(_run(config, cfg, redis_url, once, stack))


def _run(
    config: Config, cfg: ExportConfig, redis_url: str | None, once: bool, stack: ExitStack
) -> int:
    import redis

    from ocs.export.exporter import Exporter
    from ocs.export.feeds import AUDIT
    from ocs.export.layout import LayoutMismatch
    from ocs.http import register_health, set_listeners_up, unregister_health
    from ocs.service_manager import notify

    try:
        client = _redis(config, redis_url, once, stack)
        exporter = Exporter(client, cfg)
        audit = Exporter(client, cfg, feed=AUDIT)
        if not once and config.metrics.enabled and cfg.metrics_port is not None:
            host = cfg.metrics_host or config.metrics.host
            _serve_http(host, cfg.metrics_port, config.metrics.health_details, stack)
    except OSError as exc:
        fail(f"export: {exc}")
    register_health("export", exporter.health)
    stack.callback(unregister_health, "export")
    register_health("export_audit", audit.health)
    stack.callback(unregister_health, "export_audit")
    set_listeners_up(True)  # connected to the store: ready once writes succeed
    if not once:
        notify("READY=1", "STATUS=exporting")  # systemd Type=notify
        stack.callback(notify, "STOPPING=1")

    def _stop(signum: int, frame: FrameType | None) -> None:
        exporter.stop()
        audit.stop()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    side = _AuditThread(audit, once)
    side.start()
    try:
        try:
            status = exporter.run(once=once)
        finally:
            if not once:
                audit.stop()  # the records exporter stopped: so does the audit one
            side.join()
        if side.error is not None:
            raise side.error
    except LayoutMismatch as exc:
        fail(str(exc))
    except (redis.RedisError, redis.exceptions.RedisClusterException) as exc:
        fail(f"export: redis: {exc}")
    for which, ran, code in (("records", exporter, status), ("audit", audit, side.status)):
        if code != 0:
            click.echo(
                f"ocs export: {which} stopped, nothing acknowledged past the failure: "
                f"{ran.health()['reason']}",
                err=True,
            )
    return max(status, side.status)


class _AuditThread(threading.Thread):
    """The audit exporter beside the records one (its own thread, same process)."""

    def __init__(self, exporter: Any, once: bool) -> None:
        super().__init__(name="export-audit", daemon=True)
        self.exporter = exporter
        self.once = once
        self.status = 0
        self.error: Exception | None = None

    def run(self) -> None:
        try:
            self.status = self.exporter.run(once=self.once)
        except Exception as exc:  # raised again on the main thread, as the records one's
            self.error = exc
            self.status = 1


@export_cli.command("verify")
@click.argument("directory", type=click.Path(path_type=Path, file_okay=False, exists=True))
def verify_cmd(directory: Path) -> None:
    """Recompute totals from the rows under DIRECTORY and check every manifest.

    Exit 0 verified, 1 a problem found in the files, 2 bad input (no such
    directory, or no export in it)."""
    from ocs.export.layout import LAYOUT
    from ocs.export.verify import verify

    try:
        report = verify(directory)
    except OSError as exc:
        fail(f"export verify: {directory}: {exc.strerror or exc}")
    if report.empty:
        fail(f"export verify: {directory}: no export here (no {LAYOUT}, no period directory)")
    if not report.ok:
        more = f" (+{len(report.problems) - 1} more)" if len(report.problems) > 1 else ""
        click.echo(f"export verify: FAILED: {one_line(report.problems[0])}{more}", err=True)
        sys.exit(1)
    click.echo(
        f"export verify: ok: {report.periods} periods ({report.closed} closed), "
        f"{report.batches} batches, {report.rows} rows, {report.records} records, "
        f"{report.audit_entries} audit entries"
    )
