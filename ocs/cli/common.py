"""What every ``ocs`` command shares: configuration, the store, clear failures.

A command never prints a traceback for bad input: every anticipated
failure (bad config or policy, unknown account, invalid amount, Redis
unreachable) is one line on stderr and exit status 2. click's own usage
errors (unknown option, missing argument, a value outside its range) are
that same one line, ending with where help is, e.g.

    ocs: error: account list: Invalid value for '--limit': 0 is not in the
    range x>=1. (see 'ocs account list --help')

(one line on the terminal, wrapped here).
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar
from zoneinfo import ZoneInfo

import click

if TYPE_CHECKING:
    from ocs.accounts import Accounts
    from ocs.config import Config
    from ocs.store.client import Store


def fail(message: str) -> NoReturn:
    """``ocs: error: MESSAGE`` as one line on stderr (a message of several
    lines, such as a policy file with several problems, is joined), exit 2."""
    click.echo(f"ocs: error: {one_line(message)}", err=True)
    sys.exit(2)


def one_line(message: str) -> str:
    return "; ".join(part.strip() for part in message.splitlines() if part.strip())


class OneLineGroup(click.Group):
    """A command group whose usage errors are one line (see the module docstring)."""

    def main(
        self,
        args: Any = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, False, **extra)
        try:
            code = super().main(args, prog_name, complete_var, False, **extra)
        except click.UsageError as exc:
            fail(_usage_line(exc))
        except click.ClickException as exc:
            fail(exc.format_message())
        except click.Abort:
            click.echo("ocs: aborted", err=True)
            sys.exit(1)
        sys.exit(code if isinstance(code, int) else 0)


def _usage_line(exc: click.UsageError) -> str:
    path = exc.ctx.command_path if exc.ctx is not None else "ocs"
    command = path.partition(" ")[2]
    where = f"{command}: " if command else ""
    return f"{where}{one_line(exc.format_message())} (see '{path} --help')"


def run_with_store(obj: dict[str, Any], action: Callable[[Accounts], Awaitable[None]]) -> None:
    """Run ``action`` with an Accounts bound to the configured store."""
    from ocs.accounts import AccountError, Accounts
    from ocs.config import ConfigError
    from ocs.policy.loader import PolicyError
    from ocs.runtime import open_store
    from ocs.store.embedded import EmbeddedError
    from ocs.vocabulary.errors import ChargingError

    config: Config = obj["config"]()

    async def go() -> None:
        async with open_store(config) as (client, _):
            await action(await Accounts.connect(client))

    try:
        asyncio.run(go())
    except (ChargingError, AccountError, ConfigError, PolicyError, EmbeddedError) as exc:
        fail(str(exc) or type(exc).__name__)
    except ValueError as exc:
        fail(str(exc))


def display_zone(obj: dict[str, Any]) -> ZoneInfo:
    """The zone times are shown in: the policies' ``timezone`` (UTC when the
    policies cannot be read: showing an account must not need them)."""
    from ocs.policy.loader import PolicyError, load_policies

    config: Config = obj["config"]()
    try:
        return ZoneInfo(load_policies(config.path(config.policies.dir)).timezone)
    except (PolicyError, OSError, ValueError):
        return ZoneInfo("UTC")


F = TypeVar("F", bound=Callable[..., Any])


def pid_file_option(whose: str) -> Callable[[F], F]:
    """``--pid-file``: where a long-running command writes ``whose`` pid while it runs
    (for systemd's PIDFile= and sysvinit scripts; see :mod:`ocs.service_manager`)."""
    return click.option(
        "--pid-file",
        type=click.Path(path_type=Path, dir_okay=False),
        default=None,
        help=f"write {whose} pid here while it runs (systemd PIDFile=, sysvinit)",
    )


def already(ref: str) -> str:
    """What a repeated reference prints (nothing was changed)."""
    return f"already applied (--ref {ref}): nothing changed"


def run_change(
    obj: dict[str, Any],
    ref: str,
    change_ref: str,
    change: Callable[[Accounts, str], Awaitable[dict[str, Any]]],
    done: Callable[[dict[str, Any]], str],
) -> None:
    """One audited change of the account REF names: ``change(accounts, account_id)``
    returns the script's reply; prints ``done(reply)``, or :func:`already` when the
    reference was applied before (the reply says ``dup``: nothing changed)."""

    async def go(accounts: Accounts) -> None:
        reply = await change(accounts, await accounts.resolve(ref))
        click.echo(already(change_ref) if reply.get("dup") else done(reply))

    run_with_store(obj, go)


def run_with_client(
    obj: dict[str, Any], action: Callable[[Store], Awaitable[None]], command: str
) -> None:
    """Run ``action`` with a client of the configured store (``ocs store ...``);
    an anticipated failure is one line naming ``command``, exit 2."""
    from ocs.config import ConfigError
    from ocs.runtime import open_store
    from ocs.store.client import PartitionsFixed, StoreConfigError
    from ocs.store.embedded import EmbeddedError
    from ocs.vocabulary.errors import StorageUnavailable

    config: Config = obj["config"]()

    async def go() -> None:
        async with open_store(config) as (client, _):
            await action(client)

    try:
        asyncio.run(go())
    except (
        PartitionsFixed,
        StorageUnavailable,
        ConfigError,
        EmbeddedError,
        StoreConfigError,
    ) as exc:
        fail(f"{command}: {exc}")
