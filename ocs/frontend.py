"""The seam between the server runtime and the protocol front ends.

``ocs serve`` never imports ``protocols/``: front ends register under the
``ocs.frontends`` entry-point group (see pyproject.toml) and the runtime loads
those named in the configuration. Each receives its raw configuration section,
validates it with :func:`ocs.config.validate_section` (so errors name the file
and key path), and gets the charging API when started. What every front end does
alike is here too: follow the core's push notifications, list its bound sockets.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

import structlog

if TYPE_CHECKING:
    from ocs.charging.port import ChargingApi
    from ocs.vocabulary.types import Notification

log = structlog.get_logger("ocs.frontend")


@dataclass(frozen=True, slots=True)
class FrontendContext:
    """What a front end may know of the deployment besides its own section."""

    config_file: Path | None  # for error messages
    section: str  # its key in the config file, e.g. "diameter"
    origin_host: str
    origin_realm: str
    product_name: str
    worker_index: int = 0
    # When this node started (ns since the epoch): the same in every worker of one
    # ``ocs serve`` and in a worker it restarts, new on the next start. The Diameter
    # front end derives its Origin-State-Id from it (RFC 6733 §8.16). 0: unknown.
    node_start: int = 0


@dataclass(frozen=True, slots=True)
class Listener:
    """A socket a front end binds: ``ocs serve`` checks it is free before it starts."""

    name: str  # for the error message, e.g. "diameter", "radius acct"
    transport: Literal["tcp", "udp"]
    host: str
    port: int


class Frontend(Protocol):
    """A protocol listener: started with the charging API, stopped with a drain."""

    name: str

    async def start(self, charging: ChargingApi) -> None: ...

    async def stop(self, drain_timeout: float) -> None: ...

    def health(self) -> dict[str, Any]: ...


def listeners_of(frontend: object) -> list[Listener]:
    """The sockets ``frontend`` will bind, from its optional ``listeners()`` method
    (``[]`` when it has none): known before it starts, so a busy port is named up front."""
    method = getattr(frontend, "listeners", None)
    return list(method()) if callable(method) else []


FrontendFactory = Callable[[Mapping[str, Any], FrontendContext], Frontend]


def load_frontend_factories() -> dict[str, FrontendFactory]:
    """The installed front ends by name (entry-point group ``ocs.frontends``)."""
    found: dict[str, FrontendFactory] = {}
    for ep in entry_points(group="ocs.frontends"):
        found[ep.name] = ep.load()
    return found


async def follow_notifications(
    charging: ChargingApi,
    handle: Callable[[Notification], object],
    on_lost: Callable[[Exception], None],
    delay: float = 1.0,
    on_failed: Callable[[Notification, Exception], None] | None = None,
) -> None:
    """Hand every push notification to ``handle`` until cancelled.

    ``handle`` raising on one notification goes to ``on_failed`` (default: a
    warning in the log naming its kind) and the following goes on with the next one: ending the
    subscription there would lose the notifications already read behind it
    and those written while it is taken again. The subscription rides out
    Redis outages itself; anything else that ends it goes to ``on_lost`` and
    it is taken again after ``delay``. A cancellation that the subscription
    swallowed, or turned into an error of its own (a Redis read cancelled
    mid-way ends with a TimeoutError), ends it all the same."""
    failed = on_failed or _log_failed
    while True:
        try:
            async for note in charging.notifications():
                try:
                    handle(note)
                except Exception as exc:  # a bug or a bad value in one push
                    failed(note, exc)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if _cancelling():
                return
            on_lost(exc)
        if _cancelling():
            return
        await asyncio.sleep(delay)


def _log_failed(note: Notification, exc: Exception) -> None:
    log.warning("push_handling_failed", kind=note.kind.value, error=repr(exc))


def _cancelling() -> bool:
    """Whether the running task has been asked to stop (and has not taken it back)."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


def bound_addresses(servers: Iterable[asyncio.Server]) -> list[tuple[str, int]]:
    """(host, port) of every socket these listeners bound (port 0 resolved)."""
    out = []
    for server in servers:
        for sock in server.sockets:
            name = sock.getsockname()
            out.append((str(name[0]), int(name[1])))
    return out
