"""The storage layer: migrations match the models, bulk writes round-trip on both backends."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, select

from rhip.registry.models import districts, institutions
from rhip.schema import load_all
from rhip.store import bulk_insert, make_engine
from rhip.store.migrate import current, head


@pytest.mark.postgres
def test_migrations_reach_head_and_match_models(engine: Engine) -> None:
    assert current(engine) == head()
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), load_all())
    assert diff == [], f"models and migrations differ; run scripts/make_migration.py: {diff}"


@pytest.mark.postgres
def test_bulk_insert_round_trips_dataframe_and_tuples(engine: Engine) -> None:
    now = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    frame = pd.DataFrame(
        {"code": ["440304", "440305"], "name": ["福田区", "南山区"], "population": [1, None]}
    )
    with engine.begin() as conn:
        assert bulk_insert(conn, districts, frame) == 2
        rows = [
            (
                "org-1",
                "91440300MA5ABCDE1H",
                "深圳市人民医院",
                "public_hospital",
                "440304",
                "connected",
                "{}",
                "{}",
                "",
                now,
                now,
            ),
        ]
        cols = [
            "id",
            "credit_code",
            "name",
            "type",
            "district_code",
            "connection_status",
            "feeds",
            "functions",
            "allow_cidrs",
            "created_at",
            "updated_at",
        ]
        assert bulk_insert(conn, institutions, rows, cols) == 1
    with engine.connect() as conn:
        got = conn.execute(
            select(districts.c.name, districts.c.population).order_by(districts.c.code)
        ).all()
        inst = conn.execute(select(institutions)).one()
    assert got == [("福田区", 1), ("南山区", None)]
    assert inst.created_at == now and inst.name == "深圳市人民医院"


@pytest.mark.postgres
def test_inbox_raw_bytes_are_compressed_with_lz4_on_postgresql(engine: Engine) -> None:
    """A chunk of several megabytes compresses in a third of pglz's CPU; SQLite stores bytes as
    they come. The stored value reads back unchanged."""
    from rhip.exchange.models import inbox_messages

    raw = ("OBX|1|NM|2345-7^葡萄糖^LN||5.6|mmol/L\r" * 20000).encode()
    with engine.begin() as conn:
        conn.execute(inbox_messages.insert().values(
            channel="ndjson", sender="S", peer="", raw=raw, size=len(raw), truncated=False,
            attempts=0, status="received", received_at=dt.datetime.now(dt.UTC),
        ))  # fmt: skip
    with engine.connect() as conn:
        assert conn.execute(select(inbox_messages.c.raw)).scalar_one() == raw
        if engine.dialect.name == "postgresql":
            methods = conn.exec_driver_sql(
                "SELECT attname, attcompression FROM pg_attribute "
                "WHERE attrelid = 'inbox_messages'::regclass AND attname IN ('raw', 'ack')"
            ).all()
            assert dict(methods) == {"raw": "l", "ack": "l"}
            used = conn.exec_driver_sql("SELECT pg_column_compression(raw) FROM inbox_messages")
            assert used.scalar_one() == "lz4"


@pytest.mark.postgres
def test_bulk_insert_is_atomic_with_its_transaction(engine: Engine) -> None:
    frame = pd.DataFrame({"code": ["440304", "440304"], "name": ["a", "b"]})
    with pytest.raises(Exception), engine.begin() as conn:  # noqa: B017 - driver-specific
        bulk_insert(conn, districts, frame)
    with engine.connect() as conn:
        assert conn.execute(select(districts)).all() == []


def test_binary_bulk_insert_writes_what_text_copy_writes(engine: Engine) -> None:
    """``binary=True`` (PostgreSQL binary COPY; executemany on SQLite) stores the same values:
    Chinese text, NULLs, integers, booleans, floats and UTC instants."""
    now = dt.datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=dt.UTC)
    cols = ["id", "credit_code", "name", "type", "district_code", "connection_status", "feeds",
            "functions", "allow_cidrs", "active", "created_at", "updated_at", "grade"]  # fmt: skip
    base = ("深圳市人民医院", "public_hospital", "440304", "connected", "{}", "{}", "")
    rows = {
        False: [("org-t", "91440300MA5ABCDE1H", *base, True, now, now, None)],
        True: [("org-b", "91440300MA5ABCDE2H", *base, False, now, now, "三级甲等")],
    }
    with engine.begin() as conn:
        bulk_insert(conn, districts, [("440304", "福田区", 1)], ["code", "name", "population"],
                    binary=True)  # fmt: skip
        for binary, data in rows.items():
            assert bulk_insert(conn, institutions, data, cols, binary=binary) == 1
    with engine.connect() as conn:
        got = {r.id: r for r in conn.execute(select(institutions))}
        district = conn.execute(select(districts)).one()
    assert tuple(district) == ("440304", "福田区", None, 1)
    for binary, (row,) in rows.items():
        stored = got[row[0]]
        assert tuple(getattr(stored, c) for c in cols) == row, binary


@pytest.mark.postgres
def test_bulk_written_instants_compare_as_sqlalchemy_writes_them(engine: Engine) -> None:
    """An instant on a whole second is found by ``>=`` and ``==`` on itself: on SQLite the
    bulk path stores the text SQLAlchemy binds (``2024-03-01 02:30:00.000000``), not the
    sqlite3 adapter's shorter ``2024-03-01 02:30:00``, which compares as smaller; other
    offsets are stored as UTC."""
    cst = dt.timezone(dt.timedelta(hours=8))
    at = dt.datetime(2024, 3, 1, 10, 30, tzinfo=cst)  # 02:30 UTC
    cols = ["id", "credit_code", "name", "type", "district_code", "connection_status", "feeds",
            "functions", "allow_cidrs", "created_at", "updated_at"]  # fmt: skip
    row = ("org-1", "91440300MA5ABCDE1H", "医院", "clinic", "440304", "connected", "{}", "{}", "",
           at, at.astimezone(dt.UTC))  # fmt: skip
    with engine.begin() as conn:
        bulk_insert(conn, districts, [("440304", "福田区")], ["code", "name"])
        bulk_insert(conn, institutions, [row], cols)
    c = institutions.c
    with engine.connect() as conn:
        found = conn.execute(
            select(c.id).where(c.created_at >= at, c.created_at == at, c.updated_at <= at)
        ).all()
        stored = conn.execute(select(c.created_at)).scalar_one()
    assert found == [("org-1",)] and stored == at and stored.utcoffset() == dt.timedelta(0)


@pytest.mark.postgres
def test_binary_bulk_insert_refuses_a_value_of_the_wrong_type_and_writes_nothing(engine):
    """PostgreSQL's binary COPY does not let the server parse text: a number given as text
    raises, and the transaction keeps nothing of the call. (SQLite's executemany has no binary
    form: it stores the value with its own type, as SQLite does.)"""
    rows, cols = [("440304", "福田区", "many")], ["code", "name", "population"]
    if engine.dialect.name == "postgresql":
        with pytest.raises(TypeError), engine.begin() as conn:
            bulk_insert(conn, districts, rows, cols, binary=True)
        expected = []
    else:
        with engine.begin() as conn:
            bulk_insert(conn, districts, rows, cols, binary=True)
        expected = [("440304", "福田区", None, "many")]
    with engine.connect() as conn:
        assert [tuple(r) for r in conn.execute(select(districts))] == expected


def test_sqlite_engine_turns_on_wal_and_foreign_keys(tmp_path) -> None:
    eng = make_engine(f"sqlite:///{tmp_path}/sub/x.db")
    with eng.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    eng.dispose()
