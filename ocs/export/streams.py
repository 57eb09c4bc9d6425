"""Consumer-group operations on one feed's partition streams.

Every command names one partition stream (``ocs:{pNN}:records`` or
``ocs:{pNN}:audit``, :mod:`ocs.export.feeds`, or its dead-letter twin under
the same hash tag), so the exporter works unchanged against Redis Cluster.
Two small Lua scripts make ownership checks atomic:

* ``FENCE``: before publishing a batch, check that this consumer still owns
  every entry (none was taken over by another exporter's XAUTOCLAIM) and
  reset their idle time, so nobody may take them for ``claim_idle`` seconds:
  the publish (one rename) happens well inside that window;
* ``DROP_IF_EMPTY``: delete a consumer only if it owns no pending entry
  (XGROUP DELCONSUMER would otherwise drop entries from the group's PEL).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import redis

from ocs.store.client import SyncStore
from ocs.store.keys import DEFAULT_PARTITIONS, META_PARTITIONS, dead_letter_stream, records_stream

Fields = dict[bytes, bytes]

_FENCE = """
local lost = {}
local kept = {}
for i = 3, #ARGV do
  local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[i], ARGV[i], 1)
  if #p == 1 and p[1][2] == ARGV[2] then
    kept[#kept + 1] = ARGV[i]
  else
    lost[#lost + 1] = ARGV[i]
  end
end
for i = 1, #kept, 500 do
  redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0,
             unpack(kept, i, math.min(i + 499, #kept)), 'JUSTID')
end
return lost
"""

_DROP_IF_EMPTY = """
local p = redis.call('XPENDING', KEYS[1], ARGV[1], '-', '+', 1, ARGV[2])
if #p > 0 then return 0 end
return redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], ARGV[2]) + 1
"""


@dataclass(frozen=True, slots=True)
class Entry:
    """One stream entry as delivered to this consumer."""

    partition: int
    entry_id: str
    fields: Fields
    reclaimed: bool  # delivered before (maybe already on disk)


@dataclass(frozen=True, slots=True)
class ConsumerInfo:
    name: str
    pending: int
    idle_ms: int


def partition_count(client: SyncStore) -> int:
    raw = client.get(META_PARTITIONS)
    return int(raw) if raw else DEFAULT_PARTITIONS


def _sid(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class GroupStreams:
    """One feed's streams of all partitions, read through one consumer group."""

    def __init__(
        self,
        client: SyncStore,
        group: str,
        consumer: str,
        partitions: int,
        stream: Callable[[int], str] = records_stream,
        dead_stream: Callable[[int], str] = dead_letter_stream,
    ) -> None:
        self.client = client
        self.stream = stream
        self.dead_stream = dead_stream
        self.group = group
        self.consumer = consumer
        self.partitions = partitions
        self._fence = client.register_script(_FENCE)
        self._drop = client.register_script(_DROP_IF_EMPTY)

    def ensure_groups(self) -> None:
        """XGROUP CREATE ... 0 MKSTREAM on every partition (existing groups kept)."""
        for p in range(self.partitions):
            try:
                self.client.xgroup_create(self.stream(p), self.group, id="0", mkstream=True)
            except redis.ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise

    def read_new(self, partitions: Iterable[int], count: int) -> list[Entry]:
        """Entries never delivered to anyone (``>``), up to ``count`` per partition."""
        parts = list(partitions)
        pipe = self.client.pipeline(transaction=False)
        for p in parts:
            pipe.xreadgroup(self.group, self.consumer, {self.stream(p): ">"}, count=count)
        out: list[Entry] = []
        replies: Any = pipe.execute()
        for p, reply in zip(parts, replies, strict=True):
            for _stream, items in reply or []:
                out.extend(Entry(p, _sid(i), f or {}, False) for i, f in items)
        return out

    def consumers(self, p: int) -> list[ConsumerInfo]:
        rows: Any = self.client.xinfo_consumers(self.stream(p), self.group)
        return [ConsumerInfo(_sid(r["name"]), int(r["pending"]), int(r["idle"])) for r in rows]

    def claim_from(self, p: int, owner: str, count: int) -> list[Entry]:
        """Take up to ``count`` pending entries of ``owner`` (a dead consumer) now."""
        pending: Any = self.client.xpending_range(
            self.stream(p), self.group, min="-", max="+", count=count, consumername=owner
        )
        ids = [_sid(e["message_id"]) for e in pending]
        if not ids:
            return []
        claimed: Any = self.client.xclaim(
            self.stream(p), self.group, self.consumer, 0, list[Any](ids)
        )
        return [Entry(p, _sid(i), f or {}, True) for i, f in claimed if f is not None]

    def autoclaim(self, p: int, min_idle_ms: int, count: int) -> list[Entry]:
        """Take up to ``count`` entries idle longer than ``min_idle_ms`` at any consumer."""
        out: list[Entry] = []
        cursor = "0-0"
        while len(out) < count:
            reply: Any = self.client.xautoclaim(
                self.stream(p),
                self.group,
                self.consumer,
                min_idle_ms,
                start_id=cursor,
                count=count - len(out),
            )
            cursor = _sid(reply[0])
            out.extend(Entry(p, _sid(i), f or {}, True) for i, f in reply[1] if f is not None)
            if cursor == "0-0":
                break
        return out

    def own_pending(self, p: int, count: int) -> list[Entry]:
        """Entries delivered to this consumer and not acknowledged (history ``0``)."""
        reply: Any = self.client.xreadgroup(
            self.group, self.consumer, {self.stream(p): "0"}, count=count
        )
        out: list[Entry] = []
        for _stream, items in reply or []:
            out.extend(Entry(p, _sid(i), f or {}, True) for i, f in items if f)
        return out

    def fence(self, p: int, ids: Sequence[str]) -> set[str]:
        """Refresh ownership of ``ids``; returns the ids this consumer no longer owns."""
        lost = self._fence(keys=[self.stream(p)], args=[self.group, self.consumer, *ids])
        return {_sid(i) for i in lost}

    def ack(self, p: int, ids: Sequence[str]) -> int:
        if not ids:
            return 0
        return int(self.client.xack(self.stream(p), self.group, *ids))

    def dead_letter(self, p: int, entry: Entry, reason: str) -> None:
        """Copy the entry to the dead-letter stream with the reason, and ack it, atomically."""
        fields: dict[Any, Any] = dict(entry.fields)
        fields.update(
            {
                "dead_entry": entry.entry_id,
                "dead_stream": self.stream(p),
                "dead_reason": reason,
                "dead_consumer": self.consumer,
            }
        )
        pipe = self.client.pipeline(transaction=True)
        pipe.xadd(self.dead_stream(p), fields)
        pipe.xack(self.stream(p), self.group, entry.entry_id)
        pipe.execute()

    def drop_consumer_if_empty(self, p: int, name: str) -> bool:
        return bool(self._drop(keys=[self.stream(p)], args=[self.group, name]))

    def oldest_unacked(self, p: int) -> str | None:
        """Smallest id not yet acknowledged by the group (pending or undelivered)."""
        stream = self.stream(p)
        summary: Any = self.client.xpending(stream, self.group)
        if summary and summary.get("pending"):
            return _sid(summary["min"])
        return self.first_undelivered(p)

    def last_delivered(self, p: int) -> str:
        groups: Any = self.client.xinfo_groups(self.stream(p))
        for g in groups:
            if _sid(g["name"]) == self.group:
                return _sid(g["last-delivered-id"])
        return "0-0"

    def last_ids(self) -> dict[int, str]:
        """The newest entry id of every non-empty partition stream."""
        out = {}
        for p in range(self.partitions):
            items: Any = self.client.xrevrange(self.stream(p), count=1)
            if items:
                out[p] = _sid(items[0][0])
        return out

    def first_undelivered(self, p: int) -> str | None:
        after = self.last_delivered(p)
        items: Any = self.client.xrange(self.stream(p), min=f"({after}", max="+", count=1)
        return _sid(items[0][0]) if items else None

    def trim_below(self, p: int, min_id: str) -> int:
        return int(self.client.xtrim(self.stream(p), minid=min_id, approximate=False))

    def time_ms(self) -> int:
        reply: Any = self.client.time()
        sec, usec = reply
        return int(sec) * 1000 + int(usec) // 1000
