"""An account's past, read from its partition's streams: charged records and audit entries.

Records and audit entries live in their partition's streams
(``ocs:{pNN}:records``, ``ocs:{pNN}:audit``) until ``ocs export`` has
written them and they are older than ``export.retention_seconds`` (default
7 days); the export's files keep them for good. A stream id is its entry's
time (ms, Redis clock), so a time window is an id range. The streams are
shared by every account of the partition: a window is read in chunks and
filtered here (a cheap byte test before decoding), at most ``scan_limit``
entries per call; a records page ends with a cursor when it stopped early.
A window reaching before what the stream still holds is refused with
:class:`Trimmed` (those entries are only in the export now).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from ocs.audit import AUDIT_FIELD, AuditDecodeError, AuditEntry, decode_audit
from ocs.charging.records import RECORD_FIELD, ChargedRecord, RecordDecodeError, decode_record
from ocs.store.client import Store, storage_errors, text
from ocs.store.keys import audit_stream, partition_of, records_stream

CHUNK = 2000
MAX_ID_SEQ = 2**64 - 1


class Trimmed(Exception):
    """The window starts before the oldest entry the stream still holds."""


class ScanLimit(Exception):
    """Reading the window would take more than the allowed number of entries."""


def id_key(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


async def check_retained(client: Store, stream: str, since_ms: int) -> None:
    """Trimmed when entries at or after ``since_ms`` were deleted from ``stream``."""
    async with storage_errors():
        try:
            info: Any = await client.xinfo_stream(stream)
        except Exception as exc:  # no such stream yet: nothing was ever trimmed
            if "no such key" in str(exc).lower():
                return
            raise
    deleted = info.get("max-deleted-entry-id")
    if deleted is None:
        return
    deleted_id = text(deleted)
    if deleted_id not in ("0-0", "") and id_key(deleted_id) >= (since_ms, 0):
        raise Trimmed(
            f"entries from {since_ms} ms on were trimmed from {stream} (export retention); "
            "the export's files hold them"
        )


async def scan(
    client: Store,
    stream: str,
    start: str,
    end: str,
    needle: bytes,
    scan_limit: int,
) -> AsyncIterator[tuple[str, dict[bytes, bytes]]]:
    """Entries of ``stream`` in [start, end] whose fields contain ``needle``, oldest first.

    ``start`` may be exclusive (``(id``). ScanLimit past ``scan_limit`` entries read."""
    read = 0
    async for items in _chunks(client, stream, start, end):
        for entry_id, fields in items:
            read += 1
            if any(needle in v for v in fields.values()):
                yield text(entry_id), fields
        if len(items) == CHUNK and read >= scan_limit:
            raise ScanLimit(f"more than {scan_limit} entries of {stream} in the window")


async def _chunks(client: Store, stream: str, start: str, end: str) -> AsyncIterator[Any]:
    """``stream``'s entries in [start, end], oldest first, :data:`CHUNK` a read; the
    last chunk is the one shorter than that. ``start`` may be exclusive (``(id``)."""
    while True:
        async with storage_errors():
            items: Any = await client.xrange(stream, min=start, max=end, count=CHUNK)
        yield items
        if len(items) < CHUNK:
            return
        start = f"({text(items[-1][0])}"


@dataclass(frozen=True, slots=True)
class RecordsPage:
    records: list[tuple[str, ChargedRecord]]
    next_cursor: str | None  # an entry id to go on after, when the page stopped early


async def records_page(
    client: Store,
    partitions: int,
    account_id: str,
    since_ms: int,
    until_ms: int,
    cursor: str | None = None,
    limit: int = 100,
    scan_limit: int = 1_000_000,
) -> RecordsPage:
    """The account's charged records in [since_ms, until_ms], oldest first, one page."""
    stream = records_stream(partition_of(account_id, partitions))
    await check_retained(client, stream, since_ms)
    start = f"({cursor}" if cursor else f"{since_ms}-0"
    end = f"{until_ms}-{MAX_ID_SEQ}"
    out: list[tuple[str, ChargedRecord]] = []
    needle = account_id.encode()
    read = 0
    async for items in _chunks(client, stream, start, end):
        for entry_id, fields in items:
            read += 1
            raw = fields.get(RECORD_FIELD)
            if raw is None or needle not in raw:
                continue
            try:
                rec = decode_record(raw)
            except RecordDecodeError:
                continue
            if rec.account == account_id:
                out.append((text(entry_id), rec))
                if len(out) >= limit:
                    return RecordsPage(out, text(entry_id))
        if len(items) == CHUNK and read >= scan_limit:
            return RecordsPage(out, text(items[-1][0]))
    return RecordsPage(out, None)


async def account_records(
    client: Store,
    partitions: int,
    account_id: str,
    since_ms: int,
    through: str,
    scan_limit: int,
) -> list[tuple[str, ChargedRecord]]:
    """Every charged record of the account from ``since_ms`` through entry id ``through``."""
    stream = records_stream(partition_of(account_id, partitions))
    out = []
    async for entry_id, fields in _mentions(
        client, stream, account_id, since_ms, through, scan_limit
    ):
        try:
            rec = decode_record(fields[RECORD_FIELD])
        except (RecordDecodeError, KeyError):
            continue
        if rec.account == account_id:
            out.append((entry_id, rec))
    return out


async def account_audit(
    client: Store,
    partitions: int,
    account_id: str,
    since_ms: int,
    through: str,
    scan_limit: int,
) -> list[AuditEntry]:
    """Every audit entry of the account from ``since_ms`` through entry id ``through``."""
    p = partition_of(account_id, partitions)
    out = []
    async for entry_id, fields in _mentions(
        client, audit_stream(p), account_id, since_ms, through, scan_limit
    ):
        try:
            entry = decode_audit(entry_id, p, fields[AUDIT_FIELD])
        except (AuditDecodeError, KeyError):
            continue
        if entry.account == account_id:
            out.append(entry)
    return out


async def _mentions(
    client: Store, stream: str, account_id: str, since_ms: int, through: str, scan_limit: int
) -> AsyncIterator[tuple[str, dict[bytes, bytes]]]:
    """The entries of ``stream`` from ``since_ms`` through entry id ``through`` that name
    the account (to be decoded and checked); Trimmed first when that start is gone."""
    await check_retained(client, stream, since_ms)
    async for item in scan(
        client, stream, f"{since_ms}-0", through, account_id.encode(), scan_limit
    ):
        yield item
