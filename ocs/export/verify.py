"""``ocs export verify DIR``: recompute everything from the rows and compare.

DIR is the output root or one period directory. Checks:

* open period, every batch directory: each file's sha256 and size match
  ``batch.json``; every format holds the same rows; row count, entry ids
  and per-currency totals match; the name matches its first and last entry;
* closed period: the manifest's files exist with their sha256 and size;
  the rows files of every format hold the same rows, as many as the
  manifest says; the manifest totals equal the sums of the rows; each
  summary file equals the summary recomputed from the rows; no batch
  directory is left behind (it would be counted twice by a reader);
* everywhere under DIR: no stream entry in two places and no record id
  from two entries (exactly once);
* the audit files beside them (:mod:`ocs.export.feeds`), the same way:
  batches ``aNN_...`` against their ``batch.json``, a closed period's
  ``audit.*`` against ``audit-manifest.json``, each audit stream entry once.

Rows are streamed (one batch, or one row of each format, at a time); the
exactly-once check keeps one key per row in memory.

Whatever the files hold, verify reports it as a problem and never raises:
a manifest or ``batch.json`` of the wrong shape (``{"files": 5}``), a file
name that is not a plain name, unreadable or undecodable rows. A directory
with no export in it (no ``layout.json`` and no period) is ``empty``: the
command refuses it as bad input rather than calling it verified.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from itertools import zip_longest
from pathlib import Path
from typing import Any

from ocs.export.audit_rows import audit_totals, coerce_audit_row
from ocs.export.feeds import AUDIT
from ocs.export.formats import file_name, iter_raw, iter_rows, read_rows, sha256_file
from ocs.export.layout import BATCH_META, LAYOUT, MANIFEST, TMP_DIR, BatchName, id_key
from ocs.export.rows import Row
from ocs.export.summary import PeriodTotals, coerce_summary, currency_totals


@dataclass
class Report:
    problems: list[str] = field(default_factory=list)
    periods: int = 0
    closed: int = 0
    batches: int = 0
    rows: int = 0
    records: int = 0
    audit_batches: int = 0
    audit_entries: int = 0

    empty: bool = False  # nothing here is an export (no layout.json, no period)

    @property
    def ok(self) -> bool:
        return not self.problems


# What reading a rows file can raise on bad content (pyarrow's errors are
# ValueErrors; ImportError: a parquet file without pyarrow installed).
_ROW_ERRORS = (ValueError, KeyError, TypeError, csv.Error, OSError, ImportError)


@dataclass
class _Seen:
    """Where each stream entry and each record id was first seen."""

    entries: dict[tuple[int, str], str] = field(default_factory=dict)
    records: dict[str, tuple[int, str]] = field(default_factory=dict)

    def add(self, where: str, row: Row, report: Report) -> None:
        key = (row["partition"], row["entry_id"])
        first_place = self.entries.setdefault(key, where)
        if first_place != where:
            report.problems.append(
                f"{where}: entry {key[1]} of partition {key[0]} also in {first_place}"
            )
            self.entries[key] = where  # report each further copy once
        first_entry = self.records.setdefault(row["record_id"], key)
        if first_entry != key:
            report.problems.append(
                f"{where}: record {row['record_id']} exported twice "
                f"(entries {first_entry[1]} and {key[1]})"
            )
        report.rows += 1


def period_dirs(target: Path) -> list[Path]:
    """The period directories under DIR (DIR itself if it is one)."""
    if (
        (target / MANIFEST).exists()
        or (target / AUDIT.manifest).exists()
        or any(
            BatchName.parse(p.name) or BatchName.parse(p.name, AUDIT.batch_prefix)
            for p in target.iterdir()
            if p.is_dir()
        )
    ):
        return [target]
    return sorted(
        p
        for p in target.iterdir()
        if p.is_dir() and not p.name.startswith(".") and p.name != TMP_DIR
    )


def verify(target: Path) -> Report:
    report = Report()
    if not target.is_dir():
        report.problems.append(f"{target}: not a directory")
        return report
    seen = _Seen()
    audit_seen: dict[tuple[int, str], str] = {}
    periods = period_dirs(target)
    report.empty = not periods and not (target / LAYOUT).exists()
    for pdir in periods:
        report.periods += 1
        _check_audit(pdir, audit_seen, report)
        batches = sorted(p for p in pdir.iterdir() if p.is_dir() and BatchName.parse(p.name))
        if (pdir / MANIFEST).exists():
            report.closed += 1
            if batches:
                report.problems.append(
                    f"{pdir.name}: closed, but {len(batches)} batch directories remain "
                    "(an interrupted close: run `ocs export --once` to finish it)"
                )
            _check_closed(pdir, seen, report)
            continue
        merged = sorted(
            p.name
            for p in pdir.iterdir()
            if p.is_file() and p.name.startswith(("rows.", "summary."))
        )
        if merged:
            report.problems.append(
                f"{pdir.name}: {', '.join(merged)} without a manifest (an interrupted close: "
                "run `ocs export --once` to finish it)"
            )
        for bdir in batches:
            rows = _check_batch(bdir, report)
            for row in rows or ():
                seen.add(f"{pdir.name}/{bdir.name}", row, report)
    report.records = len(seen.records)
    return report


def _check_file(pdir: Path, name: str, info: dict[str, Any], where: str, report: Report) -> bool:
    path = pdir / name
    if not path.is_file():
        report.problems.append(f"{where}/{name}: missing")
        return False
    try:
        differs = sha256_file(path) != info["sha256"] or path.stat().st_size != info["bytes"]
    except OSError as exc:
        report.problems.append(f"{where}/{name}: unreadable: {exc.strerror or exc}")
        return False
    if differs:
        report.problems.append(f"{where}/{name}: sha256 or size differs from its listing")
    return True


def _load_listing(path: Path, fields: dict[str, type], where: str, report: Report) -> Any:
    """A manifest or batch.json of the expected shape, or None with the problem reported."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        report.problems.append(f"{where}: unreadable {path.name}: {exc}")
        return None
    problem = _shape_problem(doc, fields)
    if problem is not None:
        report.problems.append(f"{where}/{path.name}: {problem}")
        return None
    return doc


