"""``ocs export verify DIR``: recompute everything from the rows and compare.

Checks, for the output root or one period directory:

* every batch: each file's sha256 and size match ``batch.json``; every
  format holds the same rows; row count, entry ids and per-currency totals
  match ``batch.json``; the directory name matches its first and last entry;
* no stream entry in two batches and no record id from two entries,
  anywhere under DIR (exactly once);
* every closed period: the manifest lists exactly the batches on disk with
  the same checksums, its totals equal the sums of the rows, and each
  summary file has its checksum and equals the summary recomputed from rows.

Open periods (no manifest yet) get the batch and duplicate checks only.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ocs.export.formats import read_raw, read_rows
from ocs.export.layout import (
    BATCH_META,
    MANIFEST,
    TMP_DIR,
    BatchName,
    batch_rows,
    id_key,
    sha256_file,
)
from ocs.export.rows import Row
from ocs.export.summary import coerce_summary, currency_totals, summarize


@dataclass
class Report:
    problems: list[str] = field(default_factory=list)
    periods: int = 0
    closed: int = 0
    batches: int = 0
    rows: int = 0
    records: int = 0

    @property
    def ok(self) -> bool:
        return not self.problems


def period_dirs(target: Path) -> list[Path]:
    """The period directories under DIR (DIR itself if it is one)."""
    if (target / MANIFEST).exists() or any(
        BatchName.parse(p.name) for p in target.iterdir() if p.is_dir()
    ):
        return [target]
    return sorted(p for p in target.iterdir() if p.is_dir() and not p.name.startswith("."))


def verify(target: Path) -> Report:
    report = Report()
    if not target.is_dir():
        report.problems.append(f"{target}: not a directory")
        return report
    entry_seen: dict[tuple[int, str], str] = {}
    record_seen: dict[str, tuple[int, str]] = {}
    for pdir in period_dirs(target):
        if pdir.name == TMP_DIR:
            continue
        report.periods += 1
        good = []  # batches whose rows could be read; one in memory at a time
        for bdir in sorted(p for p in pdir.iterdir() if BatchName.parse(p.name)):
            rows = _check_batch(bdir, report)
            if rows is None:
                continue
            good.append(bdir)
            _check_unique(bdir, rows, entry_seen, record_seen, report)
        if (pdir / MANIFEST).exists():
            report.closed += 1
            _check_manifest(pdir, good, report)
    return report


def _check_batch(bdir: Path, report: Report) -> list[Row] | None:
    where = f"{bdir.parent.name}/{bdir.name}"
    try:
        meta = json.loads((bdir / BATCH_META).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        report.problems.append(f"{where}: unreadable {BATCH_META}: {exc}")
        return None
    report.batches += 1
    versions: list[list[Row]] = []
    for fname, info in meta["files"].items():
        path = bdir / fname
        if not path.exists():
            report.problems.append(f"{where}/{fname}: missing")
            continue
        if sha256_file(path) != info["sha256"] or path.stat().st_size != info["bytes"]:
            report.problems.append(f"{where}/{fname}: sha256 or size differs from {BATCH_META}")
        try:
            versions.append(read_rows(path))
        except (ValueError, KeyError) as exc:
            report.problems.append(f"{where}/{fname}: unreadable rows: {exc}")
    if not versions:
        return None
    rows = versions[0]
    if any(v != rows for v in versions[1:]):
        report.problems.append(f"{where}: the formats hold different rows")
    entries = meta["entries"]
    name = BatchName.parse(bdir.name)
    ordered = sorted(entries, key=id_key)
    if name is None or (name.partition, name.first, name.last) != (
        meta["partition"],
        ordered[0],
        ordered[-1],
    ):
        report.problems.append(f"{where}: name does not match its entries")
    if len(rows) != meta["rows"]:
        report.problems.append(f"{where}: {len(rows)} rows, {BATCH_META} says {meta['rows']}")
    if {r["entry_id"] for r in rows} != set(entries):
        report.problems.append(f"{where}: row entry ids differ from {BATCH_META} entries")
    if currency_totals(rows) != meta["totals"]:
        report.problems.append(f"{where}: totals recomputed from rows differ from {BATCH_META}")
    return rows


def _check_unique(
    bdir: Path,
    rows: list[Row],
    entry_seen: dict[tuple[int, str], str],
    record_seen: dict[str, tuple[int, str]],
    report: Report,
) -> None:
    where = f"{bdir.parent.name}/{bdir.name}"
    for row in rows:
        key = (row["partition"], row["entry_id"])
        seen_in = entry_seen.setdefault(key, where)
        if seen_in != where:
            report.problems.append(
                f"{where}: entry {key[1]} of partition {key[0]} also in {seen_in}"
            )
        first = record_seen.setdefault(row["record_id"], key)
        if first != key:
            report.problems.append(
                f"{where}: record {row['record_id']} exported twice "
                f"(entries {first[1]} and {key[1]})"
            )
    report.rows += len(rows)
    report.records += len({r["record_id"] for r in rows})


def _check_manifest(pdir: Path, batches: list[Path], report: Report) -> None:
    where = f"{pdir.name}/{MANIFEST}"
    try:
        manifest: dict[str, Any] = json.loads((pdir / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        report.problems.append(f"{where}: unreadable: {exc}")
        return
    listed = {b["name"]: b for b in manifest["batches"]}
    names = {b.name for b in batches}
    if set(listed) != names:
        extra = sorted(names - set(listed))
        missing = sorted(set(listed) - names)
        report.problems.append(
            f"{where}: batches on disk not listed {extra}, "
            f"listed but missing or unreadable {missing}"
        )
    for name, info in listed.items():
        bdir = pdir / name
        if (bdir / BATCH_META).exists():
            meta = json.loads((bdir / BATCH_META).read_text(encoding="utf-8"))
            if meta["files"] != info["files"]:
                report.problems.append(f"{where}: checksums of {name} differ from its batch")

    def rows() -> Iterator[Row]:
        for bdir in batches:
            yield from batch_rows(bdir)

    by_currency = currency_totals(rows())
    totals = {
        "rows": sum(t["rows"] for t in by_currency.values()),
        "records": sum(t["records"] for t in by_currency.values()),
        "currencies": by_currency,
    }
    if totals != manifest["totals"]:
        report.problems.append(f"{where}: totals recomputed from rows differ from the manifest")
    try:
        expected = summarize(rows(), manifest["exponents"])
    except KeyError as exc:
        report.problems.append(f"{where}: no exponent for currency {exc}")
        return
    for fname, info in manifest["summary"].items():
        _check_summary(pdir / fname, info, expected, report)


def _check_summary(
    path: Path, info: dict[str, Any], expected: list[dict[str, Any]], report: Report
) -> None:
    where = f"{path.parent.name}/{path.name}"
    if not path.exists():
        report.problems.append(f"{where}: missing")
        return
    if sha256_file(path) != info["sha256"]:
        report.problems.append(f"{where}: sha256 differs from the manifest")
    try:
        found = [coerce_summary(r) for r in read_raw(path)]
    except (ValueError, KeyError) as exc:
        report.problems.append(f"{where}: unreadable: {exc}")
        return
    if found != expected:
        report.problems.append(f"{where}: differs from the summary recomputed from the rows")
