"""What the exporter exports: its feeds, each a family of partition streams.

The exactly-once machinery (:mod:`ocs.export.exporter`, ``streams``,
``commit``, ``layout``, ``manifest``) is the same for every feed; a feed
says which streams it reads, how an entry decodes and becomes rows, and
which files it owns in a period directory:

* ``records``: the charged-session records (``ocs:{pNN}:records``), invoice
  rows ``rows.*``, batches ``pNN_<first>_<last>/``, ``summary.*`` and
  ``manifest.json`` at close;
* ``audit``: the operator changes (``ocs:{pNN}:audit``, :mod:`ocs.audit`),
  rows ``audit.*``, batches ``aNN_<first>_<last>/``, ``audit-manifest.json``
  at close.

Both feeds share the period directories (``2026-11-27/``), each closing its
own part of a period once its own streams are acknowledged up to the
period's end plus the grace.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ocs.audit import AUDIT_FIELD, AuditDecodeError, AuditEntry, decode_audit
from ocs.charging.records import RECORD_FIELD, ChargedRecord, RecordDecodeError, decode_record
from ocs.export import metrics
from ocs.export.audit_rows import AUDIT_COLUMNS, audit_rows, audit_totals, coerce_audit_row
from ocs.export.rows import COLUMNS, Row, RowStyle, coerce_row, record_rows
from ocs.export.summary import currency_totals
from ocs.store.keys import (
    audit_dead_letter_stream,
    audit_stream,
    dead_letter_stream,
    records_stream,
)

Fields = dict[bytes, bytes]


class DecodeError(ValueError):
    """An entry that is not a valid item of its feed (dead-lettered with the reason)."""


@dataclass(frozen=True, slots=True)
class Item:
    """One decoded entry: its account and time, for exclusion and period."""

    account: str
    end: int  # unix seconds: the record's end, the change's time
    value: Any  # ChargedRecord | AuditEntry


@dataclass(frozen=True, slots=True)
class Feed:
    name: str
    stream: Callable[[int], str]
    dead_stream: Callable[[int], str]
    batch_prefix: str  # batch directory names: <prefix><NN>_<first>_<last>
    stem: str  # row files: <stem>.csv, <stem>.jsonl, ...
    manifest: str  # written last when the feed's part of a period closes
    columns: Mapping[str, type]
    unique_column: str  # one value per stream entry (exactly-once check)
    decode: Callable[[str, int, Fields], Item]
    rows: Callable[[str, int, Any, RowStyle], list[Row]]
    totals: Callable[[Iterable[Row]], dict[str, Any]]
    coerce: Callable[[Mapping[str, Any]], Row]
    metrics: metrics.FeedMetrics
    summary: bool  # per-account summary at close (invoice rows only)


def _decode_record(entry_id: str, partition: int, fields: Fields) -> Item:
    raw = fields.get(RECORD_FIELD)
    if raw is None:
        raise DecodeError(f"no {RECORD_FIELD.decode()!r} field")
    try:
        rec: ChargedRecord = decode_record(raw)
    except RecordDecodeError as exc:
        raise DecodeError(str(exc)) from None
    if rec.net + rec.tax != rec.charged:
        raise DecodeError(f"net {rec.net} + tax {rec.tax} != charged {rec.charged}")
    return Item(rec.account, rec.end, rec)


def _decode_audit(entry_id: str, partition: int, fields: Fields) -> Item:
    raw = fields.get(AUDIT_FIELD)
    if raw is None:
        raise DecodeError(f"no {AUDIT_FIELD.decode()!r} field")
    try:
        entry: AuditEntry = decode_audit(entry_id, partition, raw)
    except AuditDecodeError as exc:
        raise DecodeError(str(exc)) from None
    return Item(entry.account, entry.at_ms // 1000, entry)


RECORDS = Feed(
    name="records",
    stream=records_stream,
    dead_stream=dead_letter_stream,
    batch_prefix="p",
    stem="rows",
    manifest="manifest.json",
    columns=COLUMNS,
    unique_column="record_id",
    decode=_decode_record,
    rows=record_rows,
    totals=currency_totals,
    coerce=coerce_row,
    metrics=metrics.RECORDS,
    summary=True,
)

AUDIT = Feed(
    name="audit",
    stream=audit_stream,
    dead_stream=audit_dead_letter_stream,
    batch_prefix="a",
    stem="audit",
    manifest="audit-manifest.json",
    columns=AUDIT_COLUMNS,
    unique_column="audit_id",
    decode=_decode_audit,
    rows=audit_rows,
    totals=audit_totals,
    coerce=coerce_audit_row,
    metrics=metrics.AUDIT,
    summary=False,
)

FEEDS = (RECORDS, AUDIT)
