"""Row file formats: CSV (RFC 4180, header line, UTF-8) and JSON Lines.

Both hold the same rows with the columns of :data:`ocs.export.rows.COLUMNS`;
``verify`` reads either back with :func:`read_rows`. Writers only write: the
caller owns flushing, fsync and the rename that makes a file visible.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

from ocs.export.rows import Row, coerce_row

EXTENSIONS = {"csv": "csv", "jsonl": "jsonl"}


def file_name(stem: str, fmt: str) -> str:
    return f"{stem}.{EXTENSIONS[fmt]}"


def write_rows(
    out: IO[str], fmt: str, rows: Iterable[Mapping[str, Any]], columns: Sequence[str]
) -> int:
    """Write rows in ``fmt``; returns the row count."""
    count = 0
    if fmt == "csv":
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(columns)
        for row in rows:
            writer.writerow([row[c] for c in columns])
            count += 1
    elif fmt == "jsonl":
        for row in rows:
            out.write(
                json.dumps({c: row[c] for c in columns}, ensure_ascii=False, separators=(",", ":"))
            )
            out.write("\n")
            count += 1
    else:
        raise ValueError(f"unsupported format {fmt!r}")
    return count


def read_raw(path: Path) -> list[dict[str, Any]]:
    """Rows of a CSV or JSON Lines file as plain dicts (types not coerced)."""
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".csv":
        return [dict(r) for r in csv.DictReader(io.StringIO(text, newline=""))]
    if path.suffix == ".jsonl":
        rows = []
        for n, line in enumerate(text.splitlines(), 1):
            value = json.loads(line)
            if not isinstance(value, dict):
                raise ValueError(f"{path.name}:{n}: not a JSON object")
            rows.append(value)
        return rows
    raise ValueError(f"{path.name}: unknown row file type")


def read_rows(path: Path) -> list[Row]:
    """Invoice rows of a file, typed per the column table."""
    return [coerce_row(r) for r in read_raw(path)]
