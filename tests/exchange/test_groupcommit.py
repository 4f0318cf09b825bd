"""Group commit: one bad message in a batch gets its AE; its batch-mates are applied and AA."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, func, select

from exchange.support import ack_fields, oru
from rhip.exchange.ingest import V2Ingest
from rhip.exchange.models import inbox_messages, reports


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
