"""FHIR transaction and batch Bundles: patients through the MPI, reports through the report store,
all-or-nothing transactions, per-entry batch outcomes, duplicates, specific errors."""

from __future__ import annotations

import copy
import json

import pytest
from sqlalchemy import Engine, func, select

from exchange.fhir_support import bundle, encode, lab_transaction, observation, patient, report
from exchange.support import RID, SENDER
from rhip.exchange import inbox
from rhip.exchange.fhir_bundle import FhirIngest
from rhip.exchange.models import inbox_messages, observations, reports
from rhip.kernel import systems
from rhip.kernel.crypto import IdentifierVault

COND = f"Patient?identifier={systems.RESIDENT_ID}|{RID}"


@pytest.fixture
def fhir(engine: Engine, sender_id: str) -> FhirIngest:
    return FhirIngest(engine, vault=IdentifierVault("test-secret"))


def count(engine: Engine, table) -> int:
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(table)).scalar_one()


def statuses(answer) -> list[str]:
    return [e["response"]["status"] for e in answer.body["entry"]]


@pytest.mark.postgres
def test_transaction_stores_patient_report_and_observations(fhir: FhirIngest, engine) -> None:
    answer = fhir.receive_bundle(encode(lab_transaction()), SENDER, "127.0.0.1")
    assert answer.status == 200, answer.body
    assert answer.body["type"] == "transaction-response"
    assert statuses(answer) == ["200 OK", "201 Created", "201 Created", "201 Created"]
    locations = [e["response"]["location"] for e in answer.body["entry"]]
    assert locations[0].startswith("Patient/") and locations[3].startswith("DiagnosticReport/")
    with engine.connect() as conn:
        rep = conn.execute(select(reports)).mappings().one()
        obs = conn.execute(select(observations).order_by(observations.c.seq)).mappings().all()
        msg = conn.execute(select(inbox_messages)).mappings().one()
    assert rep["patient_id"] == locations[0].split("/")[1] and rep["kind"] == "lab"
    assert rep["report_key"] == "filler:F1001" and rep["status"] == "final" and rep["current"]
    assert [o["value_num"] for o in obs] == [5.6, 7.2]
    assert [o["abnormal_flag"] for o in obs] == ["N", "H"]
    assert obs[0]["reference_range"] == "3.9-6.1" and obs[0]["unit"] == "mmol/L"
    assert locations[1] == f"Observation/{obs[0]['id']}"
    assert msg["channel"] == "fhir" and msg["status"] == "processed"
    assert msg["control_id"] == "urn:test:bundle|B1" and json.loads(msg["raw"])["type"]


@pytest.mark.postgres
def test_conditional_reference_resolves_through_the_mpi(fhir: FhirIngest, engine) -> None:
    first = fhir.receive_bundle(encode(lab_transaction()), SENDER)
    golden = first.body["entry"][0]["response"]["location"].split("/")[1]
    later = bundle([observation(1, COND, 4.4), report(COND, ["urn:uuid:obs-1"], filler="F2")],
                   ident="B2")  # fmt: skip
    answer = fhir.receive_bundle(encode(later), SENDER)
    assert answer.status == 200, answer.body
    with engine.connect() as conn:
        patients = {r[0] for r in conn.execute(select(reports.c.patient_id))}
    assert patients == {golden}


def test_unknown_conditional_reference_fails_naming_the_entry(fhir: FhirIngest, engine) -> None:
    cond = f"Patient?identifier={systems.mrn_system(SENDER)}|NOBODY"
    answer = fhir.receive_bundle(
        encode(bundle([observation(1, cond), report(cond, ["urn:uuid:obs-1"])])), SENDER
    )
    assert answer.status == 404
    issue = answer.body["issue"][0]
    assert issue["expression"] == ["Bundle.entry[1].resource.subject"]
    assert "NOBODY" in issue["diagnostics"]
    assert count(engine, reports) == 0


@pytest.mark.postgres
def test_transaction_with_one_bad_entry_writes_nothing(fhir: FhirIngest, engine) -> None:
    data = lab_transaction()
    data["entry"][2]["resource"]["valueQuantity"]["value"] = "7,2"
    answer = fhir.receive_bundle(encode(data), SENDER)
    assert answer.status == 422
    assert answer.body["resourceType"] == "OperationOutcome"
    paths = [i["expression"][0] for i in answer.body["issue"]]
    assert paths == ["Bundle.entry[2].resource.valueQuantity.value"]
    assert count(engine, reports) == 0 and count(engine, observations) == 0
    from rhip.identity.models import persons

    assert count(engine, persons) == 0  # the Patient entry was not registered either
    with engine.connect() as conn:
        row = conn.execute(select(inbox_messages)).mappings().one()
    assert row["status"] == "failed" and "valueQuantity.value" in row["error"]
    assert json.loads(row["raw"])["entry"][2]["resource"]["valueQuantity"]["value"] == "7,2"


def test_batch_applies_good_entries_and_reports_bad_ones(fhir: FhirIngest, engine) -> None:
    good = report("urn:uuid:pat-1", ["urn:uuid:obs-1"], filler="G1")
    bad = copy.deepcopy(report("urn:uuid:pat-1", [], filler="B1"))
    del bad["resource"]["status"]
    data = bundle([patient(), observation(1, "urn:uuid:pat-1"), good, bad], kind="batch")
    answer = fhir.receive_bundle(encode(data), SENDER)
    assert answer.status == 200 and answer.body["type"] == "batch-response"
    assert statuses(answer)[:3] == ["200 OK", "201 Created", "201 Created"]
    assert statuses(answer)[3] == "422 Unprocessable Entity"
    outcome = answer.body["entry"][3]["response"]["outcome"]["issue"][0]
    assert outcome["expression"] == ["Bundle.entry[3].resource.status"]
    with engine.connect() as conn:
        assert [r[0] for r in conn.execute(select(reports.c.filler_number))] == ["G1"]


