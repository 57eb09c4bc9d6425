"""Row file formats: CSV (RFC 4180, header line, UTF-8), JSON Lines, Parquet.

Every file holds rows with the columns of a column table (name -> ``int``
or ``str``): the invoice rows of :data:`ocs.export.rows.COLUMNS` or the
summary rows. :class:`RowFile` writes a new file incrementally and makes it
durable; :func:`iter_rows` reads one back a row at a time. Parquet is
optional: available only when ``pyarrow`` is importable (the config refuses
it otherwise).
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import importlib
import json
import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

from ocs.export.rows import Row, coerce_row

EXTENSIONS = {"csv": "csv", "jsonl": "jsonl", "parquet": "parquet"}


def file_name(stem: str, fmt: str) -> str:
    return f"{stem}.{EXTENSIONS[fmt]}"


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


class RowFile:
    """A new row file, written in chunks; :meth:`finish` flushes, fsyncs and closes it."""

    def __init__(self, path: Path, fmt: str, columns: Mapping[str, type]) -> None:
        if fmt not in EXTENSIONS:
            raise ValueError(f"unsupported format {fmt!r}")
        self.path = path
        self.fmt = fmt
        self.columns = dict(columns)
        self.rows = 0
        self._fh: IO[Any]
        if fmt == "parquet":
            self._fh = open(path, "xb")  # noqa: SIM115 - closed by finish() or abort()
        else:
            text = open(path, "x", encoding="utf-8", newline="")  # noqa: SIM115 - idem
            self._fh = text
            self._csv = csv.writer(text, lineterminator="\n")
        self._parquet: Any = None
        if fmt == "csv":
            self._csv.writerow(list(self.columns))
        elif fmt == "parquet":
            pa = importlib.import_module("pyarrow")
            pq = importlib.import_module("pyarrow.parquet")
            self._schema = pa.schema(
                [(c, pa.int64() if t is int else pa.string()) for c, t in self.columns.items()]
            )
            self._table = pa.Table
            self._parquet = pq.ParquetWriter(self._fh, self._schema)

    def write(self, rows: Sequence[Mapping[str, Any]]) -> None:
        if self.fmt == "csv":
            self._csv.writerows([row[c] for c in self.columns] for row in rows)
        elif self.fmt == "jsonl":
            for row in rows:
                self._fh.write(
                    json.dumps(
                        {c: row[c] for c in self.columns}, ensure_ascii=False, separators=(",", ":")
                    )
                )
                self._fh.write("\n")
        elif rows:
            table = self._table.from_pylist(
                [{c: r[c] for c in self.columns} for r in rows], schema=self._schema
            )
            self._parquet.write_table(table)
        self.rows += len(rows)

    def finish(self) -> dict[str, Any]:
        """Make the file durable; returns its sha256, size and row count."""
        if self._parquet is not None:
            self._parquet.close()
        self._fh.flush()
        os.fsync(self._fh.fileno())
        self._fh.close()
        return {
            "sha256": sha256_file(self.path),
            "bytes": self.path.stat().st_size,
            "rows": self.rows,
        }

    def abort(self) -> None:
        if self._parquet is not None:
            with contextlib.suppress(Exception):  # the file is being thrown away
                self._parquet.close()
        self._fh.close()


def write_file(
    path: Path, fmt: str, columns: Mapping[str, type], rows: Sequence[Mapping[str, Any]]
) -> dict[str, Any]:
    """A complete, durable row file; returns its sha256, size and row count."""
    out = RowFile(path, fmt, columns)
    try:
        out.write(rows)
    except BaseException:
        out.abort()
        raise
    return out.finish()


def iter_raw(path: Path) -> Iterator[dict[str, Any]]:
    """Rows of a CSV, JSON Lines or Parquet file as plain dicts, one at a time."""
    if path.suffix == ".parquet":
        pq = importlib.import_module("pyarrow.parquet")
        for batch in pq.ParquetFile(path).iter_batches():
            yield from batch.to_pylist()
        return
    with open(path, encoding="utf-8", newline="") as fh:
        if path.suffix == ".csv":
            yield from (dict(r) for r in csv.DictReader(fh))
            return
        if path.suffix == ".jsonl":
            for n, line in enumerate(fh, 1):
                value = json.loads(line)
                if not isinstance(value, dict):
                    raise ValueError(f"{path.name}:{n}: not a JSON object")
                yield value
            return
    raise ValueError(f"{path.name}: unknown row file type")


def iter_rows(path: Path) -> Iterator[Row]:
    """Invoice rows of a file, typed per the column table, one at a time."""
    return (coerce_row(r) for r in iter_raw(path))


def read_rows(path: Path) -> list[Row]:
    return list(iter_rows(path))


def read_raw(path: Path) -> list[dict[str, Any]]:
    return list(iter_raw(path))
