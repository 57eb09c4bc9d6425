"""Committing one partition's buffered entries: decode, reconcile, write, ack.

For each batch of entries taken from one partition stream:

1. decode every entry (the feed's decoder, :mod:`ocs.export.feeds`); one that
   is not a valid item goes to the partition's dead-letter stream with the
   reason, acknowledged in the same MULTI (counted, never written); entries of
   load-test accounts are acknowledged only (``export.exclude_test_accounts``);
2. group the rest by billing period (:meth:`PeriodSpec.assign`); a period
   already closed takes no new batch: such entries are dead-lettered too;
3. entries that were delivered before (reclaimed after a crash or taken over
   from another exporter) are looked up in that period's published batches:
   those found are acknowledged only;
4. the others are staged as one batch in ``.tmp/`` (fsync'd), ownership is
   fenced in Redis (entries taken over meanwhile are dropped from the batch),
   the batch is published by one rename (period dir fsync'd), and only then
   XACKed.

A failure of the disk or of Redis raises out of :meth:`Committer.commit`
after discarding the staged files; every entry not yet resolved stays in the
buffer and pending in Redis.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import structlog

from ocs.export import metrics
from ocs.export.feeds import DecodeError, Item
from ocs.export.layout import BatchExists, Layout, id_key
from ocs.export.periods import PeriodSpec
from ocs.export.rows import RowStyle
from ocs.export.streams import Entry, GroupStreams

log = structlog.get_logger("ocs.export")


@dataclass
class CommitStats:
    records: int = 0
    rows: int = 0
    batches: int = 0
    dead_letters: int = 0
    reconciled: int = 0
    lost: int = 0  # taken over by another exporter before we published

    def add(self, other: CommitStats) -> None:
        for name in self.__dataclass_fields__:
            setattr(self, name, getattr(self, name) + getattr(other, name))


@dataclass
class _Item:
    entry: Entry
    item: Item


def _no_exclusion(accounts: Iterable[str]) -> set[str]:
    return set()


@dataclass
class Committer:
    streams: GroupStreams
    layout: Layout
    spec: PeriodSpec
    style: RowStyle
    token: str
    done: set[str] = field(default_factory=set)
    # Which of these accounts are load-test accounts (export.exclude_test_accounts):
    # their entries are acknowledged and written nowhere.
    excluded: Callable[[Iterable[str]], set[str]] = _no_exclusion

    def commit(self, partition: int, entries: list[Entry]) -> CommitStats:
        """Resolve ``entries``; ids resolved so far are in ``self.done`` even on error."""
        stats = CommitStats()
        feed = self.layout.feed
        decoded: list[_Item] = []
        for entry in sorted(entries, key=lambda e: id_key(e.entry_id)):
            try:
                item = feed.decode(entry.entry_id, partition, entry.fields)
            except DecodeError as exc:
                self._dead_letter(partition, entry, str(exc), "undecodable", stats)
                continue
            decoded.append(_Item(entry, item))
        skip = self.excluded({i.item.account for i in decoded}) if decoded else set()
        if skip:
            ids = [i.entry.entry_id for i in decoded if i.item.account in skip]
            self.streams.ack(partition, ids)
            self.done.update(ids)
            metrics.EXCLUDED.labels(feed.name).inc(len(ids))
        by_period: dict[str, list[_Item]] = {}
        for i in decoded:
            if i.item.account in skip:
                continue
            label = self.spec.assign(i.item.end, id_key(i.entry.entry_id)[0]).label
            by_period.setdefault(label, []).append(i)
        for label, items in by_period.items():
            self._commit_period(partition, label, items, stats)
        return stats

    def _dead_letter(
        self, p: int, entry: Entry, reason: str, kind: str, stats: CommitStats
    ) -> None:
        self.streams.dead_letter(p, entry, reason)
        self.done.add(entry.entry_id)
        stats.dead_letters += 1
        self.layout.feed.metrics.dead_letters.labels(kind).inc()
        log.warning("export_dead_letter", partition=p, entry=entry.entry_id, reason=reason)

    def _commit_period(self, p: int, label: str, items: list[_Item], stats: CommitStats) -> None:
        reclaimed = [i.entry.entry_id for i in items if i.entry.reclaimed]
        if reclaimed:
            self._ack_on_disk(p, label, reclaimed, stats)
            items = [i for i in items if i.entry.entry_id not in self.done]
        if items and self.layout.is_closed(label):
            # Only a clock far out of step can send an entry here (see periods).
            for item in items:
                self._dead_letter(p, item.entry, f"period {label} already closed", "late", stats)
            return
        while items:
            lost = self._write(p, label, items, stats)
            if not lost:
                return
            # Another exporter took these over: it will export them.
            stats.lost += len(lost)
            self.done |= lost
            items = [i for i in items if i.entry.entry_id not in lost]

    def _ack_on_disk(self, p: int, label: str, ids: list[str], stats: CommitStats) -> None:
        on_disk = sorted(self.layout.committed(label, p, ids), key=id_key)
        if on_disk:
            self.streams.ack(p, on_disk)
            self.done.update(on_disk)
            stats.reconciled += len(on_disk)
            self.layout.feed.metrics.reconciled.inc(len(on_disk))
            log.info("export_reconciled", partition=p, period=label, entries=len(on_disk))

    def _write(self, p: int, label: str, items: list[_Item], stats: CommitStats) -> set[str]:
        """Stage, fence, publish, ack; returns ids lost to another consumer (nothing written)."""
        feed = self.layout.feed
        rows = [
            row for i in items for row in feed.rows(i.entry.entry_id, p, i.item.value, self.style)
        ]
        ids = [i.entry.entry_id for i in items]
        staged = self.layout.stage(self.token, label, p, ids, rows)
        try:
            lost = self.streams.fence(p, ids)
            if lost:
                self.layout.discard(staged)
                return lost
            self.layout.publish(staged)
        except BatchExists:
            self.layout.discard(staged)
            self._ack_on_disk(p, label, ids, stats)
            if not set(ids) <= self.done:
                raise
            return set()
        except BaseException:
            self.layout.discard(staged)
            raise
        self.streams.ack(p, ids)
        self.done.update(ids)
        stats.records += len(items)
        stats.rows += len(rows)
        stats.batches += 1
        feed.metrics.exported.inc(len(items))
        if feed.metrics.rows is not None:
            feed.metrics.rows.inc(len(rows))
        metrics.FILES_WRITTEN.labels(feed.stem).inc(len(self.layout.formats))
        log.debug(
            "export_batch_written",
            partition=p,
            period=label,
            entries=len(ids),
            rows=len(rows),
            batch=staged.final.name,
        )
        return set()
