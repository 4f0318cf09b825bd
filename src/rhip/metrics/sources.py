"""Where the figures come from: tables of other contexts, some of which may not exist yet.

The audit log (调阅记录) and recognition decisions (互认) are written by contexts still being
built; their tables are looked up by name so metrics work before and after they land. Dialect
differences (the CST calendar day of an instant, the upsert) are kept here, in one place.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from sqlalchemy import Connection, Select, Table, func, inspect, literal_column
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.sql.elements import ColumnElement

from rhip.store import metadata


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


def cst_day(conn: Connection, column: ColumnElement) -> ColumnElement:
    """The China Standard Time calendar day of a UTC instant, as SQL on this backend."""
    if conn.dialect.name == "postgresql":
        # the zone as an SQL literal, not a bound parameter: the same expression in SELECT and
        # GROUP BY must render identically for PostgreSQL to match them
        return func.date(func.timezone(literal_column("'Asia/Shanghai'"), column))
    return func.date(column, literal_column("'+8 hours'"))


def _insert(conn: Connection, table: Table):
    if conn.dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


def upsert(
    conn: Connection, table: Table, values: dict, keys: Sequence[str], update: Sequence[str]
) -> None:
    """Insert one row, or update the ``update`` columns of the row with the same ``keys``."""
    stmt = _insert(conn, table).values(**values)
    conn.execute(
        stmt.on_conflict_do_update(
            index_elements=list(keys), set_={c: stmt.excluded[c] for c in update}
        )
    )


def upsert_add(
    conn: Connection, table: Table, query: Select, keys: Sequence[str], counter: str
) -> int:
    """``INSERT … SELECT`` the query's rows, adding ``counter`` to a row with the same ``keys``
    (``ON CONFLICT DO UPDATE``, the same syntax on both backends). SQLite needs the SELECT to
    have a WHERE clause to parse the upsert; the callers' queries always have one."""
    names = [*keys, counter]
    stmt = _insert(conn, table).from_select(names, query)
    stmt = stmt.on_conflict_do_update(
        index_elements=list(keys), set_={counter: table.c[counter] + stmt.excluded[counter]}
    )
    return conn.execute(stmt).rowcount


def as_date(value) -> dt.date:
    """SQLite gives the day as text, PostgreSQL as a date."""
    return value if isinstance(value, dt.date) else dt.date.fromisoformat(str(value))
