"""What every ``ocs`` command shares: configuration, the store, clear failures.

A command never prints a traceback for bad input: every anticipated
failure (bad config or policy, unknown account, invalid amount, Redis
unreachable) is one line on stderr and exit status 2.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from typing import Any, NoReturn

import click

from ocs.accounts import AccountError, Accounts
from ocs.config import Config, ConfigError
from ocs.policy.loader import PolicyError
from ocs.store.embedded import EmbeddedError
from ocs.vocabulary.errors import ChargingError


def fail(message: str) -> NoReturn:
    click.echo(f"ocs: error: {message}", err=True)
    sys.exit(2)


def run_with_store(obj: dict[str, Any], action: Callable[[Accounts], Awaitable[None]]) -> None:
    """Run ``action`` with an Accounts bound to the configured store."""
    from ocs.runtime import open_store

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
