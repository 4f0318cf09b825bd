"""``GET /fhir/AuditEvent`` (BALP, operators), ``/api/audit/my-views`` and ``/api/audit/stats``."""

from __future__ import annotations

import base64
import datetime as dt

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from rhip import audit
from rhip.kernel import clock, systems
from rhip.security.service import list_users
from security.support import (
    RID_A,
    RID_B,
    SETTINGS,
    City,
    add_accounts,
    app_client,
    login,
    make_city,
)

KEY = audit.chain_key(SETTINGS.secret_key)


def _read(user: str, role: str, inst: str | None, patient: str, **over) -> audit.AuditEventIn:
    fields = {"username": user, "user_id": f"id-{user}", "agent_name": f"{user} 医生",
              "role": role, "institution_id": inst, "patient_id": patient, "purpose": "TREAT",
              "resource": "DiagnosticReport", "subtype": "search", "client_address": "10.1.2.3",
              "query": f"/fhir/DiagnosticReport?patient={patient}"}  # fmt: skip
    return audit.AuditEventIn(**(fields | over))


@pytest.fixture
def city(engine: Engine) -> City:
    made = make_city(engine)
    add_accounts(engine, made)
    pt_a = next(u.id for u in list_users(engine) if u.username == "pt.a")
    audit.record(engine, KEY, [
        _read("dr.a", "doctor", made.inst_a, made.patient_a),
        _read("dr.b", "doctor", made.inst_b, made.patient_a, purpose="ETREAT", flagged=True),
        _read("dr.b", "doctor", made.inst_b, made.patient_a, outcome="4", status=403,
              reason="TREAT needs a care relationship"),
        _read("dr.b", "doctor", made.inst_b, made.patient_b, subtype="read"),
        _read("pt.a", "patient", None, made.patient_a, purpose=None, user_id=pt_a),
    ])  # fmt: skip
    return made


@pytest.fixture
def client(engine: Engine, city: City) -> TestClient:
    return app_client(engine)


def _search(client: TestClient, who: str = "op", **params) -> dict:
    r = client.get("/fhir/AuditEvent", params=params, headers=login(client, who))
    assert r.status_code == 200, r.text
    return r.json()


@pytest.mark.postgres
def test_search_by_patient_identifier(client: TestClient, city: City) -> None:
    bundle = _search(client, **{"patient.identifier": f"{systems.RESIDENT_ID}|{RID_A}"})
    assert bundle["total"] == 4
    refs = {e["resource"]["entity"][0]["what"]["reference"] for e in bundle["entry"]}
    assert refs == {f"Patient/{city.patient_a}"}
    assert _search(client, patient=f"Patient/{city.patient_b}")["total"] == 1
    rid_b = f"{systems.RESIDENT_ID}|{RID_B}"
    assert _search(client, **{"patient.identifier": rid_b})["total"] == 1
    unknown = f"{systems.RESIDENT_ID}|110105198001010016"  # valid, nobody has it
    assert _search(client, **{"patient.identifier": unknown})["total"] == 0


def test_search_by_agent_and_outcome(client: TestClient) -> None:
    assert _search(client, agent="dr.b")["total"] == 3
    assert _search(client, agent="dr.b", outcome="4")["total"] == 1
    assert _search(client, agent="id-dr.a")["total"] == 1
    assert _search(client, subtype="read")["total"] == 1


@pytest.mark.postgres
def test_search_by_date(client: TestClient) -> None:
    today = clock.today_cst()
    tomorrow = today + dt.timedelta(days=1)
    assert _search(client, date=today.isoformat())["total"] == 5
    assert _search(client, date=f"ge{today.isoformat()}")["total"] == 5
    assert _search(client, date=f"lt{today.isoformat()}")["total"] == 0
    assert _search(client, date=f"gt{tomorrow.isoformat()}")["total"] == 0
    both = client.get(
        "/fhir/AuditEvent?date=ge" + today.isoformat() + "&date=le" + tomorrow.isoformat(),
        headers=login(client, "op"),
    )
    assert both.json()["total"] == 5


