"""FHIR reports over HTTP: POST /fhir, $import, search and read of DiagnosticReport/Observation."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

sys.path.insert(0, str(Path(__file__).parents[1]))  # tests/ for the exchange helpers

from exchange.fhir_support import bundle, encode, lab_transaction, observation, report
from exchange.support import OTHER, RID, SENDER, add_institution
from factories import SETTINGS, token_headers
from rhip.api import app as app_module
from rhip.kernel import systems

ORG = f"org-{SENDER[-6:]}"  # the institution add_institution registers
H = token_headers("integrator", institution_id=ORG)  # submits as its own institution


@pytest.fixture
def client(engine: Engine) -> TestClient:
    """Reads as a doctor of the sending hospital, where the patient is registered (TREAT)."""
    add_institution(engine)
    app = app_module.create_app(SETTINGS, engine)
    return TestClient(app, headers=token_headers("doctor", institution_id=ORG, purpose="TREAT"))


def load(client: TestClient) -> str:
    """Two lab reports (one 2024-03-01, one 2024-04-01) and an exam; returns the patient id."""
    r = client.post("/fhir", content=encode(lab_transaction()), headers=H)
    assert r.status_code == 200, r.text
    pid = r.json()["entry"][0]["response"]["location"].split("/")[1]
    ref = f"Patient/{pid}"
    april = report(ref, ["urn:uuid:obs-1"], filler="F2", issued="2024-04-01T10:00:00+08:00",
                   code="2093-3")  # fmt: skip
    april["resource"]["effectiveDateTime"] = "2024-04-01T08:00:00+08:00"
    exam = report(
        ref, [], filler="CT1", category="CT", code="24627-2", issued="2024-03-15T10:00:00+08:00"
    )
    exam["resource"]["conclusion"] = "双肺未见异常"
    data = bundle([observation(1, ref, 3.3), april, exam], kind="batch", ident="B2")
    r = client.post("/fhir", content=encode(data), headers=H)
    assert [e["response"]["status"] for e in r.json()["entry"]] == ["201 Created"] * 3, r.text
    return pid


def ids(client: TestClient, url: str) -> list[str]:
    r = client.get(url)
    assert r.status_code == 200, r.text
    return [e["resource"]["identifier"][0]["value"] for e in r.json().get("entry", [])]


@pytest.mark.postgres
def test_search_reports_by_each_parameter(client: TestClient) -> None:
    pid = load(client)
    base = "/fhir/DiagnosticReport?"
    assert ids(client, base + f"patient=Patient/{pid}") == ["F2", "CT1", "F1001"]
    assert ids(client, base + f"patient={pid}&category=LAB") == ["F2", "F1001"]
    base += f"subject={pid}&"  # a doctor's search names its patient
    assert ids(client, base + "category=CT") == ["CT1"]
    assert ids(client, base + "code=http://loinc.org|2093-3") == ["F2"]
    assert ids(client, base + "code=24331-1") == ["F1001"]
    assert ids(client, base + "date=ge2024-04-01") == ["F2"]
    assert ids(client, base + "date=lt2024-04-01&category=LAB") == ["F1001"]
    assert ids(client, base + "date=2024-03-01&category=LAB") == ["F1001"]
    assert ids(client, base + "date=gt2024-03-01&category=LAB") == ["F2"]
    assert ids(client, base + "date=le2024-03&category=LAB") == ["F1001"]
    assert ids(client, base + "issued=ge2024-04-01") == ["F2"]
    assert ids(client, base + f"performer=Organization/{ORG}&status=final") == [
        "F2", "CT1", "F1001"]  # fmt: skip
    assert ids(client, base + "performer=Organization/other") == []
    chained = f"/fhir/DiagnosticReport?patient.identifier={systems.RESIDENT_ID}|{RID}"
    assert ids(client, chained + "&category=LAB") == ["F2", "F1001"]
    nobody = f"patient.identifier={systems.RESIDENT_ID}|110105194912310000"
    assert ids(client, f"/fhir/DiagnosticReport?{nobody}") == []
    exam = client.get(base + "category=CT").json()["entry"][0]["resource"]
    assert exam["conclusion"] == "双肺未见异常"
    bad = client.get(base + "date=ne2024")
    assert bad.status_code == 400 and bad.json()["resourceType"] == "OperationOutcome"
    assert client.get(base + "colour=red").status_code == 400
    missing = client.get("/fhir/DiagnosticReport?category=CT")
    assert missing.status_code == 400 and missing.json()["issue"][0]["expression"] == ["patient"]


@pytest.mark.postgres
def test_search_observations_paging_and_read(client: TestClient) -> None:
    pid = load(client)
    everything = client.get(f"/fhir/Observation?patient={pid}").json()
    assert everything["total"] == 4  # three lab results and the CT report's impression
    page = client.get(f"/fhir/Observation?patient={pid}&category=laboratory&_count=2").json()
    assert page["total"] == 3 and len(page["entry"]) == 2
    links = {link["relation"]: link["url"] for link in page["link"]}
    assert "_offset=2" in links["next"] and "patient=" in links["next"]
    second = client.get(links["next"].replace("http://testserver", "")).json()
    assert len(second["entry"]) == 1 and "previous" in {x["relation"] for x in second["link"]}
    values = [e["resource"]["valueQuantity"]["value"] for e in page["entry"] + second["entry"]]
    assert sorted(values) == [3.3, 5.6, 7.2]
    chained = f"patient.identifier={systems.RESIDENT_ID}|{RID}&code=2345-7&category=laboratory"
    assert client.get(f"/fhir/Observation?{chained}").json()["total"] == 3
    high = client.get(f"/fhir/Observation?patient={pid}&date=2024-03-01&_count=50").json()["entry"]
    obs = next(e["resource"] for e in high if e["resource"]["valueQuantity"]["value"] == 7.2)
    assert obs["interpretation"][0]["coding"][0]["code"] == "H"
    assert obs["referenceRange"] == [{"text": "3.9-6.1"}]
    read = client.get(f"/fhir/Observation/{obs['id']}").json()
    assert read["id"] == obs["id"] and read["subject"]["reference"] == f"Patient/{pid}"
    report_id = read["derivedFrom"][0]["reference"].split("/")[1]
    dr = client.get(f"/fhir/DiagnosticReport/{report_id}").json()
    assert dr["resourceType"] == "DiagnosticReport" and f"Observation/{obs['id']}" in [
        x["reference"] for x in dr["result"]]  # fmt: skip
    assert client.get("/fhir/DiagnosticReport/nope").status_code == 404
    assert client.get("/fhir/Observation/999999").status_code == 404


def test_import_endpoint_and_sender_check(client: TestClient, engine: Engine) -> None:
    load(client)
    cond = f"Patient?identifier={systems.RESIDENT_ID}|{RID}"
    good = report(cond, ["#o1"], filler="NDJ1")["resource"]
    good["contained"] = [{**observation(1, cond)["resource"], "id": "o1"}]
    body = json.dumps(good) + "\n" + '{"resourceType": "Observation"}\n'
    r = client.post("/fhir/$import", content=body.encode(), headers=H)
    assert r.status_code == 200, r.text
    issues = r.json()["issue"]
    assert (
        "1 reports" in issues[0]["diagnostics"] or "2 lines, 1 reports" in issues[0]["diagnostics"]
    )
    assert issues[1]["expression"] == ["line 2"] and "$import:2" in issues[1]["diagnostics"]
    chained = f"patient.identifier={systems.RESIDENT_ID}|{RID}"
    assert "NDJ1" in ids(client, f"/fhir/DiagnosticReport?{chained}&category=LAB")
    own = client.post("/fhir", content=encode(lab_transaction("Y")), headers=H | {
        "X-Rhip-Sender": SENDER})  # naming its own institution is fine  # fmt: skip
    assert own.status_code == 200, own.text
    other_org = add_institution(engine, OTHER)
    for claimed in ("nobody", OTHER, other_org):
        refused = client.post("/fhir", content=encode(lab_transaction("X")),
                              headers=H | {"X-Rhip-Sender": claimed})  # fmt: skip
        assert refused.status_code == 403 and refused.json()["issue"][0]["code"] == "forbidden"
        assert claimed not in refused.text
    # the doctor (the client's default) and an operator do not submit
    for who in ({}, token_headers("operator")):
        assert client.post("/fhir/$import", content=body.encode(), headers=who).status_code == 403
        assert (
            client.post("/fhir", content=encode(lab_transaction("Z")), headers=who).status_code
            == 403
        )
    assert client.post("/fhir", content=b"{}", headers={"Authorization": ""}).status_code == 401


def test_metadata_lists_report_resources(client: TestClient) -> None:
    cs = client.get("/fhir/metadata").json()
    by_type = {r["type"]: r for r in cs["rest"][0]["resource"]}
    for kind in ("DiagnosticReport", "Observation"):
        names = {p["name"] for p in by_type[kind]["searchParam"]}
        assert {"patient", "patient.identifier", "category", "code", "date", "performer",
                "status"} <= names  # fmt: skip
    assert any(op["name"] == "import" for op in cs["rest"][0]["operation"])
