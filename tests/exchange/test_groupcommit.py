"""Group commit: one bad message in a batch gets its AE; its batch-mates are applied and AA."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, func, select

from exchange.support import ack_fields, oru
from rhip.exchange.ingest import V2Ingest
from rhip.exchange.models import inbox_messages, observations, reports


@pytest.mark.postgres
def test_a_bad_message_does_not_fail_its_batch_mates(engine: Engine, ingest: V2Ingest) -> None:
    bad_parse = oru("B1", filler="X1", obx=["OBX|1|NM|2345-7^葡萄糖^LN||5.6|mmol/L|||||Q"])
    rejected_late = oru("B2", filler="X2", obx=["OBX|1|NM|2345-7^葡萄糖^LN||5,6|mmol/L"])
    batch = [oru("G1", filler="Y1"), bad_parse, rejected_late, oru("G2", filler="Y2"),
             oru("G1", filler="Y1")]  # fmt: skip
    acks = ingest.receive_many([(m.encode(), "127.0.0.1", None) for m in batch])
    codes = [ack_fields(a)["MSA"][1:3] for a in acks]
    assert codes[0] == ["AA", "G1"] and codes[3] == ["AA", "G2"] and codes[4] == ["AA", "G1"]
    assert codes[2] == ["AE", "B2"]  # refused while applying: re-run without it
    with engine.connect() as conn:
        status = dict(conn.execute(
            select(inbox_messages.c.control_id, func.count()).group_by(inbox_messages.c.control_id)
        ).all())  # fmt: skip
        rows = {r.control_id + r.status: r.raw for r in conn.execute(select(inbox_messages))}
        n_reports = conn.execute(select(func.count()).select_from(reports)).scalar_one()
    assert status == {"G1": 2, "G2": 1, "B1": 1, "B2": 1} and n_reports == 2 + (codes[1][0] == "AA")
    assert rows["B2failed"] == rejected_late.encode() and "G1duplicate" in rows


@pytest.mark.postgres
def test_outcome_rows_skip_a_key_another_transaction_took(engine: Engine, ingest: V2Ingest):
    """The group commit writes its inbox rows with ``insert_outcomes``; a row whose key was taken
    meanwhile (by another transaction) is not written and its id is not returned, so the batch
    answers it as a duplicate. SQLite has no group commit (one writer): messages go one by one."""
    from rhip.exchange import inbox
    from rhip.kernel.clock import now

    if engine.dialect.name != "postgresql":
        assert ingest.group_commit is False
        return
    ingest.receive(oru("K1").encode(), "127.0.0.1")  # holds its key
    with engine.connect() as conn:
        taken = conn.execute(select(inbox_messages.c.dedup_key)).scalar_one()
        ids = ingest.ids.take(conn, 2)
        rows = [
            {"id": i, "channel": "mllp", "sender": "S", "peer": "", "control_id": c,
             "message_type": "ORU^R01", "raw": b"MSH|x", "size": 5, "truncated": False,
             "received_at": now(), "attempts": 1, "status": "processed", "ack": b"A",
             "ack_code": "AA", "dedup_key": key, "processed_at": now()}
            for i, c, key in zip(ids, ("K1", "K2"), (taken, "mllp|S|K2"), strict=True)
        ]  # fmt: skip
        assert inbox.insert_outcomes(conn, rows) == {ids[1]}
        conn.commit()
        stored = dict(conn.execute(select(inbox_messages.c.id, inbox_messages.c.dedup_key)).all())
    assert ids[0] not in stored and stored[ids[1]] == "mllp|S|K2" and taken in stored.values()


def race_after_check(ingest: V2Ingest, raced: str):
    """``groupcommit._find_duplicates`` that, the first time, lets ``raced`` be received on
    another connection right after the batch's check: its key is taken meanwhile."""
    from rhip.exchange import groupcommit

    real = groupcommit._find_duplicates

    def check_then_race(conn, items, *taken):
        real(conn, items, *taken)
        if not getattr(check_then_race, "done", False):
            check_then_race.done = True
            assert b"MSA|AA" in ingest.receive(raced.encode(), "127.0.0.1")  # own connection

    return check_then_race


