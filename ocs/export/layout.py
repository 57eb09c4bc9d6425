"""On-disk layout of the export and the crash-safe batch commit.

::

    <output_dir>/
      layout.json                      period kind, zone, grace (fixed per directory)
      .tmp/                            staging; never read by anyone else
      2026-11-27/                      an open period (see ocs.export.periods)
        p03_1764201600000-0_1764201601234-5/   one committed batch
          rows.csv  rows.jsonl         the rows, one format per file
          batch.json                   entry ids, row count, totals, sha256 of each file
      2026-11-26/                      a closed period (ocs.export.manifest)
        rows.csv  rows.jsonl           every row of the period
        summary.csv  summary.jsonl     per account and service
        manifest.json                  written last: the period is closed

A batch holds entries of one partition stream and one period; its directory
is named ``p<partition>_<first id>_<last id>`` (charged records) or
``a<partition>_...`` (audit entries, beside them: ``audit.csv``,
``audit.jsonl`` and ``audit-manifest.json`` at close; :mod:`ocs.export.feeds`).
It is staged complete in ``.tmp/`` (every file written, flushed and fsync'd, then the staging
directory fsync'd) and published by one ``rename(2)`` into the period
directory, which is then fsync'd. A batch directory therefore exists whole or
not at all, and ``batch.json`` inside it lists exactly the entries it holds:
that is what the exporter reads back after a crash (see ocs.export.exporter).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import shutil
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ocs.export.feeds import RECORDS, Feed
from ocs.export.formats import file_name, iter_raw, write_file
from ocs.export.rows import Row

TMP_DIR = ".tmp"
BATCH_META = "batch.json"
MANIFEST = "manifest.json"
LAYOUT = "layout.json"


def id_key(entry_id: str) -> tuple[int, int]:
    """A stream id ``ms-seq`` as a sortable pair."""
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


@dataclass(frozen=True, slots=True)
class BatchName:
    partition: int
    first: str
    last: str
    prefix: str = "p"  # the feed's (p: charged records, a: audit entries)

    def __str__(self) -> str:
        return f"{self.prefix}{self.partition:02d}_{self.first}_{self.last}"

    @classmethod
    def parse(cls, name: str, prefix: str = "p") -> BatchName | None:
        parts = name.split("_")
        if len(parts) != 3 or not parts[0].startswith(prefix) or not parts[0][1:].isdigit():
            return None
        try:
            partition = int(parts[0][1:])
            id_key(parts[1])
            id_key(parts[2])
        except ValueError:
            return None
        return cls(partition, parts[1], parts[2], prefix)

    def covers(self, entry_id: str) -> bool:
        return id_key(self.first) <= id_key(entry_id) <= id_key(self.last)


class LayoutMismatch(Exception):
    """The output directory was written with another period, zone or grace."""


class BatchExists(Exception):
    """A batch directory of that name is already published."""


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_durable(path: Path, data: bytes) -> str:
    """Write, flush and fsync a new file; returns its sha256."""
    with open(path, "xb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True, slots=True)
class Staged:
    tmp: Path
    final: Path
    entries: tuple[str, ...]
    rows: int


class Layout:
    """Paths, staging, publishing and look-ups under one output directory."""

    def __init__(self, root: Path, formats: Sequence[str], feed: Feed = RECORDS) -> None:
        self.root = root
        self.formats = tuple(formats)
        self.feed = feed
        self.tmp = root / TMP_DIR
        self._seq = 0

    def ensure(self, meta: dict[str, Any], token: str) -> None:
        """Create the root and staging dirs; check or record ``layout.json``."""
        self.tmp.mkdir(parents=True, exist_ok=True)
        path = self.root / LAYOUT
        if path.exists():
            found = json.loads(path.read_text(encoding="utf-8"))
            if found != meta:
                raise LayoutMismatch(
                    f"{path}: written with {found}, config now says {meta}; "
                    "use a new output_dir for a new period, zone or grace"
                )
            return
        staged = self.tmp / f"{token}~{LAYOUT}"
        staged.unlink(missing_ok=True)
        write_durable(staged, json.dumps(meta, sort_keys=True).encode())
        os.replace(staged, path)
        fsync_dir(self.root)

    def period_dir(self, label: str) -> Path:
        return self.root / label

    def is_closed(self, label: str) -> bool:
        """Is this feed's part of the period closed (its manifest written)?"""
        return (self.period_dir(label) / self.feed.manifest).exists()

    def period_labels(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(
            p.name for p in self.root.iterdir() if p.is_dir() and not p.name.startswith(".")
        )

    def batches(self, label: str) -> list[Path]:
        """Published batch directories of a period, in name order."""
        pdir = self.period_dir(label)
        if not pdir.is_dir():
            return []
        prefix = self.feed.batch_prefix
        return sorted(
            p for p in pdir.iterdir() if p.is_dir() and BatchName.parse(p.name, prefix) is not None
        )

    def committed(self, label: str, partition: int, ids: Iterable[str]) -> set[str]:
        """Which of ``ids`` (one partition) a published batch of ``label`` holds."""
        wanted = set(ids)
        found: set[str] = set()
        for path in self.batches(label):
            name = BatchName.parse(path.name, self.feed.batch_prefix)
            if name is None or name.partition != partition:
                continue
            if not any(name.covers(i) for i in wanted - found):
                continue
            found |= wanted & set(batch_meta(path)["entries"])
        return found

    def stage(
        self, token: str, label: str, partition: int, entries: Sequence[str], rows: Sequence[Row]
    ) -> Staged:
        """Write a complete batch into ``.tmp/`` and fsync it (not yet visible)."""
        ordered = sorted(entries, key=id_key)
        name = BatchName(partition, ordered[0], ordered[-1], self.feed.batch_prefix)
        self._seq += 1
        tmp = self.tmp / f"{token}~{self._seq}"
        tmp.mkdir()
        try:
            files = {}
            feed = self.feed
            for fmt in self.formats:
                fname = file_name(feed.stem, fmt)
                files[fname] = write_file(tmp / fname, fmt, feed.columns, rows)
            meta = {
                "period": label,
                "partition": partition,
                "entries": ordered,
                "rows": len(rows),
                "records": len({r[feed.unique_column] for r in rows}),
                "files": files,
                "totals": feed.totals(rows),
                "writer": token,
            }
            write_durable(tmp / BATCH_META, json.dumps(meta, indent=1).encode())
            fsync_dir(tmp)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return Staged(tmp, self.period_dir(label) / str(name), tuple(ordered), len(rows))

    def publish(self, staged: Staged) -> None:
        """Make a staged batch visible with one rename, then fsync the period dir."""
        pdir = staged.final.parent
        if not pdir.is_dir():
            pdir.mkdir(exist_ok=True)
            fsync_dir(self.root)
        try:
            os.rename(staged.tmp, staged.final)
        except OSError as exc:
            if exc.errno in (errno.ENOTEMPTY, errno.EEXIST):
                raise BatchExists(str(staged.final)) from exc
            raise
        fsync_dir(pdir)
        fsync_dir(self.tmp)

    def discard(self, staged: Staged) -> None:
        shutil.rmtree(staged.tmp, ignore_errors=True)

    def cleanup_staging(self, is_stale: Callable[[str], bool]) -> int:
        """Remove staging leftovers whose writer ``is_stale(token)``; returns the count."""
        removed = 0
        if not self.tmp.is_dir():
            return 0
        for path in self.tmp.iterdir():
            token = path.name.split("~", 1)[0]
            if is_stale(token):
                if path.is_dir():
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    with contextlib.suppress(FileNotFoundError):
                        path.unlink()
                removed += 1
        return removed


def batch_meta(batch_dir: Path) -> dict[str, Any]:
    meta: dict[str, Any] = json.loads((batch_dir / BATCH_META).read_text(encoding="utf-8"))
    return meta


def batch_rows(batch_dir: Path, feed: Feed = RECORDS) -> list[Row]:
    """Rows of a published batch (JSON Lines if it has them, else CSV)."""
    files = batch_meta(batch_dir)["files"]
    for fmt in ("jsonl", "csv", "parquet"):
        name = file_name(feed.stem, fmt)
        if name in files:
            return [feed.coerce(r) for r in iter_raw(batch_dir / name)]
    raise ValueError(f"{batch_dir}: no readable row file")
