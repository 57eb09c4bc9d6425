"""Row file formats: CSV (RFC 4180, header line, UTF-8), JSON Lines, Parquet.

All hold the same rows with the columns of :data:`ocs.export.rows.COLUMNS`;
``verify`` reads each back with :func:`read_rows`. Parquet is optional: it
is available only when ``pyarrow`` is importable (the config refuses it
otherwise). Writers produce bytes; the caller owns fsync and the rename
that makes a file visible.
"""

from __future__ import annotations

import csv
import importlib
import io
import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

from ocs.export.rows import Row, coerce_row

EXTENSIONS = {"csv": "csv", "jsonl": "jsonl", "parquet": "parquet"}


def file_name(stem: str, fmt: str) -> str:
    return f"{stem}.{EXTENSIONS[fmt]}"


def write_rows(
    out: IO[str], fmt: str, rows: Iterable[Mapping[str, Any]], columns: Sequence[str]
) -> int:
    """Write rows in a text format (``csv`` or ``jsonl``); returns the row count."""
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
        raise ValueError(f"unsupported text format {fmt!r}")
    return count


def render(fmt: str, rows: Sequence[Mapping[str, Any]], columns: Mapping[str, type]) -> bytes:
    """The bytes of a row file; ``columns`` maps each column to ``int`` or ``str``."""
    if fmt == "parquet":
        return _parquet_bytes(rows, columns)
    buf = io.StringIO(newline="")
    write_rows(buf, fmt, rows, list(columns))
    return buf.getvalue().encode("utf-8")


def _parquet_bytes(rows: Sequence[Mapping[str, Any]], columns: Mapping[str, type]) -> bytes:
    pa = importlib.import_module("pyarrow")  # optional dependency, checked by the config
    pq = importlib.import_module("pyarrow.parquet")
    schema = pa.schema([(c, pa.int64() if t is int else pa.string()) for c, t in columns.items()])
    table = pa.Table.from_pylist([{c: r[c] for c in columns} for r in rows], schema=schema)
    sink = io.BytesIO()
    pq.write_table(table, sink)
    return sink.getvalue()


def read_raw(path: Path) -> list[dict[str, Any]]:
    """Rows of a CSV, JSON Lines or Parquet file as plain dicts (types not coerced)."""
    if path.suffix == ".parquet":
        pq = importlib.import_module("pyarrow.parquet")
        return list(pq.read_table(path).to_pylist())
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