def _shape_problem(doc: Any, fields: dict[str, type]) -> str | None:
    if not isinstance(doc, dict):
        return f"expected a JSON object, got {type(doc).__name__}"
    for key, kind in fields.items():
        value = doc.get(key)
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            return f"{key}: expected {_KIND_NAMES[kind]}, got {str(value)[:40]!r}"
    for name, info in doc["files"].items():
        if "/" in name or "\\" in name or name in ("", ".", ".."):
            return f"files: {name[:40]!r} is not a file name"
        if not (
            isinstance(info, dict)
            and isinstance(info.get("sha256"), str)
            and type(info.get("bytes")) is int
        ):
            return f"files.{name}: expected an object with sha256 and bytes"
    for currency, exponent in (doc.get("exponents") or {}).items():
        if type(exponent) is not int or not 0 <= exponent <= 18:
            return f"exponents.{str(currency)[:8]}: expected an integer 0..18, got {exponent!r}"
    entries = doc.get("entries")
    if entries is not None and not entries:
        return "entries: expected at least one stream entry id"
    for entry in entries or ():
        if not isinstance(entry, str) or not _is_entry_id(entry):
            return f"entries: {str(entry)[:40]!r} is not a stream entry id"
    return None


def _is_entry_id(text: str) -> bool:
    try:
        id_key(text)
    except ValueError:
        return False
    return True


_KIND_NAMES = {dict: "an object", list: "a list", int: "an integer", str: "a string"}
_BATCH_FIELDS: dict[str, type] = {
    "files": dict,
    "entries": list,
    "partition": int,
    "rows": int,
    "totals": dict,
}
_MANIFEST_FIELDS: dict[str, type] = {"files": dict, "exponents": dict, "totals": dict}