@pytest.mark.postgres
def test_duplicates_are_recognised_and_not_applied_twice(fhir: FhirIngest, engine) -> None:
    first = fhir.receive_bundle(encode(lab_transaction()), SENDER)
    again = fhir.receive_bundle(encode(lab_transaction()), SENDER)
    assert again.status == 200 and again.body == first.body  # the original's response
    other_id = fhir.receive_bundle(encode(lab_transaction(ident="B9")), SENDER)
    assert other_id.status == 200
    dr = other_id.body["entry"][3]["response"]
    assert dr["location"] == first.body["entry"][3]["response"]["location"]
    assert "duplicate" in dr["outcome"]["issue"][0]["diagnostics"]
    assert count(engine, reports) == 1 and count(engine, observations) == 2
    with engine.connect() as conn:
        kinds = [r[0] for r in conn.execute(select(inbox_messages.c.status))]
    assert sorted(kinds) == ["duplicate", "processed", "processed"]


@pytest.mark.postgres
def test_corrected_report_adds_a_version_and_cancelled_has_none_current(fhir, engine) -> None:
    fhir.receive_bundle(encode(lab_transaction()), SENDER)
    fhir.receive_bundle(
        encode(lab_transaction("B2", status="corrected", issued="2024-03-02T09:00:00+08:00")),
        SENDER,
    )
    with engine.connect() as conn:
        rows = conn.execute(select(reports.c.version, reports.c.status, reports.c.current)
                            .order_by(reports.c.version)).all()  # fmt: skip
    assert [tuple(r) for r in rows] == [(1, "final", False), (2, "corrected", True)]
    fhir.receive_bundle(
        encode(lab_transaction("B3", status="entered-in-error", issued="2024-03-03T09:00:00Z")),
        SENDER,
    )
    with engine.connect() as conn:
        current = conn.execute(select(func.count()).where(reports.c.current.is_(True)))
        assert current.scalar_one() == 0


@pytest.mark.parametrize(
    ("body", "status", "expression"),
    [
        (b"{not json", 400, None),
        (encode({"resourceType": "Patient"}), 400, "Bundle.resourceType"),
        (encode({"resourceType": "Bundle", "type": "collection"}), 400, "Bundle.type"),
        (encode(bundle([{"resource": {"resourceType": "Medication"}}])), 400,
         "Bundle.entry[0].resource.resourceType"),
    ],
)  # fmt: skip
def test_bad_bundles_get_specific_errors_and_stay_in_the_inbox(
    fhir: FhirIngest, engine, body: bytes, status: int, expression: str | None
) -> None:
    answer = fhir.receive_bundle(body, SENDER)
    assert answer.status == status
    issue = answer.body["issue"][0]
    assert issue.get("expression", [None])[0] == expression
    rows = inbox.list_messages(engine, status="failed")
    assert len(rows) == 1 and rows[0]["channel"] == "fhir" and rows[0]["error"]


def test_bad_date_is_named(fhir: FhirIngest) -> None:
    data = lab_transaction()
    data["entry"][3]["resource"]["issued"] = "2024-02-30T10:00:00+08:00"
    answer = fhir.receive_bundle(encode(data), SENDER)
    assert answer.status == 422
    assert answer.body["issue"][0]["expression"] == ["Bundle.entry[3].resource.issued"]


def test_unknown_sender_is_refused_and_kept(fhir: FhirIngest, engine) -> None:
    answer = fhir.receive_bundle(encode(lab_transaction()), "91440300XXXXXXXXXX")
    assert answer.status == 403 and answer.body["issue"][0]["code"] == "forbidden"
    rows = inbox.list_messages(engine, status="failed")
    assert rows[0]["sender"] == "91440300XXXXXXXXXX" and count(engine, reports) == 0


@pytest.mark.postgres
def test_a_quality_rejection_names_fhir_elements_and_counts_in_the_scorecard(
    fhir: FhirIngest, engine, sender_id: str
) -> None:
    """A FHIR sender reads its rejection in FHIR terms (DiagnosticReport.issued), not in the HL7
    v2 fields the rule also knows (OBR-22); the institution's scorecard counts it."""
    import datetime as dt

    from rhip.kernel.clock import CST
    from rhip.quality import repo

    data = lab_transaction(issued="2024-03-01T07:00:00+08:00")  # before its collection at 08:00
    answer = fhir.receive_bundle(encode(data), SENDER)
    assert answer.status == 422, answer.body
    text = " ".join(i["diagnostics"] for i in answer.body["issue"])
    assert "consistency.issued_after_collected" in text
    assert "DiagnosticReport.issued issue time is before DiagnosticReport.effectiveDateTime" in text
    assert "OBR-" not in text and count(engine, reports) == 0
    # in a batch the other entries are applied (the Bundle is processed); the rejection counts
    good = report("urn:uuid:pat-1", [], filler="G1")
    late = report("urn:uuid:pat-1", [], filler="L1", issued="2024-03-01T07:00:00+08:00")
    batch = bundle([patient(), good, late], kind="batch", ident="B2")
    answer = fhir.receive_bundle(encode(batch), SENDER)
    assert statuses(answer) == ["200 OK", "201 Created", "422 Unprocessable Entity"]
    today = dt.datetime.now(CST).date()
    with engine.connect() as conn:
        counted = repo.rejected(conn, sender_id, today, today)
    assert counted == {("consistency.issued_after_collected", today): 2}
