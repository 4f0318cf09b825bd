"""NDJSON bulk import: chunks stored raw in the inbox, good lines applied, bad lines named."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select
from typer.testing import CliRunner

from exchange.fhir_support import observation, patient, report
from exchange.support import SENDER
from rhip.exchange import inbox, ndjson, ndjson_chunk
from rhip.exchange.models import inbox_messages, observations, reports
from rhip.kernel import systems
from rhip.kernel.crypto import IdentifierVault


def lines(n: int, bad_at: int | None = None) -> list[str]:
    """A Patient line, then ``n`` DiagnosticReport lines with contained Observations."""
    out = [json.dumps({**patient()["resource"], "id": "pat-1"})]
    for i in range(n):
        obs = observation(1, "Patient/pat-1", 5.0 + i / 10)["resource"]
        dr = report("Patient/pat-1", ["#o1"], filler=f"N{i}")["resource"]
        dr["contained"] = [{**obs, "id": "o1"}]
        out.append(json.dumps(dr, ensure_ascii=False))
    if bad_at is not None:
        out[bad_at] = '{"resourceType": "DiagnosticReport", "status": '  # cut off
    return out


def write(tmp_path: Path, rows: list[str]) -> Path:
    path = tmp_path / "lab.ndjson"
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


def total(engine: Engine, table) -> int:
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(table)).scalar_one()


@pytest.mark.postgres
def test_import_file_by_chunks_with_a_bad_line(engine: Engine, sender_id: str, tmp_path) -> None:
    path = write(tmp_path, lines(12, bad_at=5))
    seen: list[int] = []
    result = ndjson.import_file(engine, path, SENDER, seen.append,
                                vault=IdentifierVault("t"), chunk_lines=5)  # fmt: skip
    assert result.lines == 13 and result.chunks == 3
    assert sum(seen) == path.stat().st_size
    assert [(e.file, e.line) for e in result.errors] == [("lab.ndjson", 6)]
    assert "not valid JSON" in str(result.errors[0])
    assert result.reports == 11 and total(engine, reports) == 11
    assert total(engine, observations) == 11
    failed = inbox.list_messages(engine, status="failed")
    assert [(m["control_id"], m["channel"]) for m in failed] == [("lab.ndjson:6", "ndjson")]
    with engine.connect() as conn:
        chunks = conn.execute(
            select(inbox_messages.c.control_id)
            .where(inbox_messages.c.message_type == "ndjson")
            .order_by(inbox_messages.c.id)
        ).scalars()
        assert list(chunks) == ["lab.ndjson#1-5", "lab.ndjson#6-10", "lab.ndjson#11-13"]
    again = ndjson.import_file(engine, path, sender_id, vault=IdentifierVault("t"), chunk_lines=5)
    assert again.duplicate_chunks == 3 and total(engine, reports) == 11


def test_invalid_resource_and_unknown_patient_lines(engine: Engine, sender_id, tmp_path) -> None:
    rows = lines(3)
    bad = json.loads(rows[1])
    bad["contained"][0]["valueQuantity"]["value"] = "high"
    rows[1] = json.dumps(bad)
    nobody = json.loads(rows[2])
    nobody["subject"]["reference"] = f"Patient?identifier={systems.mrn_system(SENDER)}|NOBODY"
    rows[2] = json.dumps(nobody)
    result = ndjson.import_file(engine, write(tmp_path, rows), SENDER, vault=IdentifierVault("t"))
    messages = {e.line: e.message for e in result.errors}
    assert set(messages) == {2, 3}
    assert "DiagnosticReport.contained[0].valueQuantity.value" in messages[2]
    assert "NOBODY" in messages[3]
    assert total(engine, reports) == 1


def test_cli_command_prints_file_and_line(engine: Engine, sender_id, tmp_path, monkeypatch) -> None:
    import typer

    monkeypatch.setenv("RHIP_DATABASE_URL", str(engine.url))
    app = typer.Typer()
    app.command()(ndjson.ingest)
    path = write(tmp_path, lines(2, bad_at=2))
    out = CliRunner().invoke(app, [str(path), "--sender", SENDER])
    assert out.exit_code == 1, out.output
    assert "lab.ndjson:3:" in out.output and "1 reports" in out.output
    assert total(engine, reports) == 1
    other = tmp_path / "more.ndjson"
    other.write_text("\n".join(lines(3)[1:]) + "\n", encoding="utf-8")  # pat-1: not known here
    out = CliRunner().invoke(app, [str(other), str(path), "--sender", SENDER])
    assert out.exit_code == 1, out.output
    assert "more.ndjson: 3 lines, 0 reports" in out.output and "more.ndjson:1:" in out.output
    assert "lab.ndjson: 3 lines, 0 reports, 0 patients, 1/1 chunks already" in out.output


@pytest.mark.postgres
def test_chunk_row_is_written_once_with_its_outcome(engine: Engine, sender_id, tmp_path) -> None:
    path = write(tmp_path, lines(6, bad_at=5))
    ndjson.import_file(engine, path, SENDER, vault=IdentifierVault("t"), chunk_lines=4)
    with engine.connect() as conn:
        chunks = conn.execute(
            select(inbox_messages)
            .where(inbox_messages.c.message_type == "ndjson")
            .order_by(inbox_messages.c.id)
        ).mappings().all()  # fmt: skip
    assert [(c["status"], c["ack_code"], c["attempts"]) for c in chunks] == [
        ("processed", "2x", 1), ("processed", "2x", 1)
    ]  # fmt: skip
    assert [c["error"] for c in chunks] == [None, "1 of 3 lines failed"]  # line 6 of 7
    assert all(c["institution_id"] == sender_id and c["processed_at"] for c in chunks)
    assert b"".join(c["raw"] for c in chunks) == path.read_bytes()


@pytest.mark.postgres
def test_a_chunk_key_taken_meanwhile_is_a_duplicate(engine: Engine, sender_id) -> None:
    arrival = inbox.Arrival(b"{}\n", ndjson.CHANNEL, sender=SENDER, control_id="x#1-1")
    key = inbox.dedup_key(ndjson.CHANNEL, SENDER, "same-digest")
    with engine.begin() as conn:
        ndjson_chunk._store_chunk(conn, arrival, key, sender_id)
    with pytest.raises(ndjson_chunk._Taken), engine.begin() as conn:
        ndjson_chunk._store_chunk(conn, arrival, key, sender_id)
    assert total(engine, inbox_messages) == 1


@pytest.mark.postgres
def test_a_line_the_quality_rules_refuse_names_fhir_elements_and_counts(
    engine: Engine, sender_id: str, tmp_path
) -> None:
    """A line refused by a quality rule: its error names the FHIR elements, its failed inbox row
    belongs to the sending institution, and the institution's scorecard counts the rejection."""
    import datetime as dt

    from rhip.kernel.clock import CST
    from rhip.quality import repo

    rows = lines(2)
    late = json.loads(rows[2])
    late["issued"] = "2024-03-01T07:00:00+08:00"  # before its collection at 08:00
    rows[2] = json.dumps(late, ensure_ascii=False)
    result = ndjson.import_file(engine, write(tmp_path, rows), SENDER, vault=IdentifierVault("t"))
    assert [e.line for e in result.errors] == [3] and result.reports == 1
    text = str(result.errors[0])
    assert "[consistency.issued_after_collected]" in text and "OBR-" not in text
    assert "DiagnosticReport.issued issue time is before DiagnosticReport.effectiveDateTime" in text
    (row,) = inbox.list_messages(engine, status="failed")
    assert row["institution_id"] == sender_id and row["control_id"] == "lab.ndjson:3"
    today = dt.datetime.now(CST).date()
    with engine.connect() as conn:
        assert repo.rejected(conn, sender_id, today, today) == {
            ("consistency.issued_after_collected", today): 1
        }