def _check_batch(bdir: Path, report: Report) -> list[Row] | None:
    where = f"{bdir.parent.name}/{bdir.name}"
    meta = _load_listing(bdir / BATCH_META, _BATCH_FIELDS, where, report)
    if meta is None:
        return None
    report.batches += 1
    # Lazy: each file is checked just before it is read, as the report lists them.
    files = (f for f, info in meta["files"].items() if _check_file(bdir, f, info, where, report))
    rows = _same_versions(where, bdir, files, report, read_rows, "")
    if rows is None:
        return None
    ordered = sorted(meta["entries"], key=id_key)
    name = BatchName.parse(bdir.name)
    if name is None or (name.partition, name.first, name.last) != (
        meta["partition"],
        ordered[0],
        ordered[-1],
    ):
        report.problems.append(f"{where}: name does not match its entries")
    if len(rows) != meta["rows"]:
        report.problems.append(f"{where}: {len(rows)} rows, {BATCH_META} says {meta['rows']}")
    if {r["entry_id"] for r in rows} != set(ordered):
        report.problems.append(f"{where}: row entry ids differ from {BATCH_META} entries")
    if currency_totals(rows) != meta["totals"]:
        report.problems.append(f"{where}: totals recomputed from rows differ from {BATCH_META}")
    return rows


def _check_closed(pdir: Path, seen: _Seen, report: Report) -> None:
    where = pdir.name
    manifest = _load_listing(pdir / MANIFEST, _MANIFEST_FIELDS, where, report)
    if manifest is None:
        return
    files: dict[str, Any] = manifest["files"]
    present = {name for name, info in files.items() if _check_file(pdir, name, info, where, report)}
    row_files = sorted(n for n in present if n.startswith("rows."))
    if not row_files:
        report.problems.append(f"{where}: no rows file")
        return
    totals = PeriodTotals()
    try:
        streams = (iter_rows(pdir / f) for f in row_files)
        for n, versions in enumerate(zip_longest(*streams), 1):
            row = versions[0]
            if row is None or any(v != row for v in versions[1:]):
                report.problems.append(f"{where}: rows files differ at row {n}")
                break
            totals.add(row)
            seen.add(where, row, report)
    except _ROW_ERRORS as exc:
        report.problems.append(f"{where}: unreadable rows: {exc}")
        return
    exponents = manifest["exponents"]
    if set(exponents) != set(totals.currencies()):
        report.problems.append(f"{where}/{MANIFEST}: exponents do not match the currencies")
        return
    recomputed = totals.totals(exponents)
    for name in row_files:
        if files[name].get("rows") != recomputed["rows"]:
            report.problems.append(f"{where}/{name}: row count differs from the manifest")
    if recomputed != manifest["totals"]:
        report.problems.append(f"{where}/{MANIFEST}: totals differ from the sums of the rows")
    expected = totals.summary(exponents)
    for fmt in ("csv", "jsonl"):
        name = file_name("summary", fmt)
        if name in present:
            try:
                found = [coerce_summary(r) for r in iter_raw(pdir / name)]
            except _ROW_ERRORS as exc:
                report.problems.append(f"{where}/{name}: unreadable: {exc}")
                continue
            if found != expected:
                report.problems.append(f"{where}/{name}: differs from the summary of the rows")


# -- the audit files (ocs.export.feeds.AUDIT) ------------------------------------


def _audit_rows(path: Path) -> list[Row]:
    return [coerce_audit_row(r) for r in iter_raw(path)]


