"""The balance-changing Lua scripts, registered once per client.

One file per mutation in ``ocs/store/lua/`` (STYLE.md 7). Shared helpers live
in ``lib.lua`` and the opening checks of a family in ``*_common.lua``; each
script is assembled from its parts at load, registered with redis-py (EVALSHA,
re-loaded on NOSCRIPT) and called with every key in KEYS and one msgpack
argument.

The same sources also form one Redis *function library* (Redis >= 7,
Valkey): ``lib.lua`` at library level, each script the body of a registered
function. An EVAL script re-defines its ~40 helper functions on every call
(about 15-20 us of a ~120 us update, measured with INFO commandstats); a
library defines them once at load. The library's name carries a digest of
its source, so two ocs versions sharing a Redis during an upgrade each call
their own. On a server without functions the scripts are used as before.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib.resources import files

from redis.commands.core import AsyncScript

from ocs.store.client import Store

_PARTS: dict[str, tuple[str, ...]] = {
    "initiate": ("lib", "session_common", "initiate"),
    "update": ("lib", "session_common", "update"),
    "terminate": ("lib", "session_common", "terminate"),
    "abandon": ("lib", "abandon"),
    "event": ("lib", "event_common", "event"),
    "refund": ("lib", "event_common", "refund"),
    # Account administration: audit.lua appends the audit entry in the same call.
    "credit": ("lib", "audit", "credit"),
    "status": ("lib", "audit", "status"),
    "create": ("lib", "audit", "create"),
    "renew": ("lib", "audit", "renew"),
    "plan": ("lib", "audit", "plan"),
    "identity": ("lib", "audit", "identity"),
    "expire": ("lib", "audit", "expire"),
    "kick": ("lib", "audit", "kick"),
    "snapshot": ("lib", "audit", "snapshot"),  # read-only: the account statement's anchor
    "claim": ("claim",),  # one identity index (its own slot): claim or let go
}


def script_source(name: str) -> str:
    """The full Lua source of one script (its parts, concatenated)."""
    lua = files("ocs.store") / "lua"
    return "\n".join((lua / f"{part}.lua").read_text() for part in _PARTS[name])


@dataclass(frozen=True, slots=True)
class Scripts:
    initiate: AsyncScript
    update: AsyncScript
    terminate: AsyncScript
    abandon: AsyncScript
    event: AsyncScript
    refund: AsyncScript
    credit: AsyncScript
    status: AsyncScript
    create: AsyncScript
    renew: AsyncScript
    plan: AsyncScript
    identity: AsyncScript
    expire: AsyncScript
    kick: AsyncScript
    snapshot: AsyncScript
    claim: AsyncScript

    def all(self) -> list[AsyncScript]:
        return [getattr(self, name) for name in _PARTS]

    @classmethod
    def register(cls, client: Store) -> Scripts:
        return cls(**{name: client.register_script(script_source(name)) for name in _PARTS})


# The scripts of the function library: those the charging API runs (the
# account administration scripts stay EVALSHA: rare, and run by other tools).
HOT_FUNCTIONS = ("initiate", "update", "terminate", "event", "refund", "abandon")


def part_names() -> frozenset[str]:
    """Every Lua file the scripts are made of (without ``.lua``)."""
    return frozenset(p for parts in _PARTS.values() for p in parts)


def library(
    sources: Mapping[str, str] | None = None, prefix: str = "ocs", salt: str = ""
) -> tuple[str, str]:
    """(name, source) of the function library of the hot-path scripts, from
    the shipped Lua files or from ``sources`` (part name -> Lua source: a
    variant under measurement, :mod:`loadtest.luabench`)."""
    if sources is None:
        lua = files("ocs.store") / "lua"
        sources = {p: (lua / f"{p}.lua").read_text() for p in part_names()}
    lib = sources["lib"]
    bodies = [(n, "\n".join(sources[p] for p in _PARTS[n][1:])) for n in HOT_FUNCTIONS]
    digest = hashlib.sha1(  # noqa: S324 - a name, not security
        (salt + lib + "".join(b for _, b in bodies)).encode()
    ).hexdigest()[:12]
    lib_name = f"{prefix}_{digest}"
    parts = [f"#!lua name={lib_name}", lib]
    for name, body in bodies:
        parts.append(
            f"redis.register_function('{lib_name}_{name}', function(KEYS, ARGV)\n{body}\nend)"
        )
    return lib_name, "\n".join(parts) + "\n"


def evalsha(
    script: AsyncScript, keys: Sequence[str], *args: bytes | str | int
) -> tuple[object, ...]:
    """The EVALSHA command of one script call, for a pipeline or the batcher."""
    return ("EVALSHA", script.sha, len(keys), *keys, *args)
