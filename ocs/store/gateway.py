"""The script gateway: the one door between ``ocs/`` and the balance scripts.

Everything that changes money goes through here: the key names of an
account (:class:`~ocs.store.keys.AccountKeys`, kept made), the command that
runs one script (FCALL of the loaded function library, or EVALSHA where the
server has no functions), submission through the per-pass batcher (one
write for every call of one event-loop pass, :mod:`ocs.store.batch`), and
the reload of scripts a restarted or flushed Redis lost. The charging
facade, closing (supervision, peer restarts) and one-shot events all call
scripts through one gateway, so they share its batches and its reload.

What each script takes and answers is :mod:`ocs.store.calls`.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from typing import Any, NamedTuple

import structlog
from redis import exceptions as rexc

from ocs.store.batch import Batcher, Command
from ocs.store.calls import (
    AbandonArgs,
    AbandonReply,
    EventArgs,
    EventReply,
    SessionArgs,
    SessionReply,
    pack_abandon,
    pack_event,
    pack_session,
    read_abandon,
    read_event,
    read_session,
)
from ocs.store.client import Store, storage_errors
from ocs.store.keys import AccountKeys, owner_index, session_index, supervision_shard
from ocs.store.layout import StoreMigrationNeeded
from ocs.store.scripts import HOT_FUNCTIONS, Scripts, evalsha, library
from ocs.vocabulary.errors import StorageUnavailable

log = structlog.get_logger("ocs.store")

_KEYS_KEPT = 100_000  # accounts whose key names are kept made
SESSION_INDEX_TTL = 30 * 86400  # refreshed by one request in 64 of a live session


class IndexHints(NamedTuple):
    """What the caller knows of a session's index entries (its per-process cache)."""

    opening: bool  # this call may open the session: write its index entries
    owner_new: bool  # the session is not yet indexed under its owner by this process


