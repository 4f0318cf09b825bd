"""FHIR Patient over the MPI: create, read, search, $ihe-pix, $match and bad input."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, select

from factories import SETTINGS, token_headers
from rhip.api import create_app
from rhip.audit.models import audit_events
from rhip.identity.models import registrations
from rhip.kernel import systems

RID = "440305199003120026"
MRN_A = systems.mrn_system("12440300MB0000001U")
MRN_B = systems.mrn_system("12440300MB0000002S")


def patient(mrn_system: str, mrn: str, rid: str | None = RID, **kw: object) -> dict:
    ids = [{"system": mrn_system, "value": mrn}]
    if rid:
        ids.append({"system": systems.RESIDENT_ID, "value": rid})
    name = [{"family": "张", "given": ["伟"]}]
    return {"resourceType": "Patient", "identifier": ids, "name": name,
            "gender": "female", "birthDate": "1990-03-12",
            "telecom": [{"system": "phone", "value": "13800138000"}], **kw}  # fmt: skip


@pytest.fixture
def client(engine: Engine) -> TestClient:
    """Signed in as an operator (MPI stewardship: everything, identifiers in full)."""
    return TestClient(create_app(SETTINGS, engine=engine), headers=token_headers("operator"))


@pytest.mark.postgres
def test_create_read_and_link(client: TestClient) -> None:
    r = client.post("/fhir/Patient", json=patient(MRN_A, "A1"))
    assert r.status_code == 201, r.text
    pid = r.json()["id"]
    assert r.headers["location"] == f"/fhir/Patient/{pid}"
    again = client.post("/fhir/Patient", json=patient(MRN_B, "B1", rid=None,
                                                      name=[{"text": "張偉"}]))  # fmt: skip
    assert again.status_code == 200 and again.json()["id"] == pid
    assert again.headers["x-rhip-match-outcome"] == "auto"
    body = client.get(f"/fhir/Patient/{pid}").json()
    assert body["resourceType"] == "Patient" and body["gender"] == "female"
    assert {(i["system"], i["value"]) for i in body["identifier"]} == {
        (MRN_A, "A1"),
        (MRN_B, "B1"),
        (systems.RESIDENT_ID, RID),
    }
    assert client.get("/fhir/Patient/nope").status_code == 404


@pytest.mark.postgres
def test_search_by_identifier_name_birthdate_gender(client: TestClient) -> None:
    pid = client.post("/fhir/Patient", json=patient(MRN_A, "A1")).json()["id"]
    other = patient(MRN_B, "B7", rid=None, name=[{"text": "李娜"}], birthDate="1985-01-01")
    client.post("/fhir/Patient", json=other)
    for query in ({"identifier": f"{systems.RESIDENT_ID}|{RID}"}, {"identifier": RID},
                  {"identifier": "A1"}, {"name": "张"}, {"name": "zhangwei"}, {"name": "張偉"},
                  {"birthdate": "1990-03-12", "gender": "female"}):  # fmt: skip
        bundle = client.get("/fhir/Patient", params=query).json()
        assert bundle["type"] == "searchset", query
        assert [e["resource"]["id"] for e in bundle["entry"]] == [pid], query
    assert client.get("/fhir/Patient", params={"gender": "male"}).json()["total"] == 0
    assert client.get("/fhir/Patient", params={"_count": 1}).json()["total"] == 2


@pytest.mark.postgres
def test_ihe_pix_cross_references_identifiers(client: TestClient) -> None:
    pid = client.post("/fhir/Patient", json=patient(MRN_A, "A1")).json()["id"]
    client.post("/fhir/Patient", json=patient(MRN_B, "B1"))
    r = client.get("/fhir/Patient/$ihe-pix", params={"sourceIdentifier": f"{MRN_A}|A1"})
    assert r.status_code == 200, r.text
    params = r.json()["parameter"]
    targets = {(p["valueIdentifier"]["system"], p["valueIdentifier"]["value"])
               for p in params if p["name"] == "targetIdentifier"}  # fmt: skip
    assert targets == {(MRN_B, "B1"), (systems.RESIDENT_ID, RID)}
    assert {"name": "targetId", "valueReference": {"reference": f"Patient/{pid}"}} in params
    only = client.get(
        "/fhir/Patient/$ihe-pix",
        params={"sourceIdentifier": f"{systems.RESIDENT_ID}|{RID}", "targetSystem": MRN_B},
    )
    assert [p["valueIdentifier"]["value"] for p in only.json()["parameter"]
            if p["name"] == "targetIdentifier"] == ["B1"]  # fmt: skip
    missing = client.get("/fhir/Patient/$ihe-pix", params={"sourceIdentifier": f"{MRN_A}|ZZ"})
    assert missing.status_code == 404 and missing.json()["resourceType"] == "OperationOutcome"


@pytest.mark.postgres
def test_match_scores_candidates(client: TestClient) -> None:
    pid = client.post("/fhir/Patient", json=patient(MRN_A, "A1")).json()["id"]
    query = patient(MRN_B, "Q", rid=None, name=[{"text": "ZHANG Wei"}])
    r = client.post(
        "/fhir/Patient/$match",
        json={"resourceType": "Parameters", "parameter": [{"name": "resource", "resource": query}]},
    )
    assert r.status_code == 200, r.text
    entry = r.json()["entry"][0]
    assert entry["resource"]["id"] == pid
    assert 0.5 < entry["search"]["score"] <= 1
    assert entry["search"]["extension"][0]["valueCode"] in ("certain", "probable")


@pytest.mark.parametrize(
    ("body", "status", "expression"),
    [
        (patient(MRN_A, "A1", rid="440305199003120027"), 422, "Patient.identifier[1].value"),
        (patient(MRN_A, "A1", rid="440305199013320021"), 422, "Patient.identifier[1].value"),
        (patient(MRN_A, "A1", gender="woman"), 422, "Patient.gender"),
        (patient(MRN_A, "A1", birthDate="1990-13-01"), 422, "Patient.birthDate"),
        ({"resourceType": "Observation"}, 400, "resourceType"),
        (
            {"resourceType": "Patient", "identifier": [{"value": "x"}]},
            422,
            "Patient.identifier[0].system",
        ),
    ],
)
def test_bad_input_gets_an_operation_outcome_and_nothing_is_written(
    client: TestClient, engine: Engine, body: dict, status: int, expression: str
) -> None:
    r = client.post("/fhir/Patient", json=body)
    assert r.status_code == status, r.text
    outcome = r.json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert outcome["issue"][0]["expression"] == [expression]
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(registrations)).scalar_one() == 0


def test_malformed_json_and_unknown_search_parameter(client: TestClient) -> None:
    r = client.post(
        "/fhir/Patient", content=b"{not json", headers={"content-type": "application/fhir+json"}
    )
    assert r.status_code == 400 and r.json()["resourceType"] == "OperationOutcome"
    r = client.get("/fhir/Patient", params={"shoe-size": "42"})
    assert r.status_code == 400 and r.json()["issue"][0]["expression"] == ["shoe-size"]
    r = client.get("/fhir/Patient", params={"birthdate": "yesterday"})
    assert r.status_code == 422 and r.json()["issue"][0]["expression"] == ["birthdate"]
    r = client.get("/fhir/Patient/$ihe-pix", params={"sourceIdentifier": "A1"})
    assert r.status_code == 422 and r.json()["issue"][0]["expression"] == ["sourceIdentifier"]


def _institution(engine: Engine, credit_code: str) -> str:
    import datetime as dt

    from sqlalchemy import insert

    from rhip.registry.models import districts, institutions

    now = dt.datetime.now(dt.UTC)
    with engine.begin() as conn:
        if (
            conn.execute(select(districts.c.code).where(districts.c.code == "440305")).first()
            is None
        ):
            conn.execute(insert(districts).values(code="440305", name="南山区"))
        conn.execute(insert(institutions).values(
            id=f"org-{credit_code[-4:]}", credit_code=credit_code, name="测试医院",
            type="public_hospital", district_code="440305", connection_status="connected",
            feeds="{}", functions="{}", allow_cidrs="", created_at=now, updated_at=now,
        ))  # fmt: skip
    return f"org-{credit_code[-4:]}"


@pytest.mark.postgres
def test_doctors_need_a_purpose_and_see_identifiers_masked_pix_in_full(
    client: TestClient, engine: Engine
) -> None:
    pid = client.post("/fhir/Patient", json=patient(MRN_A, "A1")).json()["id"]
    dr = token_headers("doctor", institution_id="org-x", purpose="TREAT")
    no_purpose = token_headers("doctor", institution_id="org-x")
    assert client.get(f"/fhir/Patient/{pid}", headers=no_purpose).status_code == 403
    body = client.get(f"/fhir/Patient/{pid}", headers=dr).json()
    values = {i["system"]: i["value"] for i in body["identifier"]}
    assert values[systems.RESIDENT_ID] == "4403**********0026" and values[MRN_A] == "A1"
    assert body["telecom"][0]["value"] == "138****8000"
    found = client.get("/fhir/Patient", params={"identifier": RID}, headers=dr).json()
    assert [e["resource"]["id"] for e in found["entry"]] == [pid]
    shown = str(found["entry"])  # (the paging links echo the caller's own query)
    assert RID not in shown and "13800138000" not in shown
    pix = client.get("/fhir/Patient/$ihe-pix", params={"sourceIdentifier": f"{MRN_A}|A1"},
                     headers=dr).json()  # fmt: skip
    assert RID in [p["valueIdentifier"]["value"] for p in pix["parameter"]
                   if p["name"] == "targetIdentifier"]  # fmt: skip
    with engine.connect() as conn:
        rows = conn.execute(select(audit_events.c.resource, audit_events.c.subtype,
                                   audit_events.c.patient_id, audit_events.c.status)
                            .order_by(audit_events.c.seq)).all()  # fmt: skip
    assert [tuple(r) for r in rows] == [
        ("Patient", "read", pid, 403), ("Patient", "read", pid, 200),
        ("Patient", "search", pid, 200), ("Patient", "search", pid, 200),
    ]  # fmt: skip


@pytest.mark.postgres
def test_integrators_register_only_with_their_own_mrn(client: TestClient, engine: Engine) -> None:
    own = _institution(engine, "12440300MB0000001U")
    h = token_headers("integrator", institution_id=own)
    other = client.post("/fhir/Patient", json=patient(MRN_B, "B1"), headers=h)
    assert other.status_code == 403 and "own institution" in other.json()["issue"][0]["diagnostics"]
    managed = patient(MRN_A, "A1", managingOrganization={"reference": "Organization/org-zz"})
    assert client.post("/fhir/Patient", json=managed, headers=h).status_code == 403
    no_mrn = {**patient(MRN_A, "A1"), "identifier": [{"system": systems.RESIDENT_ID, "value": RID}]}
    r = client.post("/fhir/Patient", json=no_mrn, headers=h)
    assert r.status_code == 422 and r.json()["issue"][0]["expression"] == ["Patient.identifier"]
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(registrations)).scalar_one() == 0
    client.post("/fhir/Patient", json=patient(MRN_B, "B1"))  # another hospital's registration
    made = client.post("/fhir/Patient", json=patient(MRN_A, "A1"), headers=h)
    assert made.status_code == 200, made.text  # linked to the golden record
    shown = {(i["system"], i["value"]) for i in made.json()["identifier"]}
    assert shown == {(MRN_A, "A1"), (systems.RESIDENT_ID, "4403**********0026")}
    with engine.connect() as conn:
        inst = conn.execute(select(registrations.c.institution_id)
                            .where(registrations.c.mrn == "A1")).scalar_one()  # fmt: skip
    assert inst == own
    for path in (f"/fhir/Patient/{made.json()['id']}", "/fhir/Patient?name=张"):
        assert client.get(path, headers=h).status_code == 403
    for who in (token_headers("doctor", institution_id=own), token_headers("patient")):
        assert (
            client.post("/fhir/Patient", json=patient(MRN_A, "A2"), headers=who).status_code == 403
        )


@pytest.mark.postgres
def test_a_patient_reads_only_their_own_record(client: TestClient) -> None:
    mine = client.post("/fhir/Patient", json=patient(MRN_A, "A1")).json()["id"]
    theirs = client.post("/fhir/Patient", json=patient(MRN_B, "B7", rid=None,
                         name=[{"text": "李娜"}], birthDate="1985-01-01")).json()["id"]  # fmt: skip
    h = token_headers("patient", patient_id=mine)
    own = client.get(f"/fhir/Patient/{mine}", headers=h)
    assert own.status_code == 200 and "4403**********0026" in own.text
    other = client.get(f"/fhir/Patient/{theirs}", headers=h)
    assert other.status_code == 404 and theirs not in other.text and "李娜" not in other.text
    by_id = client.get("/fhir/Patient", params={"_id": f"{mine},{theirs}"}, headers=h).json()
    assert [e["resource"]["id"] for e in by_id["entry"]] == [mine]
    assert client.get("/fhir/Patient", params={"name": "李"}, headers=h).status_code == 403
    assert client.get("/fhir/Patient/$ihe-pix", params={"sourceIdentifier": f"{MRN_A}|A1"},
                      headers=h).status_code == 403  # fmt: skip
