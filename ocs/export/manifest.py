"""Closing a billing period: one rows file per format, the summary, the manifest.

While a period is open its rows live in batch directories (the unit of the
exactly-once commit, :mod:`ocs.export.layout`). At close, under an exclusive
lock on the period (two exporters may try at once), the exporter:

1. streams every batch, one at a time, into one ``rows.<fmt>`` per format
   and into the running totals, and writes ``summary.<fmt>`` (CSV, JSON Lines);
2. stages all of them in ``.tmp/``, fsync'd, renames them into the period
   directory, then writes ``manifest.json`` the same way, last: its presence
   means the period is closed and its files complete;
3. removes the batch directories (the rows files now hold every row).

Each feed (:mod:`ocs.export.feeds`) closes its own part of a period: the
charged records their ``rows.*``, ``summary.*`` and ``manifest.json``, the
audit entries their ``audit.*`` and ``audit-manifest.json`` (no summary).

The manifest lists each file with its sha256, size and row count, the ISO
4217 exponent used for each currency, per-currency totals, and the batches
merged. A crash before the manifest leaves the period open (the next close
starts over); a crash after it leaves batch directories that the next close
attempt removes. No entry of a closed period can still be pending (a period
closes only once every entry written before its end plus the grace is
acknowledged), so nothing needs the batches afterwards.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ocs.export.formats import RowFile, file_name, write_file
from ocs.export.layout import Layout, batch_meta, batch_rows, fsync_dir, write_durable
from ocs.export.periods import Period, PeriodSpec, iso_local
from ocs.export.rows import Row
from ocs.export.summary import SUMMARY_TYPES, PeriodTotals

SUMMARY_FORMATS = ("csv", "jsonl")
LOCK = ".close.lock"


@contextlib.contextmanager
def period_lock(pdir: Path) -> Iterator[None]:
    """Exclusive lock of one period directory (flock; released on any exit)."""
    with open(pdir / LOCK, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def close_period(
    layout: Layout, spec: PeriodSpec, period: Period, exponent: Callable[[str], int], token: str
) -> dict[str, Any] | None:
    """Close a period (see module docstring); returns the manifest, None if already closed."""
    pdir = layout.period_dir(period.label)
    with period_lock(pdir):
        if (pdir / layout.feed.manifest).exists():
            remove_batches(layout, period.label)
            return None
        manifest = _write_closed(layout, spec, period, exponent, token)
        remove_batches(layout, period.label)
        return manifest


def remove_batches(layout: Layout, label: str) -> int:
    """Delete the batch directories of a closed period; returns how many."""
    gone = 0
    for bdir in layout.batches(label):
        shutil.rmtree(bdir)
        gone += 1
    if gone:
        fsync_dir(layout.period_dir(label))
    return gone


def _write_closed(
    layout: Layout, spec: PeriodSpec, period: Period, exponent: Callable[[str], int], token: str
) -> dict[str, Any]:
    pdir = layout.period_dir(period.label)
    feed = layout.feed
    totals = PeriodTotals()
    kept: list[Row] = []  # audit rows, for their totals (a few per operator change)
    batches = []
    staged: dict[str, Path] = {}
    writers = {}
    for fmt in layout.formats:
        name = file_name(feed.stem, fmt)
        staged[name] = _staging(layout, token, name)
        writers[name] = RowFile(staged[name], fmt, feed.columns)
    try:
        for bdir in layout.batches(period.label):
            rows = batch_rows(bdir, feed)  # one batch in memory at a time
            for out in writers.values():
                out.write(rows)
            if feed.summary:
                for row in rows:
                    totals.add(row)
            else:
                kept.extend(rows)
            meta = batch_meta(bdir)
            batches.append({"name": bdir.name, "entries": len(meta["entries"]), "rows": len(rows)})
        files = {name: out.finish() for name, out in writers.items()}
    except BaseException:
        for out in writers.values():
            out.abort()
        raise
    exponents = {c: exponent(c) for c in totals.currencies()}
    if feed.summary:
        summary = totals.summary(exponents)
        for fmt in (f for f in layout.formats if f in SUMMARY_FORMATS):
            name = file_name("summary", fmt)
            staged[name] = _staging(layout, token, name)
            files[name] = write_file(staged[name], fmt, SUMMARY_TYPES, summary)
    for name, path in staged.items():
        os.replace(path, pdir / name)
    manifest = {
        "period": period.label,
        "kind": spec.kind,
        "timezone": str(spec.zone),
        "start": iso_local(period.start, spec.zone),
        "end": iso_local(period.end, spec.zone),
        "closed_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "exponents": exponents,
        "files": files,
        "totals": totals.totals(exponents) if feed.summary else feed.totals(kept),
        "batches": batches,
    }
    data = json.dumps(manifest, indent=1).encode()
    path = _staging(layout, token, feed.manifest)
    write_durable(path, data)
    fsync_dir(pdir)  # the rows and summary renames first, then the manifest
    os.replace(path, pdir / feed.manifest)
    fsync_dir(pdir)
    return manifest


def _staging(layout: Layout, token: str, name: str) -> Path:
    path = layout.tmp / f"{token}~{name}"
    path.unlink(missing_ok=True)
    return path