class ScriptGateway:
    """Keys, script commands, batched submission and reload, for one Redis."""

    def __init__(self, client: Store, partitions: int) -> None:
        self.redis = client
        self.partitions = partitions
        self.scripts = Scripts.register(client)
        self.batch = Batcher(client)
        self.library: str | None = None  # set by load() where the server has functions
        self._keys: dict[str, AccountKeys] = {}

    def close(self) -> None:
        """Close the hot-path connection (the client's pool is its owner's to close)."""
        self.batch.close()

    def keys(self, account_id: str) -> AccountKeys:
        found = self._keys.get(account_id)
        if found is None:
            if len(self._keys) >= _KEYS_KEPT:
                self._keys.clear()  # a bound, not an LRU: rebuilding is cheap
            found = self._keys[account_id] = AccountKeys(account_id, self.partitions)
        return found

    def command(self, name: str, keys: Sequence[str], *args: bytes | str | int) -> Command:
        """The command running one script: FCALL of the loaded library, or
        EVALSHA where the server has no functions (or the script is not one
        of the library's)."""
        if self.library is not None and name in HOT_FUNCTIONS:
            return ("FCALL", f"{self.library}_{name}", len(keys), *keys, *args)
        return evalsha(getattr(self.scripts, name), keys, *args)

    async def run(self, name: str, keys: Sequence[str], *args: bytes | str | int) -> Any:
        """One script call on its own (through the batcher); its reply."""
        (reply,) = await self.submit([self.command(name, keys, *args)])
        return reply

    # -- the charging scripts ---------------------------------------------------

    async def session(self, op: str, args: SessionArgs, hints: IndexHints) -> SessionReply:
        """Run initiate / update / terminate with the index writes around it,
        in one submission (one round trip on the normal path)."""
        sid, account = args.session_id, args.account_id
        member = f"{account}\0{sid}"
        commands = self._index_writes(op, args, hints, member)
        at = len(commands)
        script_keys = self.keys(account).script_keys(sid)
        commands.append(self.command(op, script_keys, pack_session(op, args)))
        if op == "terminate":
            commands.append(("ZREM", supervision_shard(account), member))
            if args.owner:
                commands.append(("SREM", owner_index(args.owner), member))
        replies = await self.submit(commands)
        reply = read_session(replies[at], sid)
        if reply.opened and op == "update" and not hints.opening:
            # It was opened after all (its state had expired): the index writes now.
            await self.submit(self._index_writes(op, args, IndexHints(True, False), member))
        return reply

    def _index_writes(
        self, op: str, args: SessionArgs, hints: IndexHints, member: str
    ) -> list[Command]:
        """Index writes that go first in the pipeline (harmless if the script refuses).

        A plain update sends none: its supervision entry is only ever early,
        and the sweeper, finding the session alive, re-arms it at the real
        deadline; the session index is refreshed every 64th request and its
        owner entry only when the owner is new to this process. So the
        common request is one command: its script call.
        """
        if op == "terminate":
            return []
        commands: list[Command] = []
        if hints.opening or _refresh_due(args.request_key):
            sidx = session_index(args.session_id)
            commands.append(("SET", sidx, args.account_id, "EX", SESSION_INDEX_TTL))
        if hints.opening:
            deadline = args.now + args.supervision
            commands.append(("ZADD", supervision_shard(args.account_id), deadline, member))
        if args.owner and hints.owner_new:
            commands.append(("SADD", owner_index(args.owner), member))
        return commands

    async def event(self, args: EventArgs) -> EventReply:
        """Run one direct debit, refund or balance check."""
        keys = self.keys(args.account_id)
        event_keys = (keys.account, keys.ids, f"{keys.events}:{args.event_id}", keys.records)
        script = "refund" if args.op == "refund" else "event"
        raw = await self.run(script, event_keys, pack_event(args))
        return read_event(raw, args.event_id)

    async def abandon(self, args: AbandonArgs) -> AbandonReply:
        """Release and record one session the gateway will not close (or
        learn that it is alive, moved or gone)."""
        keys = self.keys(args.account_id)
        abandon_keys = (keys.account, keys.sessions, keys.session(args.session_id), keys.records)
        raw = await self.run("abandon", abandon_keys, pack_abandon(args))
        return read_abandon(raw, args.session_id)

    async def submit(self, commands: Sequence[Command]) -> list[Any]:
        """Send through the per-pass batcher; reload scripts once when Redis
        lost them (NOSCRIPT, or a function library gone after FUNCTION FLUSH).
        A script that did not run changed nothing, so sending it again is safe."""
        for attempt in (0, 1):
            try:
                replies = await self.batch.submit(commands)
            except Exception:
                async with storage_errors():  # maps the failure (raised again here)
                    raise
            if attempt == 0 and any(_lost_script(r) for r in replies):
                await self.load()
                continue
            for reply in replies:
                if isinstance(reply, Exception):
                    if "WRONGTYPE" in str(reply):  # a key of an older layout
                        raise StoreMigrationNeeded(str(reply)) from reply
                    async with storage_errors():
                        raise reply
            return replies
        raise StorageUnavailable("scripts could not be loaded")

    async def load(self) -> None:
        """Load every script, and the hot-path function library where the
        server has functions (at start, and when Redis lost them)."""
        async with storage_errors():
            for script in self.scripts.all():
                await self.redis.script_load(script.script)
            name, source = library()
            try:
                await self.redis.function_load(source, replace=True)
                self.library = name
            except rexc.ResponseError as exc:  # Redis < 7: scripts only
                log.info("function_library_unavailable", error=str(exc))
                self.library = None


def _refresh_due(request_key: str) -> bool:
    """One request in 64 refreshes the session index's time-to-live (Gy:
    CC-Request-Number; RADIUS: its digest key, hashed)."""
    if request_key.isdigit():
        return int(request_key) % 64 == 0
    return zlib.crc32(request_key.encode()) % 64 == 0


def _lost_script(reply: object) -> bool:
    return isinstance(reply, rexc.NoScriptError) or (
        isinstance(reply, rexc.ResponseError) and "function not found" in str(reply).lower()
    )
