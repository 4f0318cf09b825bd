"""The hash-chained access log: append, verify, and detection of every kind of tampering."""

from __future__ import annotations

import itertools
import threading

import pytest
from sqlalchemy import Engine, delete, func, select, update
from typer.testing import CliRunner

from rhip import audit
from rhip.audit.cli import app as audit_app
from rhip.audit.models import audit_events, audit_head
from rhip.kernel.settings import Settings

KEY = audit.chain_key(Settings(env="test").secret_key)


def _event(n: int, **over) -> audit.AuditEventIn:
    fields = {"username": f"dr.{n % 3}", "user_id": f"u{n % 3}", "role": "doctor",
              "institution_id": "org-1", "patient_id": f"p-{n % 5}", "purpose": "TREAT",
              "resource": "DiagnosticReport", "subtype": "search", "client_address": "10.0.0.9",
              "query": f"/fhir/DiagnosticReport?patient=p-{n % 5}"}  # fmt: skip
    return audit.AuditEventIn(**(fields | over))


def _fill(engine: Engine, n: int) -> None:
    with engine.begin() as conn:
        for i in range(n):
            audit.append(conn, KEY, [_event(i)])


@pytest.mark.postgres
def test_append_chains_and_verify_passes(engine: Engine) -> None:
    assert audit.verify(engine, KEY).ok  # empty log
    _fill(engine, 7)
    with engine.begin() as conn:
        seqs = audit.append(conn, KEY, [_event(100), _event(101, outcome="4", status=403)])
    assert seqs == [8, 9]
    result = audit.verify(engine, KEY, batch=4)  # several pages
    assert result.ok and result.count == 9 and result.head_count == 9
    with engine.connect() as conn:
        rows = conn.execute(select(audit_events).order_by(audit_events.c.seq)).all()
        head = conn.execute(select(audit_head)).one()._mapping
    assert rows[0].prev_hash == "0" * 64
    assert all(b.prev_hash == a.hash for a, b in itertools.pairwise(rows))
    assert (head["count"], head["last_hash"]) == (9, rows[-1].hash)
    assert audit.verify(engine, audit.chain_key("another secret")).first_broken == 1


def test_rolled_back_append_leaves_no_trace(engine: Engine) -> None:
    _fill(engine, 2)
    with pytest.raises(RuntimeError), engine.begin() as conn:
        audit.append(conn, KEY, [_event(9)])
        raise RuntimeError("the read failed")
    _fill(engine, 1)
    result = audit.verify(engine, KEY)
    assert result.ok and result.count == 3


@pytest.mark.parametrize("seq", [1, 5, 10])
def test_a_changed_event_is_found(engine: Engine, seq: int) -> None:
    _fill(engine, 10)
    with engine.begin() as conn:
        conn.execute(update(audit_events).where(audit_events.c.seq == seq).values(purpose="ETREAT"))
    result = audit.verify(engine, KEY, batch=3)
    assert not result.ok and result.first_broken == seq and "changed" in result.problem


def test_a_deleted_event_is_found(engine: Engine) -> None:
    _fill(engine, 10)
    with engine.begin() as conn:
        conn.execute(delete(audit_events).where(audit_events.c.seq == 4))
    result = audit.verify(engine, KEY)
    assert not result.ok and result.first_broken == 4 and "missing" in result.problem


def test_deleted_then_renumbered_events_are_found(engine: Engine) -> None:
    _fill(engine, 6)
    with engine.begin() as conn:  # hide a deletion by closing the gap
        conn.execute(delete(audit_events).where(audit_events.c.seq == 3))
        for s in (4, 5, 6):
            conn.execute(update(audit_events).where(audit_events.c.seq == s).values(seq=s - 1))
        conn.execute(update(audit_head).values(count=5))
    result = audit.verify(engine, KEY)
    assert not result.ok and result.first_broken == 3


@pytest.mark.postgres
def test_truncating_the_newest_event_is_found(engine: Engine) -> None:
    _fill(engine, 10)
    with engine.begin() as conn:
        conn.execute(delete(audit_events).where(audit_events.c.seq >= 9))
    result = audit.verify(engine, KEY)
    assert not result.ok and result.first_broken == 9 and "deleted" in result.problem


def test_changing_the_newest_event_is_found(engine: Engine) -> None:
    _fill(engine, 5)
    with engine.begin() as conn:
        conn.execute(update(audit_events).where(audit_events.c.seq == 5).values(outcome="4"))
    assert audit.verify(engine, KEY).first_broken == 5
    with engine.begin() as conn:  # and a head rewound together with the newest deleted
        conn.execute(delete(audit_events).where(audit_events.c.seq == 5))
        conn.execute(update(audit_head).values(count=4))
    result = audit.verify(engine, KEY)
    assert not result.ok and result.first_broken == 4 and "head" in result.problem


@pytest.mark.postgres
def test_concurrent_writers_chain_correctly(engine: Engine) -> None:
    threads, per_thread = 8, 15
    errors: list[BaseException] = []
    start = threading.Barrier(threads)

    def writer(t: int) -> None:
        try:
            start.wait()
            for i in range(per_thread):
                with engine.begin() as conn:
                    audit.append(conn, KEY, [_event(t * 100 + i)])
        except BaseException as exc:  # reported below
            errors.append(exc)

    pool = [threading.Thread(target=writer, args=(t,)) for t in range(threads)]
    for th in pool:
        th.start()
    for th in pool:
        th.join()
    assert not errors, errors
    result = audit.verify(engine, KEY)
    assert result.ok and result.count == threads * per_thread
    with engine.connect() as conn:
        distinct = conn.execute(select(func.count(func.distinct(audit_events.c.hash)))).scalar()
    assert distinct == threads * per_thread


def test_cli_verify_exit_codes(engine: Engine, database_url: str, monkeypatch) -> None:
    monkeypatch.setenv("RHIP_DATABASE_URL", database_url)
    monkeypatch.setenv("RHIP_ENV", "test")
    _fill(engine, 4)
    runner = CliRunner()
    ok = runner.invoke(audit_app, ["verify"])
    assert ok.exit_code == 0 and "4 events" in ok.output
    with engine.begin() as conn:
        conn.execute(update(audit_events).where(audit_events.c.seq == 2).values(username="x"))
    broken = runner.invoke(audit_app, ["verify"])
    assert broken.exit_code == 1 and "broken at event 2" in broken.output