def test_balp_shape(client: TestClient, city: City) -> None:
    bundle = _search(client, agent="dr.b", outcome="0", subtype="search")
    ev = bundle["entry"][0]["resource"]
    assert ev["type"]["code"] == "rest" and ev["subtype"][0]["code"] == "search"
    assert ev["action"] == "E" and ev["outcome"] == "0" and ev["recorded"]
    agent = ev["agent"][0]
    assert agent["requestor"] is True and agent["network"]["address"] == "10.1.2.3"
    assert agent["who"]["identifier"]["value"] == "dr.b" and agent["role"][0]["coding"][0]["code"]
    assert ev["purposeOfEvent"][0]["coding"][0]["code"] == "ETREAT"
    assert ev["extension"][0]["valueBoolean"] is True  # break-glass flagged
    query = next(e for e in ev["entity"] if e.get("query"))
    assert base64.b64decode(query["query"]).decode().startswith("/fhir/DiagnosticReport?")
    assert ev["meta"]["profile"][0].endswith("IHE.BasicAudit.PatientQuery")
    one = client.get(f"/fhir/AuditEvent/{ev['id']}", headers=login(client, "op"))
    assert one.status_code == 200 and one.json()["id"] == ev["id"]
    assert client.get("/fhir/AuditEvent/999", headers=login(client, "op")).status_code == 404


def test_bad_search_input_is_a_specific_4xx(client: TestClient) -> None:
    op = login(client, "op")
    today = clock.today_cst()
    cases = {
        f"date=ge{today}&date=lt{today - dt.timedelta(days=3)}": "date range is empty",
        "date=yesterday": "date must be",
        f"patient.identifier={systems.RESIDENT_ID}|440304199001011234": "check digit",
        "outcome=9": "outcome must be one of",
        "colour=red": "unknown search parameter",
    }
    for query, message in cases.items():
        r = client.get(f"/fhir/AuditEvent?{query}", headers=op)
        assert 400 <= r.status_code < 500, query
        assert message in r.json()["issue"][0]["diagnostics"], query
        assert "440304199001011234" not in r.text


def test_only_operators_search_the_audit_log(client: TestClient) -> None:
    assert client.get("/fhir/AuditEvent").status_code == 401
    for who in ("dr.a", "pt.a", "int.a"):
        r = client.get("/fhir/AuditEvent", headers=login(client, who))
        assert r.status_code == 403, who
        assert r.json()["issue"][0]["code"] == "forbidden"


def test_patient_sees_who_viewed_their_records_and_why(client: TestClient) -> None:
    r = client.get("/api/audit/my-views", headers=login(client, "pt.a"))
    assert r.status_code == 200
    items = r.json()["items"]
    assert len(items) == 3  # own views left out
    assert {i["who"] for i in items} == {"dr.a 医生", "dr.b 医生"}
    emergency = next(i for i in items if i["emergency"])
    assert emergency["purpose"] == "ETREAT" and emergency["purpose_display"]
    assert sum(not i["allowed"] for i in items) == 1
    other = client.get("/api/audit/my-views", headers=login(client, "pt.b")).json()
    assert len(other["items"]) == 1
    assert client.get("/api/audit/my-views", headers=login(client, "dr.a")).status_code == 403


@pytest.mark.postgres
def test_view_statistics_per_institution_and_day(client: TestClient, city: City) -> None:
    r = client.get("/api/audit/stats", headers=login(client, "op"))
    assert r.status_code == 200
    rows = {row["institution_id"]: row for row in r.json()["items"]}
    today = clock.today_cst().isoformat()
    assert rows[city.inst_a] == {"institution_id": city.inst_a, "day": today, "views": 1,
                                 "refused": 0, "flagged": 0}  # fmt: skip
    assert (rows[city.inst_b]["views"], rows[city.inst_b]["refused"],
            rows[city.inst_b]["flagged"]) == (2, 1, 1)  # fmt: skip
    only_b = client.get(f"/api/audit/stats?institution={city.inst_b}",
                        headers=login(client, "op")).json()["items"]  # fmt: skip
    assert [row["institution_id"] for row in only_b] == [city.inst_b]
    bad = client.get("/api/audit/stats?since=2025-02-01&until=2025-01-01",
                     headers=login(client, "op"))  # fmt: skip
    assert bad.status_code == 422 and "after" in bad.json()["issue"][0]["diagnostics"]
    assert client.get("/api/audit/stats", headers=login(client, "dr.a")).status_code == 403