@pytest.mark.postgres
def test_a_key_taken_during_the_batch_falls_back_and_answers_a_duplicate(
    engine: Engine, ingest: V2Ingest, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The pipelined write assumes the keys checked at the start of the batch are still free.
    Another transaction storing one of them meanwhile (here: the same message received on
    another connection right after the check) makes the batch re-run statement by statement:
    that message is answered as a duplicate of the other one, its batch-mate is stored, and no
    report is stored twice."""
    from rhip.exchange import groupcommit

    if engine.dialect.name != "postgresql":
        assert ingest.group_commit is False  # SQLite: one message at a time, nothing to race
        return
    raced = oru("R1", filler="F1")
    monkeypatch.setattr(groupcommit, "_find_duplicates", race_after_check(ingest, raced))
    acks = ingest.receive_many([(m.encode(), "127.0.0.1", None)
                                for m in (raced, oru("R2", filler="F2"))])  # fmt: skip
    assert [ack_fields(a)["MSA"][1:3] for a in acks] == [["AA", "R1"], ["AA", "R2"]]
    with engine.connect() as conn:
        statuses = sorted(
            conn.execute(select(inbox_messages.c.control_id, inbox_messages.c.status)).all()
        )
        keys = sorted(conn.execute(select(reports.c.report_key)).scalars())
    assert statuses == [("R1", "duplicate"), ("R1", "processed"), ("R2", "processed")]
    assert len(keys) == 2 and len(set(keys)) == 2


@pytest.mark.postgres
def test_statements_deallocated_between_batches_are_prepared_again(
    engine: Engine, ingest: V2Ingest
) -> None:
    """The group commit's libpq pipelines use server-side prepared statements; psycopg sends
    DEALLOCATE ALL after a rollback when it has prepared statements of its own. The next batch
    prepares them again instead of failing (here DEALLOCATE ALL is sent by hand)."""
    if engine.dialect.name != "postgresql":
        assert ingest.group_commit is False  # SQLite: no pipelines
        return
    with engine.connect() as conn:  # one kept connection, as the listener's worker keeps it
        first = ingest.receive_many([(oru("P1", filler="F1").encode(), "127.0.0.1", None)], conn)
        conn.exec_driver_sql("DEALLOCATE ALL")
        conn.commit()
        second = ingest.receive_many([(oru("P2", filler="F2").encode(), "127.0.0.1", None)], conn)
        third = ingest.receive_many([(oru("P3", filler="F3").encode(), "127.0.0.1", None)], conn)
    codes = [ack_fields(a[0])["MSA"][1:3] for a in (first, second, third)]
    assert codes == [["AA", "P1"], ["AA", "P2"], ["AA", "P3"]]
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(reports)).scalar_one() == 3


@pytest.mark.postgres
@pytest.mark.parametrize("tallied", [False, True], ids=["counts-in-commit", "tally"])
def test_the_pipelined_commit_survives_a_race_and_deallocation(
    engine: Engine, sender_id: str, tallied: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With a scorecard tally (as the listener runs) the batch's writes and its COMMIT go in one
    libpq round trip; a key another transaction took meanwhile fails its inbox row, the server
    skips the COMMIT, and the batch re-runs statement by statement. Prepared statements lost to
    DEALLOCATE ALL are made again."""
    from exchange.support import resolver
    from rhip.exchange import groupcommit

    if engine.dialect.name != "postgresql":
        return
    ingest = V2Ingest(engine, resolver, scorecard_every=3600 if tallied else None)
    assert (ingest.scorecard is not None) is tallied
    raced = oru("T1", filler="F1")
    with engine.connect() as conn:  # kept, as the listener's worker keeps it
        first = ingest.receive_many([(oru("T0", filler="F0").encode(), "127.0.0.1", None)], conn)
        conn.exec_driver_sql("DEALLOCATE ALL")
        conn.commit()
        monkeypatch.setattr(groupcommit, "_find_duplicates", race_after_check(ingest, raced))
        acks = ingest.receive_many(
            [(m.encode(), "127.0.0.1", None) for m in (raced, oru("T2", filler="F2"))], conn
        )
        assert not conn.in_transaction()
    codes = [ack_fields(a)["MSA"][1:3] for a in [*first, *acks]]
    assert codes == [["AA", "T0"], ["AA", "T1"], ["AA", "T2"]]
    with engine.connect() as conn:
        statuses = sorted(
            conn.execute(select(inbox_messages.c.control_id, inbox_messages.c.status)).all()
        )
        keys = sorted(conn.execute(select(reports.c.report_key)).scalars())
        n_obs = conn.execute(select(func.count()).select_from(observations)).scalar_one()
    assert statuses == [("T0", "processed"), ("T1", "duplicate"), ("T1", "processed"),
                        ("T2", "processed")]  # fmt: skip
    assert keys == ["filler:F0", "filler:F1", "filler:F2"] and n_obs == 3 * 4


@pytest.mark.postgres
def test_batch_statements_run_generic_plans_only_in_their_transaction(
    engine: Engine, sender_id: str
) -> None:
    """The batch's prepared statements take arrays, whose custom plans PostgreSQL would make
    again at every execution: the batch's transaction sets plan_cache_mode to generic plans,
    and the setting ends with it (the kept connection is back to the server's default)."""
    from exchange.support import resolver

    if engine.dialect.name != "postgresql":
        return
    ingest = V2Ingest(engine, resolver, scorecard_every=3600)
    with engine.connect() as conn:
        default = conn.exec_driver_sql("SHOW plan_cache_mode").scalar_one()
        conn.rollback()
        for n in range(8):  # more than the 5 custom plans PostgreSQL tries first
            batch = [(oru(f"G{n}{k}", filler=f"G{n}{k}").encode(), "127.0.0.1", None)
                     for k in range(2)]  # fmt: skip
            assert all(b"MSA|AA" in a for a in ingest.receive_many(batch, conn))
        plans = {name.rsplit("_", 1)[0]: (generic, custom) for name, generic, custom in
                 conn.exec_driver_sql(
            "SELECT name, generic_plans, custom_plans FROM pg_prepared_statements "
            "WHERE starts_with(name, 'rhip_json_reports_') OR name = 'rhip_latest_versions'"
        )}  # fmt: skip
        after = conn.exec_driver_sql("SHOW plan_cache_mode").scalar_one()
    assert after == default == "auto"
    assert set(plans) == {"rhip_json_reports", "rhip_latest"}
    for generic, custom in plans.values():
        assert custom == 0 and generic >= 8