def _check_audit(pdir: Path, seen: dict[tuple[int, str], str], report: Report) -> None:
    """The audit part of one period directory: batches, or merged files and manifest."""
    batches = sorted(
        p for p in pdir.iterdir() if p.is_dir() and BatchName.parse(p.name, AUDIT.batch_prefix)
    )
    if (pdir / AUDIT.manifest).exists():
        if batches:
            report.problems.append(
                f"{pdir.name}: audit closed, but {len(batches)} audit batch directories remain "
                "(an interrupted close: run `ocs export --once` to finish it)"
            )
        _check_audit_closed(pdir, seen, report)
        return
    merged = sorted(p.name for p in pdir.iterdir() if p.is_file() and p.name.startswith("audit."))
    if merged:
        report.problems.append(
            f"{pdir.name}: {', '.join(merged)} without {AUDIT.manifest} (an interrupted close: "
            "run `ocs export --once` to finish it)"
        )
    for bdir in batches:
        _check_audit_batch(bdir, seen, report)


def _audit_seen(where: str, rows: list[Row], seen: dict[tuple[int, str], str], r: Report) -> None:
    for row in rows:
        key = (row["partition"], row["entry_id"])
        first = seen.setdefault(key, where)
        if first != where:
            r.problems.append(
                f"{where}: audit entry {key[1]} of partition {key[0]} also in {first}"
            )
        r.audit_entries += 1


def _same_versions(
    where: str,
    folder: Path,
    names: Iterable[str],
    report: Report,
    read: Callable[[Path], list[Row]] = _audit_rows,
    what: str = "audit ",
) -> list[Row] | None:
    """The rows that every format of one batch holds (read with ``read``); each
    unreadable file, and formats that disagree, go to the report. None: none read."""
    versions: list[list[Row]] = []
    for name in names:
        try:
            versions.append(read(folder / name))
        except _ROW_ERRORS as exc:
            report.problems.append(f"{where}/{name}: unreadable {what}rows: {exc}")
    if not versions:
        return None
    if any(v != versions[0] for v in versions[1:]):
        report.problems.append(f"{where}: the {what}formats hold different rows")
    return versions[0]


def _check_audit_batch(bdir: Path, seen: dict[tuple[int, str], str], report: Report) -> None:
    where = f"{bdir.parent.name}/{bdir.name}"
    meta = _load_listing(bdir / BATCH_META, _BATCH_FIELDS, where, report)
    if meta is None:
        return
    report.audit_batches += 1
    names = [n for n, info in meta["files"].items() if _check_file(bdir, n, info, where, report)]
    rows = _same_versions(where, bdir, names, report)
    if rows is None:
        return
    ordered = sorted(meta["entries"], key=id_key)
    name = BatchName.parse(bdir.name, AUDIT.batch_prefix)
    if name is None or (name.partition, name.first, name.last) != (
        meta["partition"],
        ordered[0],
        ordered[-1],
    ):
        report.problems.append(f"{where}: name does not match its entries")
    if len(rows) != meta["rows"] or {r["entry_id"] for r in rows} != set(ordered):
        report.problems.append(f"{where}: audit rows differ from {BATCH_META} entries")
    if audit_totals(rows) != meta["totals"]:
        report.problems.append(f"{where}: audit totals recomputed differ from {BATCH_META}")
    _audit_seen(where, rows, seen, report)


def _check_audit_closed(pdir: Path, seen: dict[tuple[int, str], str], report: Report) -> None:
    where = pdir.name
    manifest = _load_listing(pdir / AUDIT.manifest, _MANIFEST_FIELDS, where, report)
    if manifest is None:
        return
    files: dict[str, Any] = manifest["files"]
    present = [n for n, info in files.items() if _check_file(pdir, n, info, where, report)]
    row_files = sorted(n for n in present if n.startswith("audit."))
    if not row_files:
        report.problems.append(f"{where}: no audit file")
        return
    rows = _same_versions(where, pdir, row_files, report)
    if rows is None:
        return
    for name in row_files:
        if files[name].get("rows") != len(rows):
            report.problems.append(f"{where}/{name}: row count differs from {AUDIT.manifest}")
    if audit_totals(rows) != manifest["totals"]:
        report.problems.append(f"{where}/{AUDIT.manifest}: totals differ from the audit rows")
    _audit_seen(where, rows, seen, report)
