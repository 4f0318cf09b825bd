"""Read CSV and Excel tables cell by cell, keeping file row numbers for error messages."""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rhip.index.errors import IndexInputError

MISSING = {"", "na", "n/a", "nan", "null", "none", "..", "#n/a"}


@dataclass
class Table:
    """Header plus data rows; `rows[i]` is file row `first_row + i` (header is row 1)."""

    file: str
    header: list[str]
    rows: list[list[Any]]
    first_row: int = 2

    def column(self, name: str) -> int:
        return self.header.index(name)

    def has(self, name: str) -> bool:
        return name in self.header

    def row_number(self, i: int) -> int:
        return self.first_row + i


def read_table(path: str | Path, sheet: str | None = None, prefer: tuple[str, ...] = ()) -> Table:
    """Read a CSV or Excel file; reject duplicate or empty column names."""
    path = Path(path)
    if not path.exists():
        raise IndexInputError("file not found", file=str(path))
    suffix = path.suffix.lower()
    if suffix in (".xlsx", ".xlsm"):
        header, rows = _read_excel(path, sheet, prefer)
    elif suffix in (".csv", ".txt", ".tsv"):
        header, rows = _read_csv(path, "\t" if suffix == ".tsv" else ",")
    else:
        raise IndexInputError(
            f"unsupported table format {suffix!r} (use .csv or .xlsx)", file=str(path)
        )
    header = [str(h).strip() if h is not None else "" for h in header]
    seen: dict[str, int] = {}
    for j, name in enumerate(header):
        if not name:
            raise IndexInputError(f"empty column name in position {j + 1}", file=str(path), row=1)
        if name in seen:
            raise IndexInputError(
                f"duplicate column name (also column {seen[name] + 1})",
                file=str(path),
                row=1,
                column=name,
            )
        seen[name] = j
    width = len(header)
    rows = [list(r) + [None] * (width - len(r)) for r in rows]
    return Table(str(path), header, rows)


def _read_csv(path: Path, delimiter: str) -> tuple[list[str], list[list[Any]]]:
    with path.open(encoding="utf-8-sig", newline="") as fh:
        reader = csv.reader(fh, delimiter=delimiter)
        try:
            header = next(reader)
        except StopIteration:
            raise IndexInputError("empty file", file=str(path)) from None
        rows = list(reader)
    return header, rows


def _read_excel(path: Path, sheet: str | None, prefer: tuple[str, ...]) -> tuple[list, list]:
    from openpyxl import load_workbook

    wb = load_workbook(path, read_only=True, data_only=True)
    names = wb.sheetnames
    if sheet is None:
        sheet = next((n for n in prefer if n in names), names[0])
    if sheet not in names:
        raise IndexInputError(f"sheet {sheet!r} not found (sheets: {names})", file=str(path))
    values = [list(r) for r in wb[sheet].iter_rows(values_only=True)]
    wb.close()
    if not values:
        raise IndexInputError(f"sheet {sheet!r} is empty", file=str(path))
    while values and all(v is None for v in values[-1]):
        values.pop()
    return values[0], values[1:]


def is_missing(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    return isinstance(value, str) and value.strip().lower() in MISSING


def to_float(value: Any, *, table: Table, i: int, column: str) -> float:
    """Parse one numeric cell; missing → NaN; anything else non-numeric is an error."""
    if is_missing(value):
        return math.nan
    if isinstance(value, bool):
        raise IndexInputError(
            f"non-numeric value {value!r}", file=table.file, row=table.row_number(i), column=column
        )
    if isinstance(value, int | float):
        return float(value)
    try:
        out = float(str(value).strip().replace(",", ""))
    except ValueError:
        raise IndexInputError(
            f"non-numeric value {value!r}", file=table.file, row=table.row_number(i), column=column
        ) from None
    if math.isinf(out):
        raise IndexInputError(
            f"infinite value {value!r}", file=table.file, row=table.row_number(i), column=column
        )
    return out


def to_text(value: Any) -> str:
    """Text cell; only truly empty cells are missing (a code like "NA" is Namibia, not a gap)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()
