"""``ocs admin ...``: tokens of the admin API, and its OpenAPI document.

* ``ocs admin token add NAME --role read|operator|admin``: a new token; its
  SHA-256 goes into ``admin.tokens_file`` and the token is printed once, on
  stdout (nothing else keeps it);
* ``ocs admin token list`` / ``ocs admin token remove NAME``;
* ``ocs admin openapi``: the API's OpenAPI document (what ``/openapi.json``
  serves; ``ocs/admin/openapi.json`` in the repository is this output).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from ocs.cli.common import fail

NAME_HELP = "letters, digits, '.', '_' or '-' (shown in the audit trail as token:NAME)"


def _tokens_file(obj: dict[str, Any]) -> Path:
    from ocs.admin.config import load_admin_config
    from ocs.config import ConfigError

    config = obj["config"]()
    try:
        admin = load_admin_config(config.admin, config.file)
    except ConfigError as exc:
        fail(str(exc))
    if admin.tokens_file is None:
        fail("admin.tokens_file is not set (tokens are then only those inline in admin.tokens)")
    path: Path = config.path(admin.tokens_file)
    return path


@click.group("admin")
def admin_cli() -> None:
    """The HTTP admin API: its tokens and its OpenAPI document."""


@admin_cli.group("token")
def token_cli() -> None:
    """Bearer tokens (stored hashed, each with a role)."""


def _name(ctx: click.Context, param: click.Parameter, value: str) -> str:
    import re

    if not re.fullmatch(r"[A-Za-z0-9._-]{1,64}", value):
        raise click.BadParameter(f"{value!r}: a token name is 1 to 64 {NAME_HELP}")
    return value


@token_cli.command("add")
@click.argument("name", callback=_name)
@click.option(
    "--role", type=click.Choice(["read", "operator", "admin"]), required=True, help="what it may do"
)
@click.pass_obj
def token_add(obj: dict[str, Any], name: str, role: str) -> None:
    """Make a token for NAME; prints it once (only its hash is kept)."""
    from ocs.admin.tokens import TokenFileError, add_token

    path = _tokens_file(obj)
    try:
        click.echo(add_token(path, name, role))  # type: ignore[arg-type]
    except (TokenFileError, OSError) as exc:
        fail(str(exc))


@token_cli.command("list")
@click.pass_obj
def token_list(obj: dict[str, Any]) -> None:
    """Names and roles of the tokens in the tokens file."""
    from ocs.admin.tokens import TokenFileError, read_file

    try:
        for entry in read_file(_tokens_file(obj)):
            click.echo(f"{entry.name}\t{entry.role}")
    except TokenFileError as exc:
        fail(str(exc))


@token_cli.command("remove")
@click.argument("name", callback=_name)
@click.pass_obj
def token_remove(obj: dict[str, Any], name: str) -> None:
    """Revoke NAME's token (a running server stops taking it at once)."""
    from ocs.admin.tokens import TokenFileError, remove_token

    try:
        if not remove_token(_tokens_file(obj), name):
            fail(f"token remove: no token named {name!r}")
    except (TokenFileError, OSError) as exc:
        fail(str(exc))
    click.echo(f"removed {name}")


@admin_cli.command("openapi")
def openapi() -> None:
    """Print the OpenAPI document of the admin API (JSON)."""
    from ocs.admin.app import openapi_document

    click.echo(json.dumps(openapi_document(), indent=2, sort_keys=True))
