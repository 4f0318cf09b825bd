"""Registry queries (SQLAlchemy Core): institution rows, search with paging, coverage counts."""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Row,
    and_,
    false,
    func,
    insert,
    or_,
    select,
    true,
    update,
)

from rhip.registry.models import districts, institutions
from rhip.registry.schemas import InstitutionFilter

t = institutions


def get(conn: Connection, institution_id: str) -> Row | None:
    return conn.execute(_with_district().where(t.c.id == institution_id)).first()


def exists(conn: Connection, institution_id: str) -> bool:
    return conn.execute(select(t.c.id).where(t.c.id == institution_id)).first() is not None


def id_of_credit_code(conn: Connection, credit_code: str) -> str | None:
    return conn.execute(select(t.c.id).where(t.c.credit_code == credit_code)).scalar()


def insert_row(conn: Connection, row: dict[str, Any]) -> None:
    conn.execute(insert(t).values(**row))


def update_row(conn: Connection, institution_id: str, row: dict[str, Any]) -> None:
    conn.execute(update(t).where(t.c.id == institution_id).values(**row))


def ensure_district(conn: Connection, code: str, name: str, parent: str | None) -> None:
    """Add a district row if the registry does not know it yet (population unknown)."""
    found = conn.execute(select(districts.c.code).where(districts.c.code == code)).first()
    if found is None:
        conn.execute(insert(districts).values(code=code, name=name, parent_code=parent))


def search(
    conn: Connection, flt: InstitutionFilter, limit: int, offset: int
) -> tuple[int, list[Row]]:
    """Total matches and one page of them, ordered by name then id (stable across pages)."""
    where = and_(true(), *conditions(flt))
    total = conn.execute(select(func.count()).select_from(t).where(where)).scalar_one()
    if limit == 0:
        return total, []
    query = _with_district().where(where).order_by(t.c.name, t.c.id).limit(limit).offset(offset)
    return total, list(conn.execute(query))


def conditions(flt: InstitutionFilter) -> list[ColumnElement[bool]]:
    """The WHERE clauses for a filter."""
    if flt.nothing:
        return [false()]
    out: list[ColumnElement[bool]] = []
    for column, values in (
        (t.c.id, flt.ids),
        (t.c.type, flt.types),
        (t.c.credit_code, flt.credit_codes),
        (t.c.connection_status, flt.connection_statuses),
        (t.c.name, flt.name_exact),
    ):
        if values:
            out.append(column.in_(values))
    if flt.district_codes:
        out.append(or_(*(_district_clause(c) for c in flt.district_codes)))
    lower = func.lower(t.c.name)
    for value in flt.name_prefixes:
        out.append(lower.like(_escape(value.lower()) + "%", escape="\\"))
    for value in flt.name_contains:
        out.append(lower.like("%" + _escape(value.lower()) + "%", escape="\\"))
    if flt.active is not None:
        out.append(t.c.active == flt.active)
    return out


def _district_clause(code: str) -> ColumnElement[bool]:
    if len(code) == 6 and code.endswith("00") and code.isdigit():  # a city or province
        prefix = code[:2] if code.endswith("0000") else code[:4]
        return t.c.district_code.like(prefix + "%")
    return t.c.district_code == code


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _with_district():
    return select(t, districts.c.name.label("district_name")).join_from(
        t, districts, t.c.district_code == districts.c.code
    )


def coverage_counts(conn: Connection) -> list[Row]:
    """(type, district_code, connection_status, n) for active institutions."""
    query = (
        select(t.c.type, t.c.district_code, t.c.connection_status, func.count().label("n"))
        .where(t.c.active.is_(True))
        .group_by(t.c.type, t.c.district_code, t.c.connection_status)
    )
    return list(conn.execute(query))


def connected_feeds(conn: Connection) -> list[str]:
    """The feeds JSON of every active, connected institution."""
    query = select(t.c.feeds).where(t.c.active.is_(True), t.c.connection_status == "connected")
    return list(conn.execute(query).scalars())


def district_table(conn: Connection) -> dict[str, str]:
    return dict(conn.execute(select(districts.c.code, districts.c.name)).all())
