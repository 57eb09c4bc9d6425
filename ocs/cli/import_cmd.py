"""``ocs account import FILE.csv|FILE.jsonl``: create many accounts at once.

Rows as ``POST /accounts:batch`` takes them (:mod:`ocs.bulk_import`: id,
identities, plan, money, test, ref). Prints the counts, and each refused row
with its line and the reason; exit 0 when every row is in (created or
already there), 1 when some row was refused, 2 when the file cannot be read.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from ocs.cli.common import fail, run_with_store

if TYPE_CHECKING:
    from ocs.accounts import Accounts


@click.command("import")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False, exists=True))
@click.option("--json", "as_json", is_flag=True, help="the report as JSON")
@click.pass_obj
def import_accounts(obj: dict[str, Any], file: Path, as_json: bool) -> None:
    """Create the accounts of FILE (.csv with a header, or .jsonl), pipelined;
    idempotent per row (importing it again creates nothing twice)."""
    from ocs.audit import Actor
    from ocs.bulk_import import Importer, csv_rows, jsonl_rows

    if file.suffix not in (".csv", ".jsonl"):
        fail(f"account import: {file}: expected a .csv or .jsonl file")
    policies = obj["policies"]()
    outcome: dict[str, Any] = {}

    try:
        fh = open(file, encoding="utf-8", newline="")  # noqa: SIM115 - closed below
    except OSError as exc:
        fail(f"account import: {file}: {exc.strerror or exc}")

    async def go(accounts: Accounts) -> None:
        who = Actor.cli()
        importer = Importer(accounts, policies, Actor(who.who, "import", who.request_id))
        try:
            rows = csv_rows(fh) if file.suffix == ".csv" else jsonl_rows(fh)
            outcome["report"] = await importer.run(rows)
        except (UnicodeDecodeError, ValueError) as exc:
            fail(f"account import: {file}: {exc}")

    with fh:
        run_with_store(obj, go)
    report = outcome["report"]
    if as_json:
        click.echo(json.dumps(report.view(), indent=2))
    else:
        click.echo(
            f"{report.rows} rows: {report.created} created, {report.already} already there, "
            f"{len(report.refused)} refused"
        )
        for r in report.refused:
            click.echo(f"line {r.line}: {r.reason}")
    sys.exit(1 if report.refused else 0)
