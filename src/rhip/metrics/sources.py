"""Where the figures come from: tables of other contexts, some of which may not exist yet.

The audit log (调阅记录) and recognition decisions (互认) are written by contexts still being
built; their tables are looked up by name so metrics work before and after they land. Dialect
differences (the CST calendar day of an instant) are kept here, in one place.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Column, Connection, Table, func, inspect, literal_column
from sqlalchemy.sql.elements import ColumnElement

from rhip.store import metadata

# candidate (table, time column, filter column, value) for each optional source
VIEW_SOURCES = (("audit_events", "recorded_at", "action", "R"),)  # FHIR AuditEvent.action read
RECOGNITION_SOURCES = (("recognition_decisions", "decided_at", "decision", "recognised"),)


def has_table(conn: Connection, name: str) -> bool:
    return inspect(conn).has_table(name)


def table(conn: Connection, name: str) -> Table | None:
    """The table of that name: from the shared metadata if a context declared it, else reflected
    from the database; None when it is in neither."""
    if not has_table(conn, name):
        return None
    if name in metadata.tables:
        return metadata.tables[name]
    return Table(name, metadata.__class__(), autoload_with=conn)


def optional_source(conn: Connection, candidates) -> tuple[Table, Column, ColumnElement] | None:
    """The first candidate source present with its columns: (table, time column, filter)."""
    for name, time_col, filter_col, value in candidates:
        t = table(conn, name)
        if t is not None and time_col in t.c and filter_col in t.c:
            return t, t.c[time_col], t.c[filter_col] == value
    return None


def cst_day(conn: Connection, column: ColumnElement) -> ColumnElement:
    """The China Standard Time calendar day of a UTC instant, as SQL on this backend."""
    if conn.dialect.name == "postgresql":
        return func.date(func.timezone("Asia/Shanghai", column))
    return func.date(column, literal_column("'+8 hours'"))


def as_date(value) -> dt.date:
    """SQLite gives the day as text, PostgreSQL as a date."""
    return value if isinstance(value, dt.date) else dt.date.fromisoformat(str(value))
