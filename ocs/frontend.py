"""The seam between the server runtime and the protocol front ends.

``ocs serve`` never imports ``protocols/``: front ends register under the
``ocs.frontends`` entry-point group (see pyproject.toml) and the runtime loads
those named in the configuration. Each receives its raw configuration section,
validates it with :func:`ocs.config.validate_section` (so errors name the file
and key path), and gets the charging API when started.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from ocs.charging.api import ChargingService


@dataclass(frozen=True, slots=True)
class FrontendContext:
    """What a front end may know of the deployment besides its own section."""

    config_file: Path | None  # for error messages
    section: str  # its key in the config file, e.g. "diameter"
    origin_host: str
    origin_realm: str
    product_name: str
    worker_index: int = 0


class Frontend(Protocol):
    """A protocol listener: started with the charging API, stopped with a drain."""

    name: str

    async def start(self, charging: ChargingService) -> None: ...

    async def stop(self, drain_timeout: float) -> None: ...

    def health(self) -> dict[str, Any]: ...


FrontendFactory = Callable[[Mapping[str, Any], FrontendContext], Frontend]


def load_frontend_factories() -> dict[str, FrontendFactory]:
    """The installed front ends by name (entry-point group ``ocs.frontends``)."""
    found: dict[str, FrontendFactory] = {}
    for ep in entry_points(group="ocs.frontends"):
        found[ep.name] = ep.load()
    return found
