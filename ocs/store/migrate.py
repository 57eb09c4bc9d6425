"""``ocs store migrate``: convert a store of layout 1 to layout 2.

Layout 1 (ocs before :mod:`ocs.store.layout`) kept an account's buckets as
one msgpack blob (``<account>:bal``) and a session as another
(``<account>:s:<session>``), with its answers in a hash (``...:a``) and
their order in a list (``...:o``). Each account is converted with its
sessions in one transaction (WATCH on every key read, so a writer in
between makes it start that account again): the buckets become ``m`` and
``b`` of the account hash; each session becomes a hash with its hot state
``h``, its answers in their slots (``a0``..``a15``, as layout 2 keeps
them: :mod:`ocs.store.layout` "Answers") and its cold fields; a closed
session keeps its time-to-live. The store is then marked layout 2
(``ocs:meta:layout``), which ``ocs serve`` checks at start.

Run it with every ocs server stopped (an older server would keep writing
layout 1). Running it twice converts nothing the second time. Identities,
events, top-up references, records and notifications are unchanged.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import msgpack
from redis import exceptions as rexc
from redis.asyncio.cluster import RedisCluster

from ocs.store.calls import UNIT_CODES
from ocs.store.client import Store, storage_errors, text
from ocs.store.client import partitions as read_partitions
from ocs.store.keys import ACCOUNTS_INDEX, AccountKeys
from ocs.store.layout import LAYOUT, LAYOUT_KEY, answer_slot, kept_answer, script_key
from ocs.vocabulary.errors import StorageUnavailable

MAX = 2**53 - 1
_STATUS_CODES = {"granted": 0, "credit_limit_reached": 1, "service_denied": 2}


@dataclass
class MigrationReport:
    accounts: int = 0  # converted
    sessions: int = 0  # converted
    already: int = 0  # accounts already in layout 2
    retried: int = 0  # accounts started again after a concurrent write


def _unpack(raw: object) -> Any:
    if raw is None:
        return None
    data = raw if isinstance(raw, bytes) else str(raw).encode()
    return msgpack.unpackb(data, raw=False, strict_map_key=False)


def _pack(value: Any) -> bytes:
    return msgpack.packb(value, use_bin_type=False)  # type: ignore[no-any-return]


def buckets_v2(blob: dict[str, Any] | None) -> tuple[bytes, bytes, dict[str, int]]:
    """Layout-1 balance -> (``m``, ``b``, bucket id -> handle)."""
    buckets = list((blob or {}).get("b") or [])

    def order(b: dict[str, Any]) -> tuple[int, int, str]:
        exp = int(b.get("exp") or 0)
        return (int(b.get("pri", 100)), exp if exp else MAX, str(b.get("id")))

    buckets.sort(key=order)
    meta: list[list[Any]] = []
    amounts: list[int] = []
    handles: dict[str, int] = {}
    for handle, b in enumerate(buckets, start=1):
        svc: list[int] = []
        for pair in b.get("svc") or []:
            rg, sid = [*list(pair), -1, -1][:2]
            svc += (-1 if rg is None else int(rg), -1 if sid is None else int(sid))
        meta.append(
            [
                str(b["id"]),
                str(b["unit"]),
                int(b.get("exp") or 0),
                int(b.get("pri", 100)),
                int(b.get("floor") or 0),
                svc,
                handle,
            ]
        )
        amounts += (int(b.get("amt", 0)), int(b.get("res", 0)))
        handles[str(b["id"])] = handle
    return _pack(meta), _pack(amounts), handles


def _pairs(items: dict[Any, int], key: Callable[[Any], Any]) -> list[Any]:
    out: list[Any] = [0]
    for k, v in items.items():
        if v:
            out += (key(k), int(v))
            out[0] += 1
    return out


def _answer_v2(raw: bytes) -> bytes:
    """A layout-1 stored answer (msgpack map) as layout 2 answers (a list)."""
    old = _unpack(raw) or {}
    out: list[Any] = [int(bool(old.get("new")))]
    for s in old.get("svcs") or []:
        out += (
            str(s["k"]),
            _STATUS_CODES.get(str(s.get("st")), 0),
            int(s.get("g", 0)),
            int(s.get("fin", 0)),
            int(s.get("ch", 0)),
            int(s.get("sf", 0)),
        )
    return _pack(out)


def session_v2(
    sess: dict[str, Any],
    answers: dict[Any, Any],
    order: list[Any],
    handles: dict[str, int],
) -> dict[str, bytes | str | int]:
    """A layout-1 session blob, its answers and their order -> layout-2 fields."""
    services: list[Any] = []
    fields: dict[str, bytes | str | int] = {}
    svcs = sess.get("svc") or {}
    for k, sv in svcs.items() if isinstance(svcs, dict) else []:
        res = {handles[b]: a for b, a in (sv.get("res") or {}).items() if b in handles}
        services += (str(k), int(sv.get("mu", 0)), int(sv.get("ch", 0)), int(sv.get("sf", 0)))
        services += _pairs(res, int)
        services += _pairs(sv.get("used") or {}, lambda u: UNIT_CODES[u])
        services += _pairs(sv.get("cum") or {}, lambda u: UNIT_CODES[u])
        services += _pairs(sv.get("fb") or {}, str)
        static = {"nm": sv.get("nm") or "", "ru": sv.get("ru") or ""}
        for name, value in (("rg", sv.get("rg")), ("sid", sv.get("sid"))):
            if value is not None and value != -1:
                static[name] = int(value)
        fields[f"n:{k}"] = _pack(static)
    last = int(sess.get("last") or sess.get("start") or 0)
    kept = [rk for rk in order if rk in answers]
    hot = [last, int(sess.get("dl") or 0), len(kept), len(svcs), *services]
    fields["h"] = _pack(hot)
    held: dict[int, int | str] = {}  # slot -> key, in the order answered
    for rk in kept:
        key = script_key(text(rk))
        slot = answer_slot(key)
        before = held.get(slot)
        # A slot only ever takes a higher number (layout.py "Answers").
        if isinstance(key, int) and isinstance(before, int) and before > key:
            continue
        held[slot] = key
        fields[f"a{slot}"] = kept_answer(key, _answer_v2(answers[rk]))
    fields["st"] = str(sess.get("st") or "open")
    fields["start"] = int(sess.get("start") or 0)
    fields["pv"] = str(sess.get("pv") or "")
    fields["o"] = str(sess.get("owner") or "")
    if sess.get("attrs"):
        fields["at"] = _pack(sess["attrs"])
    if sess.get("ids"):
        fields["ids"] = _pack(list(sess["ids"]))
    return fields


async def _session_keys(client: Store, keys: AccountKeys) -> list[str]:
    """The layout-1 session blobs of an account (strings, not their answers)."""
    found = []
    async for raw in client.scan_iter(match=f"{keys.base}:s:*", count=500):
        name = text(raw)
        if name.endswith((":a", ":o")):
            continue
        if text(await client.type(name)) == "string":
            found.append(name)
    return found


async def migrate_account(client: Store, keys: AccountKeys) -> tuple[bool, int]:
    """Convert one account and its sessions; (converted, sessions converted).
    Raises WatchError when a key changed meanwhile (the caller starts again)."""
    balance = f"{keys.base}:bal"
    sessions = await _session_keys(client, keys)
    watched = [keys.account, balance]
    for s in sessions:
        watched += (s, f"{s}:a", f"{s}:o")
    async with client.pipeline(transaction=True) as pipe:
        await pipe.watch(*watched)
        if await pipe.hexists(keys.account, "m"):
            return False, 0
        if not await pipe.exists(keys.account):
            return False, 0
        meta, amounts, handles = buckets_v2(_unpack(await pipe.get(balance)))
        converted: list[tuple[str, dict[str, bytes | str | int], int]] = []
        for s in sessions:
            sess = _unpack(await pipe.get(s))
            if not isinstance(sess, dict):
                continue
            answers = await pipe.hgetall(f"{s}:a")
            order = await pipe.lrange(f"{s}:o", 0, -1)
            ttl = await pipe.pttl(s)
            converted.append((s, session_v2(sess, answers, order, handles), ttl))
        pipe.multi()  # type: ignore[no-untyped-call]
        pipe.hset(keys.account, mapping={"m": meta, "b": amounts})
        pipe.delete(balance)
        for name, fields, ttl in converted:
            pipe.delete(name, f"{name}:a", f"{name}:o")
            pipe.hset(name, mapping=fields)  # type: ignore[arg-type]
            if ttl > 0:
                pipe.pexpire(name, ttl)
        await pipe.execute()
    return True, len(converted)


class MigrationUnsupported(StorageUnavailable):
    """Layout 1 predates Redis Cluster support: a cluster store is never of it."""


async def migrate(client: Store, progress: Callable[[str], None] | None = None) -> MigrationReport:
    """Convert every account of the store, then mark it layout 2."""
    if isinstance(client, RedisCluster):
        # Layout 1 ran on one server (or a Sentinel primary) only; migrate it
        # there, before moving the data to a cluster.
        async with storage_errors():
            mark = await client.get(LAYOUT_KEY)
        if mark is not None and int(text(mark)) == LAYOUT:
            return MigrationReport()
        raise MigrationUnsupported(
            "ocs store migrate converts a single server or a Sentinel primary; "
            "migrate there before moving the data to a cluster"
        )
    report = MigrationReport()
    partitions = await read_partitions(client)
    async with storage_errors():
        accounts = sorted(text(a) for a in await client.smembers(ACCOUNTS_INDEX))
        for account in accounts:
            keys = AccountKeys(account, partitions)
            while True:
                try:
                    done, sessions = await migrate_account(client, keys)
                    break
                except rexc.WatchError:
                    report.retried += 1
            if done:
                report.accounts += 1
                report.sessions += sessions
            else:
                report.already += 1
            if progress is not None and (report.accounts + report.already) % 1000 == 0:
                progress(f"{report.accounts + report.already} of {len(accounts)} accounts")
        await client.set(LAYOUT_KEY, LAYOUT)
    return report
