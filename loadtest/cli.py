"""``ocs loadtest``: simulated Gy gateways, RADIUS NASes or Nchf SMFs against a running server.

Target, realm, RADIUS secret and Redis come from the same configuration as
``ocs serve`` unless given; see :mod:`loadtest` for the models, the report
and the conservation check. The load tester adds this command to ``ocs``
itself (entry-point group ``ocs.commands`` in pyproject.toml): the ``ocs``
CLI does not import the tools built on it.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import click

from ocs.cli import values
from ocs.cli.common import fail


def _services(obj: dict[str, Any], groups: str, mean: int, seconds: int) -> tuple[Any, ...]:
    from loadtest.spec import Service

    policies = obj["policies"]()
    units = {s.rating_group: s.unit.value for s in policies.services.values()}
    out = []
    for part in groups.split(","):
        rg = _rating_group(part, "--rating-groups")
        unit = units.get(rg, "total_octets")
        out.append(
            Service(rg, unit, seconds if unit == "seconds" else 1 if unit == "events" else mean)
        )
    return tuple(out)


def default_out_dir(spec: Any) -> Path:
    """loadtest-results/<UTC time>-<protocol>-<model> under the working directory."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    return Path("loadtest-results") / f"{stamp}-{spec.protocol.value}-{spec.model.value}"


def _rating_group(text: str, option: str) -> int:
    value = text.strip()
    if not value.isascii() or not value.isdigit() or int(value) > values.MAX_U32:
        raise click.BadParameter(
            f"{text!r}: a rating group is an integer from 0 to {values.MAX_U32}", param_hint=option
        )
    return int(value)


def _range(text: str) -> tuple[int, int]:
    lo, _, hi = text.partition("-")
    try:
        a, b = int(lo), int(hi or lo)
    except ValueError:
        raise click.BadParameter(f"{text!r}: expected N or N-M", param_hint="--mscc") from None
    if a < 1 or b < a:
        raise click.BadParameter(f"{text!r}: expected 1 <= N <= M", param_hint="--mscc")
    return a, b


def _amount(text: str, unit: Any, option: str) -> int:
    try:
        return values.amount(text, unit, zero=True)
    except click.BadParameter as exc:
        exc.param_hint = option
        raise


# Option types: every count at least one, every duration a finite number
# (checked by click before anything runs; one line on stderr, exit 2).
_POSITIVE = values.Finite(min=0, min_open=True)
_NONNEGATIVE = values.Finite(min=0)
_SHARE = values.Finite(0, 1)


