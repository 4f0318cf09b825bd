"""Viewing and recognition over HTTP: auth, purpose of use, care relationship, audit, 4xx shapes."""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, insert, select

sys.path.insert(0, str(Path(__file__).parents[1]))  # tests/ for the exchange helpers

from exchange.test_viewing import T0, A, B, add_org, add_person, add_report
from rhip.api import app as app_module
from rhip.api.routers import recognition as recognition_router
from rhip.api.routers import viewing as viewing_router
from rhip.audit.models import audit_events
from rhip.exchange import recognition
from rhip.identity.models import registrations
from rhip.kernel.settings import Settings
from rhip.security.schemas import Principal, Role
from rhip.security.tokens import issue

SETTINGS = Settings(secret_key="test-secret-key-for-viewing", env="test")
DOCTOR = Principal("u-dr", "dr.li", Role.DOCTOR, institution_id=A)
STRANGER = Principal("u-dr2", "dr.wang", Role.DOCTOR, institution_id=B)
OPERATOR = Principal("u-op", "op", Role.OPERATOR)


def headers(who: Principal, purpose: str | None = "TREAT") -> dict[str, str]:
    h = {"Authorization": f"Bearer {issue(SETTINGS, who)}"}
    if purpose:
        h["X-Purpose-Of-Use"] = purpose
    return h


@pytest.fixture
def client(engine: Engine) -> TestClient:
    app = app_module.create_app(SETTINGS, engine)
    for module in (viewing_router, recognition_router):
        if module.__name__ not in app_module.ROUTERS:
            app.include_router(module.router)
    now = dt.datetime.now(dt.UTC)
    with engine.begin() as conn:
        add_org(conn, A)
        add_org(conn, B, "440305")
        add_person(conn, "p1")
        conn.execute(
            insert(registrations).values(
                id="reg1", person_id="p1", institution_id=A, outcome="new", registered_at=now
            )
        )
        recognition.add_qualification(
            conn, A, "*", passed=True, valid_from=T0 - dt.timedelta(days=1),
            valid_until=now + dt.timedelta(days=1),
        )  # fmt: skip
    return TestClient(app)


def audit_rows(engine: Engine) -> list[tuple]:
    with engine.connect() as conn:
        q = select(audit_events.c.patient_id, audit_events.c.status, audit_events.c.flagged)
        return [tuple(r) for r in conn.execute(q.order_by(audit_events.c.seq))]


def _reports(engine: Engine) -> str:
    recent = dt.datetime.now(dt.UTC) - dt.timedelta(days=1)
    with engine.begin() as conn:
        add_report(conn, "p1", B, T0)
        return add_report(conn, "p1", A, recent, obs=[
            dict(code="HGB", value_num=95, unit="g/L", std_code="718-7", abnormal_flag="L",
                 reference_range="115-150"),
        ])  # fmt: skip


@pytest.mark.postgres
def test_doctor_reads_timeline_detail_and_trend_and_each_read_is_audited(
    client: TestClient, engine: Engine
) -> None:
    rid = _reports(engine)
    h = headers(DOCTOR)
    r = client.get("/api/patients/p1/timeline?limit=1", headers=h)
    assert r.status_code == 200, r.text
    body = r.json()
    assert [i["id"] for i in body["items"]] == [rid] and body["next"]
    r2 = client.get(f"/api/patients/p1/timeline?before={body['next']}", headers=h)
    assert len(r2.json()["items"]) == 1 and r2.json()["next"] is None
    detail = client.get(f"/api/reports/{rid}", headers=h).json()
    assert detail["observations"][0]["abnormal"] is True and detail["abnormal_count"] == 1
    trend = client.get("/api/patients/p1/trend?code=718-7", headers=h).json()
    assert [p["value"] for p in trend["points"]] == [95]
    assert audit_rows(engine) == [("p1", 200, False)] * 4


@pytest.mark.postgres
def test_refusals_follow_the_policy_and_are_audited(client: TestClient, engine: Engine) -> None:
    _reports(engine)
    assert client.get("/api/patients/p1/timeline").status_code == 401
    no_purpose = client.get("/api/patients/p1/timeline", headers=headers(DOCTOR, None))
    assert no_purpose.status_code == 403
    assert no_purpose.json()["resourceType"] == "OperationOutcome"
    assert client.get("/api/patients/p1/timeline", headers=headers(STRANGER)).status_code == 403
    glass = client.get("/api/patients/p1/timeline", headers=headers(STRANGER, "ETREAT"))
    assert glass.status_code == 200
    assert client.get("/api/patients/p1/timeline", headers=headers(OPERATOR)).status_code == 403
    assert audit_rows(engine) == [
        ("p1", 403, False), ("p1", 403, False), ("p1", 200, True), ("p1", 403, False)
    ]  # fmt: skip


@pytest.mark.postgres
def test_bad_requests_get_specific_outcomes(client: TestClient, engine: Engine) -> None:
    h = headers(DOCTOR, "ETREAT")
    cases = {
        "/api/patients/bad%20id!/timeline": (400, "patient"),
        "/api/patients/p1/timeline?since=2024-05-01&until=2024-04-01": (422, "since"),
        "/api/patients/p1/timeline?since=yesterday": (422, "since"),
        "/api/patients/p1/timeline?kind=xray": (422, "kind"),
        "/api/patients/p1/timeline?before=zzz": (400, "before"),
        "/api/patients/nobody/timeline": (404, "patient"),
        "/api/reports/" + "0" * 32: (404, "report"),
        "/api/recognition/check?patient=p1&item=NOPE": (422, "item"),
    }
    for url, (status, where) in cases.items():
        r = client.get(url, headers=h)
        assert r.status_code == status, (url, r.text)
        issue_ = r.json()["issue"][0]
        assert issue_["expression"] == [where], (url, issue_)


@pytest.mark.postgres
def test_recognition_check_decide_and_stats(client: TestClient, engine: Engine) -> None:
    rid = _reports(engine)
    h = headers(DOCTOR)
    found = client.get("/api/recognition/check?patient=p1&item=718-7", headers=h)
    assert found.status_code == 200, found.text
    cands = found.json()["candidates"]
    assert [(c["report_id"], c["recognisable"]) for c in cands] == [(rid, True)]
    body = {"patient_id": "p1", "item": "718-7", "decision": "refused", "reason_code": "nope"}
    bad = client.post("/api/recognition/decisions", json=body, headers=h)
    assert bad.status_code == 422 and bad.json()["issue"][0]["expression"] == ["reason_code"]
    body.update(decision="recognised", reason_code=None, report_id=rid)
    ok = client.post("/api/recognition/decisions", json=body, headers=h)
    assert ok.status_code == 201, ok.text
    assert ok.json()["institution_id"] == A and ok.json()["decided_by"] == "dr.li"
    stats = client.get("/api/recognition/stats", headers=headers(OPERATOR))
    assert stats.json() == [
        {"institution_id": A, "institution_name": "医院org-a", "item_code": "718-7",
         "item_name": "血红蛋白", "avoided": 1, "refused": 0}
    ]  # fmt: skip
    assert client.get("/api/recognition/stats", headers=h).status_code == 403
    assert len(client.get("/api/recognition/rules", headers=h).json()) >= 30
