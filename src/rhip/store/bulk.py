"""Set-based writes: COPY on PostgreSQL, executemany on SQLite. Never one statement per row.

Rows come as a pandas DataFrame or a sequence of tuples in the table's column order given by
``columns``. Types are those of the table: pass Python values (dates, datetimes with tzinfo, str).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Connection,
    Date,
    DateTime,
    Float,
    Integer,
    LargeBinary,
    SmallInteger,
    String,
    Table,
    TypeDecorator,
)


def bulk_insert(
    conn: Connection,
    table: Table,
    rows: Iterable[Sequence[Any]] | Any,
    columns: Sequence[str] | None = None,
    *,
    binary: bool = False,
) -> int:
    """Insert many rows in one round of COPY/executemany within ``conn``'s transaction.

    Returns the number of rows written. ``rows`` may be a DataFrame (its columns name the
    table's columns) or an iterable of tuples with ``columns`` naming them.

    ``binary`` (PostgreSQL): COPY in binary format, for rows whose values have exactly the
    columns' Python types (str for text, float for floats, aware datetime for UTC instants,
    date for dates …; None for NULL): psycopg's C dumpers write them and the server reads them
    without parsing text — about half the client CPU of text COPY for observation rows. A
    value of another type (a date as text, say) raises instead of being parsed by the server.
    """
    if hasattr(rows, "itertuples"):  # a DataFrame
        columns = list(rows.columns)
        data = _frame_rows(table, rows)
    else:
        if columns is None:
            raise ValueError("columns are required when rows are tuples")
        data = rows if isinstance(rows, list) else list(rows)
    if not data:
        return 0
    data = [tuple(_clean(v) for v in r) for r in data] if _needs_clean(data[0]) else data
    if conn.dialect.name == "postgresql":
        return _copy(conn, table, columns, data, binary)
    return _executemany(conn, table, columns, data)


def _frame_rows(table: Table, frame: Any) -> list[tuple]:
    """Rows of a DataFrame as driver-ready tuples: integer columns back to int, NaN/NaT to None."""
    frame = frame.copy()
    for name in frame.columns:
        col = frame[name]
        if isinstance(table.c[name].type, Integer) and col.dtype.kind == "f":
            frame[name] = col.astype("Int64")
        frame[name] = frame[name].astype(object).where(frame[name].notna(), None)
    return list(frame.itertuples(index=False, name=None))


def _needs_clean(row: Sequence[Any]) -> bool:
    return any(_clean(v) is not v for v in row)


def _clean(v: Any) -> Any:
    # pandas gives NaN/NaT and numpy scalars; the drivers want None and plain Python values
    if v is None:
        return None
    if isinstance(v, float) and v != v:
        return None
    mod = type(v).__module__
    if mod.startswith("numpy"):
        return v.item()
    if mod.startswith("pandas"):
        if str(v) == "NaT":
            return None
        return v.to_pydatetime() if hasattr(v, "to_pydatetime") else v
    return v


def _executemany(conn: Connection, table: Table, columns: Sequence[str], data: list) -> int:
    """SQLite: one executemany; UTC instants bound as the text SQLAlchemy binds them."""
    tz_cols = [i for i, c in enumerate(columns) if _is_utc(table, c)]
    if tz_cols:
        texts = _UtcTexts()
        data = [_with_utc_texts(row, tz_cols, texts) for row in data]
    names = ", ".join(f'"{c}"' for c in columns)
    marks = ", ".join("?" for _ in columns)
    raw = conn.connection.driver_connection
    raw.executemany(f'INSERT INTO "{table.name}" ({names}) VALUES ({marks})', data)
    return len(data)


class _UtcTexts(dict):
    """Aware datetime → the UTC text SQLAlchemy's SQLite ``DateTime`` stores
    (``2024-03-01 02:30:00.000000``, always six digits of microseconds, so stored instants
    compare as text the way SQLAlchemy binds them), each distinct value converted once: the
    observations of a report share their times. Naive datetimes are refused, as ``UTCDateTime``
    refuses them."""

    def __missing__(self, v: Any) -> Any:
        if isinstance(v, dt.datetime):
            if v.tzinfo is None:
                raise ValueError("naive datetime given for a UTCDateTime column")
            text = v.astimezone(dt.UTC).replace(tzinfo=None).isoformat(" ", "microseconds")
        else:
            text = v  # None, or already text
        self[v] = text
        return text


def _with_utc_texts(row: Sequence[Any], columns: list[int], texts: _UtcTexts) -> list[Any]:
    out = list(row)
    for i in columns:
        out[i] = texts[out[i]]
    return out


def _copy(conn: Connection, table: Table, columns: Sequence[str], data: list, binary: bool):
    """COPY in text format, or binary (``bulk_insert``) when every column's type has a binary
    form here."""
    names = ", ".join(f'"{c}"' for c in columns)
    types = _binary_types(table, tuple(columns)) if binary else None
    statement = f'COPY "{table.name}" ({names}) FROM STDIN' + (" (FORMAT BINARY)" if types else "")
    raw = conn.connection.driver_connection
    with raw.cursor() as cur, cur.copy(statement) as copy:
        if types:
            copy.set_types(types)
        for row in data:
            copy.write_row(row)
    return len(data)


# SQLAlchemy type → PostgreSQL type of its binary COPY form (most specific first)
_PG_TYPES = (
    (BigInteger, "int8"), (SmallInteger, "int2"), (Integer, "int4"), (Float, "float8"),
    (Boolean, "bool"), (Date, "date"), (LargeBinary, "bytea"), (String, "text"),
)  # fmt: skip
_TYPES_OF: dict[tuple[str, tuple[str, ...]], list[str] | None] = {}


def _binary_types(table: Table, columns: tuple[str, ...]) -> list[str] | None:
    """The PostgreSQL types of ``columns`` for binary COPY, or None if one has no known form."""
    key = (table.name, columns)
    if key not in _TYPES_OF:
        _TYPES_OF[key] = _pg_types(table, columns)
    return _TYPES_OF[key]


def _pg_types(table: Table, columns: tuple[str, ...]) -> list[str] | None:
    out = []
    for name in columns:
        kind = table.c[name].type
        if isinstance(kind, TypeDecorator):
            kind = kind.impl
        if isinstance(kind, DateTime):
            out.append("timestamptz" if kind.timezone else "timestamp")
            continue
        pg = next((t for cls, t in _PG_TYPES if isinstance(kind, cls)), None)
        if pg is None:  # e.g. Numeric, JSON: text COPY lets the server parse them
            return None
        out.append(pg)
    return out


def _is_utc(table: Table, column: str) -> bool:
    return type(table.c[column].type).__name__ == "UTCDateTime"
