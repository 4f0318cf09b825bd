"""FHIR Patient over the MPI: create, read, search, $ihe-pix, $match and bad input."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, select

from rhip.api import create_app
from rhip.identity.models import registrations
from rhip.kernel import systems
from rhip.kernel.settings import Settings

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
    return TestClient(create_app(Settings(env="test"), engine=engine))


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
