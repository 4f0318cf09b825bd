"""HL7 v2 ingest end to end on the database: ACK codes, the report store, idempotency."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import Engine, func, select

from exchange.support import RID, SENDER, ack_fields, add_institution, oru, patient_id, resolver
from rhip.exchange import reports as store
from rhip.exchange.ingest import V2Ingest
from rhip.exchange.models import inbox_messages, observations, reports
from rhip.kernel import systems

pytestmark = pytest.mark.postgres
PEER = "127.0.0.1"
RID_PATIENT = patient_id(systems.RESIDENT_ID, RID)


def _count(engine: Engine, table) -> int:
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(table)).scalar_one()


def _inbox(engine: Engine) -> list[dict]:
    with engine.connect() as conn:
        rows = conn.execute(select(inbox_messages).order_by(inbox_messages.c.id))
        return [dict(r._mapping) for r in rows]


def _err(ack: bytes) -> tuple[str, str, str, str]:
    """(MSA-1, ERR-2, ERR-3.1, ERR-8) of an ACK."""
    seg = ack_fields(ack)
    err = seg.get("ERR", [""] * 9)
    return seg["MSA"][1], err[2], err[3].split("^")[0], err[8]


def test_lab_result_is_stored_with_values_units_ranges_and_utc_times(
    engine: Engine, ingest: V2Ingest, sender_id: str
) -> None:
    ack = ingest.receive(oru().encode(), PEER)
    fields = ack_fields(ack)
    assert fields["MSA"][1:3] == ["AA", "MSG0001"]
    assert "ERR" not in fields
    assert fields["MSH"][8] == "ACK^R01^ACK"
    with engine.connect() as conn:
        (report,) = store.current_reports(conn, RID_PATIENT)
        obs = store.observations_of(conn, report["id"])
    assert report["institution_id"] == sender_id
    assert (report["kind"], report["code"], report["status"], report["version"]) == (
        "lab", "24331-1", "final", 1,
    )  # fmt: skip
    assert report["code_system"] == "http://loinc.org"
    assert report["specimen"] == "全血"
    # 10:30 CST is 02:30 UTC
    assert report["issued_at"] == dt.datetime(2024, 3, 1, 2, 30, tzinfo=dt.UTC)
    assert report["collected_at"] == dt.datetime(2024, 3, 1, 0, 0, tzinfo=dt.UTC)
    glucose, chol, abo, colour = obs
    assert (glucose["value_num"], glucose["unit"], glucose["reference_range"]) == (
        5.6, "mmol/L", "3.9-6.1",
    )  # fmt: skip
    assert glucose["abnormal_flag"] == "N" and glucose["display"] == "葡萄糖"
    assert (chol["comparator"], chol["value_num"], chol["abnormal_flag"]) == ("<", 0.5, "L")
    assert (abo["value_code"], abo["value_text"]) == ("A", "A型")
    assert colour["value_text"] == "淡黄色"
    assert {o["patient_id"] for o in obs} == {RID_PATIENT}
    (row,) = _inbox(engine)
    assert (row["status"], row["ack_code"], row["patient_id"]) == ("processed", "AA", RID_PATIENT)
    assert row["raw"] == oru().encode() and row["ack"] == ack


def test_duplicate_gets_the_same_ack_and_is_not_applied_twice(
    engine: Engine, ingest: V2Ingest
) -> None:
    first = ingest.receive(oru().encode(), PEER)
    second = ingest.receive(oru().encode(), PEER)
    assert second == first
    assert _count(engine, reports) == 1 and _count(engine, observations) == 4
    rows = _inbox(engine)
    assert [r["status"] for r in rows] == ["processed", "duplicate"]
    assert rows[1]["duplicate_of"] == rows[0]["id"]


def test_correction_adds_a_version_and_cancel_leaves_nothing_current(
    engine: Engine, ingest: V2Ingest, sender_id: str
) -> None:
    ingest.receive(oru("M1", status="P", obr22="20240301090000").encode(), PEER)
    ingest.receive(oru("M2", status="F", obr22="20240301100000").encode(), PEER)
    ingest.receive(oru("M3", status="C", obr22="20240301110000").encode(), PEER)
    # a late preliminary (older OBR-22) is kept in history but does not become current
    ingest.receive(oru("M4", status="P", obr22="20240301085000").encode(), PEER)
    with engine.connect() as conn:
        versions = store.history(conn, sender_id, "filler:F1001")
        current = store.current_reports(conn, RID_PATIENT)
    assert [(v["version"], v["status"], v["current"]) for v in versions] == [
        (1, "preliminary", False), (2, "final", False), (3, "corrected", True),
        (4, "preliminary", False),
    ]  # fmt: skip
    assert [c["version"] for c in current] == [3]
    assert _count(engine, observations) == 16  # every version keeps its own observations
    ingest.receive(oru("M5", status="X", obr22="20240301120000").encode(), PEER)
    with engine.connect() as conn:
        assert store.current_reports(conn, RID_PATIENT) == []
        assert store.history(conn, sender_id, "filler:F1001")[-1]["status"] == "cancelled"


def test_exam_report_keeps_findings_and_impression(engine: Engine, ingest: V2Ingest) -> None:
    message = oru(
        obx=[
            "OBX|1|TX|59776-5^检查所见^LN||肝脏大小形态正常~回声均匀||||||F",
            "OBX|2|FT|19005-8^诊断意见^LN||肝脏未见明显异常||||||F",
        ]
    ).replace("|CH|F", "|US|F")
    assert _err(ingest.receive(message.encode(), PEER))[0] == "AA"
    with engine.connect() as conn:
        (report,) = store.current_reports(conn, RID_PATIENT)
    assert report["kind"] == "exam"
    assert report["findings"] == "肝脏大小形态正常\n回声均匀"
    assert report["conclusion"] == "肝脏未见明显异常"


def test_gb18030_message_is_decoded_by_msh18(engine: Engine, ingest: V2Ingest) -> None:
    raw = oru(charset="GB 18030-2000").encode("gb18030")
    with pytest.raises(UnicodeDecodeError):
        raw.decode("utf-8")
    ack = ingest.receive(raw, PEER)
    assert _err(ack)[0] == "AA"
    assert ack_fields(ack, "gb18030")["MSH"][17] == "GB 18030-2000"
    with engine.connect() as conn:
        (report,) = store.current_reports(conn, RID_PATIENT)
        assert store.observations_of(conn, report["id"])[0]["display"] == "葡萄糖"


def test_custom_delimiters_are_honoured_in_parse_and_ack(engine: Engine, ingest: V2Ingest) -> None:
    raw = oru(seps="#$*!@").encode()
    assert raw.startswith(b"MSH#$*!@#")
    ack = ingest.receive(raw, PEER)
    assert ack.startswith(b"MSH#$*!@#RHIP#")
    assert b"MSA#AA#MSG0001" in ack
    with engine.connect() as conn:
        (report,) = store.current_reports(conn, RID_PATIENT)
        assert store.observations_of(conn, report["id"])[1]["comparator"] == "<"


@pytest.mark.parametrize(
    ("message", "err2", "code", "words"),
    [
        (oru(status=""), "OBR^1^25^1", "101", "result status is missing"),
        (oru(status="Z"), "OBR^1^25^1", "103", "not one of P, F, C, X"),
        (oru(obx=["OBX|1|NM|2345-7^GLU^LN||5,6|mmol/L"]), "OBX^1^5^1", "102", "not a number"),
        (oru(obx=["OBX|1|ZZ|2345-7^GLU^LN||5"]), "OBX^1^2^1", "103", "value type"),
        (oru(pid3="123^^^^XX"), "PID^1^3^1", "101", "no usable identifier"),
        (oru(pid3="110105194912310021^^^^NNCHN"), "PID^1^3^1^1", "102", "check digit"),
        (oru(pid3="NOBODY^^^^MR"), "PID^1^3", "204", "no patient"),
        (oru(obr22="20241399"), "OBR^1^22^1", "102", "calendar"),
        (oru(filler="", extra=[]).replace("|P1001|", "||"), "OBR^1^3^1", "101", "filler"),
    ],
)
def test_content_errors_get_ae_with_location_and_keep_nothing(
    engine: Engine, ingest: V2Ingest, message: str, err2: str, code: str, words: str
) -> None:
    ack = ingest.receive(message.encode(), PEER)
    assert _err(ack)[:3] == ("AE", err2, code)
    assert words in _err(ack)[3]
    assert _count(engine, reports) == 0 and _count(engine, observations) == 0
    (row,) = _inbox(engine)
    assert row["status"] == "failed" and words in row["error"]
    assert row["raw"] == message.encode() and row["ack"] == ack


def test_a_bad_value_late_in_the_message_leaves_no_partial_report(
    engine: Engine, ingest: V2Ingest
) -> None:
    good = oru("OK")
    second = "OBR|2|P2|F2|1234-5^X^LN|||20240301080000" + "|" * 17 + "CH|F"
    bad = good.replace("|OK|", "|BAD|") + f"\r{second}\rOBX|1|NM|1-1^Y||abc"
    assert _err(ingest.receive(bad.encode(), PEER))[:3] == ("AE", "OBX^5^5^1", "102")
    assert _count(engine, reports) == 0


@pytest.mark.parametrize(
    ("raw", "err2", "code", "words"),
    [
        (oru(sender="91440300MA5FAKE01X").encode(), "MSH^1^4", "204", "not a registered"),
        (oru(message_type="ORU^R30").encode(), "MSH^1^9^1^2", "201", "not accepted"),
        (oru(message_type="QBP^Q22").encode(), "MSH^1^9^1^1", "200", "not accepted"),
        (b"PID|1||X\rOBX|1", "MSH^1", "100", "must begin with an MSH"),
        (bytes(range(256)) * 4, "MSH^1", "100", "binary data"),
        (b"MSH|^~|LIS|X", "MSH^1^2", "102", "delimiters"),
        (b"MSHA^~\\&A", "MSH^1^2", "102", "delimiters"),
        (oru(charset="EBCDIC").encode(), "MSH^1^18", "103", "character set"),
        (oru(control_id="").encode(), "MSH^1^10", "101", "control id"),
    ],
)
def test_refused_messages_get_ar_and_stay_in_the_inbox(
    engine: Engine, ingest: V2Ingest, raw: bytes, err2: str, code: str, words: str
) -> None:
    ack = ingest.receive(raw, PEER)
    msa, loc, err3, text = _err(ack)
    assert (msa, loc, err3) == ("AR", err2, code)
    assert words in text
    (row,) = _inbox(engine)
    assert (row["status"], row["ack_code"], row["raw"]) == ("failed", "AR", raw)
    assert _count(engine, reports) == 0


def test_peer_outside_the_allow_list_is_refused(engine: Engine, ingest: V2Ingest) -> None:
    ack = ingest.receive(oru().encode(), "10.9.8.7")
    assert _err(ack)[:3] == ("AR", "MSH^1^4", "204")
    assert "allow-list" in _err(ack)[3]
    assert ingest.receive(oru().encode(), "::ffff:127.0.0.1").count(b"MSA|AA") == 1


def test_oversize_message_is_refused_and_its_head_kept(engine: Engine, sender_id: str) -> None:
    ingest = V2Ingest(engine, resolver, max_bytes=2000)
    raw = oru(obx=[f"OBX|{i}|NM|1-{i}^X||{i}|g" for i in range(1, 200)]).encode()
    ack = ingest.receive(raw[:2000], PEER, size=len(raw))
    assert _err(ack)[:3] == ("AR", "MSH^1", "104")
    (row,) = _inbox(engine)
    assert (row["size"], row["truncated"], len(row["raw"])) == (len(raw), True, 2000)


def test_failed_messages_can_be_listed_and_retried(engine: Engine, sender_id: str) -> None:
    from rhip.exchange import service

    calls = {"n": 0}

    def flaky(conn, reg):
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("MPI connection reset")
        return resolver(conn, reg)

    ingest = V2Ingest(engine, flaky)
    ack = ingest.receive(oru().encode(), PEER)
    assert _err(ack)[:3] == ("AE", "", "207")
    assert "RuntimeError" in _err(ack)[3] and "MPI connection" not in _err(ack)[3]
    failed = service.list_inbox(engine, status="failed")
    assert [r["control_id"] for r in failed] == ["MSG0001"] and "raw" not in failed[0]
    # a resend before the retry gets the original answer and changes nothing
    assert ingest.receive(oru().encode(), PEER) == ack
    (result,) = ingest.retry([failed[0]["id"]])
    assert (result.status, result.ack_code) == ("processed", "AA")
    assert _count(engine, reports) == 1
    assert ingest.retry([failed[0]["id"]])[0].status == "skipped"
    assert service.list_inbox(engine, status="failed") == []


def test_refused_unknown_sender_is_processed_on_retry_once_registered(engine: Engine) -> None:
    ingest = V2Ingest(engine, resolver)
    assert _err(ingest.receive(oru().encode(), PEER))[0] == "AR"
    (row,) = _inbox(engine)
    add_institution(engine, SENDER)
    (result,) = ingest.retry([row["id"]])
    assert result.status == "processed"
    # the sender's own resend is now a duplicate of the retried message
    assert _err(ingest.receive(oru().encode(), PEER))[0] == "AA"
    assert _count(engine, reports) == 1


def test_a_message_interrupted_before_processing_is_finished_by_its_resend(
    engine: Engine, ingest: V2Ingest
) -> None:
    from rhip.exchange import inbox

    raw = oru().encode()
    with engine.begin() as conn:  # what a crash right after the inbox commit leaves behind
        inbox.store_received(
            conn, inbox.Arrival(raw, "mllp", PEER, SENDER, "MSG0001", "ORU^R01"),
            inbox.dedup_key("mllp", SENDER, "MSG0001"),
        )  # fmt: skip
    ack = ingest.receive(raw, PEER)
    assert _err(ack)[0] == "AA"
    assert [r["status"] for r in _inbox(engine)] == ["processed", "duplicate"]
    assert _count(engine, reports) == 1


def test_patients_resolve_through_the_mpi_by_default(engine: Engine, sender_id: str) -> None:
    from rhip.kernel.crypto import IdentifierVault

    ingest = V2Ingest(engine, vault=IdentifierVault("test-secret"))
    assert _err(ingest.receive(oru("A1").encode(), PEER))[0] == "AA"
    # the same person by MRN only, from a second report: the MPI links it to the same record
    again = oru("A2", filler="F2", pid3="M123^^^^MR")
    assert _err(ingest.receive(again.encode(), PEER))[0] == "AA"
    with engine.connect() as conn:
        ids = conn.execute(select(reports.c.patient_id)).scalars().all()
    assert len(ids) == 2 and len(set(ids)) == 1 and not ids[0].startswith("p-")
