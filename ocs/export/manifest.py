"""Closing a billing period: summary files, then the manifest.

The manifest is the last file written into a period directory: its presence
means the period is closed and complete. It lists every batch with its row
count and the sha256 of each file, the summary files with their sha256, the
ISO 4217 exponent used for each currency, and per-currency totals. Every
file is staged in ``.tmp/``, fsync'd and renamed into place, so a crash
during the close leaves no manifest and the next run closes again; two
exporters closing the same period write the same content.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ocs.export.formats import file_name, render
from ocs.export.layout import (
    MANIFEST,
    Layout,
    batch_meta,
    batch_rows,
    fsync_dir,
    write_durable,
)
from ocs.export.periods import Period, PeriodSpec, iso_local
from ocs.export.rows import Row
from ocs.export.summary import SUMMARY_TYPES, currency_totals, summarize

SUMMARY_FORMATS = ("csv", "jsonl")


def close_period(
    layout: Layout, spec: PeriodSpec, period: Period, exponent: Callable[[str], int], token: str
) -> dict[str, Any]:
    """Write the summary and manifest of a period; returns the manifest."""
    pdir = layout.period_dir(period.label)
    dirs = layout.batches(period.label)
    batches = []
    for bdir in dirs:
        meta = batch_meta(bdir)
        batches.append(
            {
                "name": bdir.name,
                "partition": meta["partition"],
                "entries": len(meta["entries"]),
                "rows": meta["rows"],
                "files": meta["files"],
            }
        )

    def rows() -> Iterator[Row]:
        # One batch in memory at a time: a month can hold millions of rows.
        for bdir in dirs:
            yield from batch_rows(bdir)

    totals = currency_totals(rows())
    exponents = {c: exponent(c) for c in totals}
    summary = summarize(rows(), exponents)
    summary_files = {}
    for fmt in (f for f in layout.formats if f in SUMMARY_FORMATS):
        fname = file_name("summary", fmt)
        data = render(fmt, summary, SUMMARY_TYPES)
        summary_files[fname] = {
            "sha256": _install(layout, token, pdir / fname, data),
            "bytes": len(data),
            "rows": len(summary),
        }
    manifest = {
        "period": period.label,
        "kind": spec.kind,
        "timezone": str(spec.zone),
        "start": iso_local(period.start, spec.zone),
        "end": iso_local(period.end, spec.zone),
        "closed_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "exponents": exponents,
        "batches": batches,
        "summary": summary_files,
        "totals": {
            "rows": sum(t["rows"] for t in totals.values()),
            "records": sum(t["records"] for t in totals.values()),
            "currencies": totals,
        },
    }
    _install(layout, token, pdir / MANIFEST, json.dumps(manifest, indent=1).encode())
    return manifest


def _install(layout: Layout, token: str, target: Path, data: bytes) -> str:
    """Stage, fsync, rename into place, fsync the directory; returns sha256."""
    staged = layout.tmp / f"{token}~{target.name}"
    staged.unlink(missing_ok=True)
    digest = write_durable(staged, data)
    os.replace(staged, target)
    fsync_dir(target.parent)
    return digest