@click.command("loadtest")
@click.option(
    "--protocol", type=click.Choice(["gy", "radius", "nchf"]), default="gy", show_default=True
)
@click.option("--model", type=click.Choice(["open", "closed"]), default="closed", show_default=True)
@click.option("--rate", type=_POSITIVE, default=1000.0, show_default=True, help="open: requests/s")
@click.option(
    "--concurrency", type=values.COUNT, default=64, show_default=True, help="closed: sessions"
)
@click.option("--duration", type=_POSITIVE, default=10.0, show_default=True, help="seconds")
@click.option("--sessions", type=values.COUNT, default=None, help="stop after this many sessions")
@click.option("--drain", type=_NONNEGATIVE, default=10.0, show_default=True)
@click.option("--timeout", type=_POSITIVE, default=5.0, show_default=True)
@click.option("--processes", type=values.COUNT, default=1, show_default=True)
@click.option("--connections", type=values.COUNT, default=2, show_default=True, help="per process")
@click.option(
    "--updates", type=values.NONNEGATIVE, default=3, show_default=True, help="CCR-U/Interims"
)
@click.option(
    "--interval", type=_NONNEGATIVE, default=0.0, show_default=True, help="s between steps"
)
@click.option("--rating-groups", default="10,20", show_default=True)
@click.option("--mscc", default="1-2", show_default=True, help="MSCC per CCR: N or N-M")
@click.option(
    "--usage", type=values.NONNEGATIVE, default=500_000, show_default=True, help="octets/report"
)
@click.option("--usage-seconds", type=values.NONNEGATIVE, default=30, show_default=True)
@click.option("--event-share", type=_SHARE, default=0.0, show_default=True)
@click.option("--event-rating-group", type=values.RATING_GROUP, default=40, show_default=True)
@click.option(
    "--accounts", type=values.NONNEGATIVE, default=100, show_default=True, help="accounts to create"
)
@click.option("--plan", default="prepaid", show_default=True)
@click.option("--money", default="100.00", show_default=True, help="opening balance")
@click.option("--octets", default="0", show_default=True, help="octet bucket per account")
@click.option(
    "--subscriber",
    "existing",
    multiple=True,
    callback=values.callback(lambda v: values.identity(f"e164:{v}").value),
    help="use this existing MSISDN",
)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=values.PORT, default=None, help="default: from the configuration")
@click.option("--secret", default=None, help="RADIUS secret (default: configuration)")
@click.option("--check/--no-check", default=True, help="conservation check at the end")
@click.option(
    "--keep-accounts",
    is_flag=True,
    help="keep the accounts it created (default: deleted at the end; test-flagged either way)",
)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="results.json and report.html here (default: loadtest-results/<time>-<protocol>-<model>)",
)
@click.option("--quiet", is_flag=True)
@click.pass_obj
def loadtest_cli(obj: dict[str, Any], /, **opts: Any) -> None:
    """Simulated gateways against a running server; report and conservation check."""
    from loadtest.spec import LoadSpec, Model, Protocol, Shape, Target
    from ocs.config import Config
    from ocs.vocabulary.types import IdentityType, UnitType

    money = _amount(opts["money"], UnitType.MONEY, "--money")
    octets = _amount(opts["octets"], UnitType.TOTAL_OCTETS, "--octets")
    if not opts["host"].strip():
        raise click.BadParameter("'': expected a host name or address", param_hint="--host")
    if opts["accounts"] == 0 and not opts["existing"]:
        raise click.BadParameter(
            "0: expected at least 1 account, or existing ones with --subscriber",
            param_hint="--accounts",
        )
    config: Config = obj["config"]()
    proto = Protocol(opts["protocol"])
    radius = config.radius or {}
    port = opts["port"]
    if port is None:
        port = {
            Protocol.GY: (config.diameter or {}).get("port", 3868),
            Protocol.RADIUS: radius.get("acct_port", 1813),
            Protocol.NCHF: (config.nchf or {}).get("port", 8095),
        }[proto]
    secret = opts["secret"] or next(
        (c.get("secret") for c in radius.get("clients", []) if c.get("secret")), "testing123"
    )
    plan = opts["plan"]
    policies = obj["policies"]()
    if plan not in policies.plans:
        fail(f"--plan: unknown plan {plan!r}")
    mscc = _range(opts["mscc"])
    shape = Shape(
        updates=opts["updates"],
        interval=opts["interval"],
        services=_services(obj, opts["rating_groups"], opts["usage"], opts["usage_seconds"]),
        min_mscc=mscc[0],
        max_mscc=mscc[1],
        event_share=opts["event_share"],
        event_rating_group=opts["event_rating_group"],
        radius_mean_octets=opts["usage"],
    )
    spec = LoadSpec(
        protocol=proto,
        target=Target(
            host=opts["host"],
            port=int(port),
            secret=str(secret).encode(),
            destination_realm=config.node.origin_realm,
        ),
        model=Model(opts["model"]),
        rate=opts["rate"],
        concurrency=opts["concurrency"],
        duration=opts["duration"],
        sessions=opts["sessions"],
        drain=opts["drain"],
        timeout=opts["timeout"],
        connections=opts["connections"],
        processes=opts["processes"],
        shape=shape,
    )
    id_type = IdentityType(radius.get("identity_type", "nai")) if proto is Protocol.RADIUS else None
    _run(obj, spec, plan, policies.plans[plan].currency, opts, id_type, money, octets)


def _run(
    obj: dict[str, Any],
    spec: Any,
    plan: str,
    currency: str,
    opts: dict[str, Any],
    id_type: Any,
    money: int,
    octets: int,
) -> None:
    from loadtest.runner import Provisioning, RunError, RunOptions, run
    from ocs.store.embedded import EmbeddedError, EmbeddedRedis

    config = obj["config"]()
    out_dir = opts["out_dir"] or default_out_dir(spec)
    prov = Provisioning(
        accounts=opts["accounts"],
        plan=plan,
        currency=currency,
        money=money,
        octets=octets,
        existing=tuple(opts["existing"]),
        extra_identity=id_type,
        delete_after=not opts["keep_accounts"],
    )
    embedded = None
    url = config.redis.url
    try:
        if url is None:
            embedded = EmbeddedRedis(
                config.path(config.redis.data_dir),
                config.redis.appendfsync,
                config.redis.port,
                config.redis.binary,
            )
            embedded.start()
            url = embedded.url
        summary = run(
            RunOptions(
                spec,
                url,
                obj["policies"](),
                prov,
                conservation=opts["check"],
                out_dir=out_dir,
                label=f"ocs loadtest {spec.protocol.value} {spec.model.value}",
                quiet=opts["quiet"],
            )
        )
    except (RunError, EmbeddedError, OSError, ValueError) as exc:
        fail(str(exc))
    finally:
        if embedded is not None and not embedded.attached:
            embedded.stop()
    cons = summary.get("conservation")
    if cons is not None and not cons["ok"]:
        raise SystemExit(1)
