"""``hwnas bench import``: public benchmarks indexed by NAS-Bench-201 number, as arch strings."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from hwnas.core.files import output_folder, read_bounded, write_csv
from hwnas.bench.problem import BenchError


def import_nb201(src: str | Path, dst: str | Path, *, index_column: str = "index") -> int:
    """Convert a table indexed by NAS-Bench-201 number (0..15624) to one with an ``arch`` column,
    using the benchmark's own order. Returns the number of rows written."""
    from hwnas.spaces.nb201 import benchmark_order

    src, dst = Path(src), Path(dst)
    if not src.is_file():
        raise BenchError(f"{src}: no such table")
    order = benchmark_order()
    raw = read_bounded(src, BenchError, "table")
    try:
        text = raw.decode("utf-8-sig")  # a byte-order mark is not part of the first column's name
        reader = csv.DictReader(io.StringIO(text, newline=""))
        cols = list(reader.fieldnames or [])
        rows = list(reader)
    except (UnicodeDecodeError, csv.Error) as exc:
        raise BenchError(f"{src}: not a readable CSV ({exc or type(exc).__name__})") from None
    if index_column not in cols:
        raise BenchError(f"{src}: no index column {index_column!r} (columns: {', '.join(cols)})")
    seen: set[int] = set()
    out_rows = []
    for line, row in enumerate(rows, start=2):
        try:
            i = int(row[index_column])
        except (TypeError, ValueError):
            raise BenchError(f"{src}: line {line}: index {row[index_column]!r} is not an integer") from None
        if not 0 <= i < len(order):
            raise BenchError(f"{src}: line {line}: index {i} is outside 0..{len(order) - 1}")
        if i in seen:
            raise BenchError(f"{src}: line {line}: index {i} appears twice")
        seen.add(i)
        out_rows.append({"arch": order[i], **{c: row[c] for c in cols if c != index_column}})
    fields = ["arch", *[c for c in cols if c != index_column]]
    output_folder(dst.parent)
    write_csv(dst, fields, ([row[c] for c in fields] for row in out_rows))
    return len(out_rows)
