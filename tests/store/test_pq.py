"""``rhip.store.pq.JsonRows``: rows sent as JSON in a libpq pipeline are stored exactly as
binary COPY stores them."""

from __future__ import annotations

import datetime as dt
import math

import pytest
from sqlalchemy import Engine, Table, select

from rhip.exchange.inbox import _OUTCOME_COLUMNS
from rhip.exchange.models import inbox_messages, observations, reports
from rhip.exchange.reports import OBSERVATION_COLUMNS, REPORT_COLUMNS
from rhip.quality.models import quality_findings
from rhip.quality.repo import FINDING_COLUMNS
from rhip.store import bulk_insert
from rhip.store.pq import JsonRows, Pipeline

# table → (the columns the platform writes, the column that tells the two copies apart)
TABLES: dict[str, tuple[Table, tuple[str, ...], str]] = {
    "observations": (observations, OBSERVATION_COLUMNS, "report_id"),
    "reports": (reports, REPORT_COLUMNS, "id"),
    "quality_findings": (quality_findings, FINDING_COLUMNS, "report_id"),
    "inbox_messages": (inbox_messages, _OUTCOME_COLUMNS, "dedup_key"),
}
AT = dt.datetime(2024, 3, 1, 2, 30, 0, 123456, tzinfo=dt.UTC)
TEXTS = ['"quoted" \\back\\slash, 中文 \t \u2028 \x01', "", None, "葡萄糖 mmol/L"]
FLOATS = [0.1 + 0.2, -1e-300, 1.7976931348623157e308, 5e-324, 0.0, None]
INSTANTS = [AT, AT.astimezone(dt.timezone(dt.timedelta(hours=8))), AT + dt.timedelta(days=900)]


def rows_of(table: Table, columns: tuple[str, ...], tag_column: str, tag: str) -> list[tuple]:
    """Seven rows with values at the edges of each column's type; ``tag_column`` (and the
    unique or key columns) tell this copy apart from the other one."""
    out = []
    for i in range(7):
        row = []
        for c in columns:
            column = table.c[c]
            python = getattr(column.type, "impl_instance", column.type).python_type
            if c in (tag_column, "report_key"):
                value = f"{tag}-{i:02d}"
            elif c == "id":  # inbox ids are given
                value = (1 if tag == "json" else 2) * 1000 + i
            elif c == "institution_id":
                value = "12440300MB2F34567X"
            elif python is str:  # as long as the column takes
                text = TEXTS[i % 4] if column.nullable else TEXTS[i % 4] or "x"
                value = text if text is None else text[: column.type.length]
            elif python is float:
                value = FLOATS[i % len(FLOATS)]
            elif python is bool:
                value = i % 2 == 0
            elif python is int:
                value = i
            elif python is bytes:
                value = bytes(range(256)) * i if c == "raw" else (None if i % 2 else b"\0AA")
            elif python is dt.datetime:
                value = INSTANTS[i % len(INSTANTS)] if i != 5 or not column.nullable else None
            else:
                value = dt.date(2024, 2, 29)
            row.append(value)
        out.append(tuple(row))
    return out


@pytest.mark.postgres
@pytest.mark.parametrize("name", list(TABLES))
def test_rows_sent_as_json_read_back_as_copied_rows(engine: Engine, name: str) -> None:
    """The group commit sends a batch's rows of each table as one JSON parameter instead of a
    binary COPY (which libpq cannot pipeline): every value reads back identical — text with
    quotes, backslashes, Chinese and control characters, doubles at the edges of precision and
    -0.0, instants with microseconds and offsets, dates, booleans, any bytes, NULLs. SQLite
    has no pipelines: nothing to compare there."""
    if engine.dialect.name != "postgresql":
        return
    table, columns, tag_column = TABLES[name]
    sent = {tag: rows_of(table, columns, tag_column, tag) for tag in ("json", "copy")}
    compared = [c for c in columns if c not in (tag_column, "report_key", "id")]
    with engine.connect() as conn:
        conn.exec_driver_sql(f"ALTER TABLE {name} DISABLE TRIGGER ALL")  # no parent rows here
        pipe = Pipeline(conn.connection.driver_connection)
        assert JsonRows(table, columns).send(pipe, sent["json"])
        pipe.run()
        bulk_insert(conn, table, sent["copy"], columns, binary=True)
        stored = {
            tag: conn.execute(
                select(*(table.c[c] for c in compared))
                .where(table.c[tag_column].startswith(tag))
                .order_by(table.c[tag_column])
            ).all()
            for tag in sent
        }
        conn.rollback()
    assert len(stored["json"]) == 7 and stored["json"] == stored["copy"]
    floats = [n for n, c in enumerate(compared) if c in ("value_num", "std_value")]
    for n in floats:  # the very doubles, not only equal ones
        assert [r[n] for r in stored["json"]] == [FLOATS[i % len(FLOATS)] for i in range(7)]


def test_rows_json_cannot_carry_are_left_to_copy() -> None:
    """An infinity or NaN has no JSON form, and -0.0 would come back as 0.0 (jsonb keeps
    numbers as numeric): ``encode`` gives None, for the caller to COPY such rows; a naive
    datetime is refused, as the pipeline's parameters refuse it."""
    rows = rows_of(observations, OBSERVATION_COLUMNS, "report_id", "json")
    at = OBSERVATION_COLUMNS.index("value_num")
    rows_json = JsonRows(observations, OBSERVATION_COLUMNS)
    assert rows_json.encode(rows) is not None
    for bad in (math.inf, -math.inf, math.nan, -0.0):
        assert rows_json.encode([*rows, (*rows[0][:at], bad, *rows[0][at + 1 :])]) is None
    when = OBSERVATION_COLUMNS.index("observed_at")
    naive = (*rows[0][:when], AT.replace(tzinfo=None), *rows[0][when + 1 :])
    with pytest.raises(ValueError, match="naive"):
        rows_json.encode([naive])
