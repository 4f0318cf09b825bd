"""``POST /api/auth/token``, the auth gate, roles, purpose of use and audited reads over HTTP."""

from __future__ import annotations

import datetime as dt

import pytest
from fastapi import APIRouter, Depends, Request
from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, select

from rhip import audit
from rhip.api.auth import CurrentUser, PurposeOfUse, audited_read, require_roles
from rhip.audit.models import audit_events
from rhip.identity.models import persons
from rhip.kernel.errors import NotFound
from rhip.security import tokens
from rhip.security.schemas import Principal, Role
from security.support import SETTINGS, City, add_accounts, app_client, login, make_city

probe = APIRouter()


@probe.get("/api/test/whoami")
def whoami(user: CurrentUser) -> dict:
    return {"username": user.username, "role": user.role.value}


@probe.get("/api/test/ops", dependencies=[Depends(require_roles(Role.OPERATOR))])
def ops_only() -> dict:
    return {"ok": True}


@probe.get("/api/test/patients/{patient_id}/reports")
def reports(patient_id: str, request: Request, user: CurrentUser, purpose: PurposeOfUse) -> dict:
    with audited_read(request, user, purpose, patient_id=patient_id,
                      resource="DiagnosticReport", subtype="search") as conn:  # fmt: skip
        name = conn.execute(select(persons.c.name).where(persons.c.id == patient_id)).scalar()
        if name is None:
            raise NotFound("no such patient")
    return {"patient": name}


@pytest.fixture
def city(engine: Engine) -> City:
    made = make_city(engine)
    add_accounts(engine, made)
    return made


@pytest.fixture
def client(engine: Engine, city: City) -> TestClient:
    return app_client(engine, probe)


def _events(engine: Engine) -> list:
    with engine.connect() as conn:
        return conn.execute(select(audit_events).order_by(audit_events.c.seq)).all()


def test_token_good_and_bad(client: TestClient) -> None:
    r = client.post("/api/auth/token", data={"username": "dr.a", "password": "s3cret-pass-word"})
    assert r.status_code == 200
    body = r.json()
    assert body["token_type"] == "bearer" and body["access_token"].count(".") == 2
    assert r.headers["cache-control"] == "no-store"
    me = client.get("/api/auth/me", headers={"Authorization": f"Bearer {body['access_token']}"})
    assert me.json()["role"] == "doctor"
    bad = client.post("/api/auth/token", data={"username": "dr.a", "password": "nope-nope"})
    assert bad.status_code == 401
    assert bad.json()["issue"][0]["code"] == "login"
    assert bad.json()["issue"][0]["diagnostics"] == "incorrect username or password"
    missing = client.post("/api/auth/token", data={"username": "dr.a"})
    assert missing.status_code == 422 and missing.json()["resourceType"] == "OperationOutcome"


def test_without_a_token_everything_but_public_paths_is_401(client: TestClient) -> None:
    for path in ("/api/test/whoami", "/fhir/Patient", "/api/registry/institutions",
                 "/fhir/AuditEvent", "/api/audit/stats", "/no/such/path"):  # fmt: skip
        r = client.get(path)
        assert r.status_code == 401, path
        assert r.headers["www-authenticate"] == 'Bearer realm="rhip"'
        assert r.json()["resourceType"] == "OperationOutcome"
    for path in ("/fhir/metadata", "/health", "/openapi.json", "/docs"):
        assert client.get(path).status_code == 200, path


def test_bad_tokens_are_401_with_invalid_token(client: TestClient, city: City) -> None:
    expired = tokens.issue(
        SETTINGS, Principal("u", "dr.a", Role.DOCTOR, institution_id=city.inst_a),
        dt.timedelta(minutes=5), now=dt.datetime.now(dt.UTC) - dt.timedelta(hours=1),
    )  # fmt: skip
    for token, message in ((expired, "expired"), ("x.y.z", "malformed")):
        r = client.get("/api/test/whoami", headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 401
        assert 'error="invalid_token"' in r.headers["www-authenticate"]
        assert message in r.json()["issue"][0]["diagnostics"]
    r = client.get("/api/test/whoami", headers={"Authorization": "Basic abc"})
    assert r.status_code == 401 and 'error="invalid_request"' in r.headers["www-authenticate"]


def test_cookie_carries_the_same_token_for_pages(client: TestClient) -> None:
    r = client.post("/api/auth/token?cookie=true",
                    data={"username": "pt.a", "password": "s3cret-pass-word"})  # fmt: skip
    assert "httponly" in r.headers["set-cookie"].lower()
    assert "samesite=lax" in r.headers["set-cookie"].lower()  # as the login page's (web.md)
    assert client.get("/api/test/whoami").json() == {"username": "pt.a", "role": "patient"}
    client.post("/api/auth/logout")
    assert client.get("/api/test/whoami").status_code == 401


def test_role_of_another_endpoint_is_403(client: TestClient) -> None:
    assert client.get("/api/test/ops", headers=login(client, "op")).status_code == 200
    r = client.get("/api/test/ops", headers=login(client, "dr.a"))
    assert r.status_code == 403 and r.json()["issue"][0]["code"] == "forbidden"


def test_unknown_purpose_is_400(client: TestClient, city: City) -> None:
    headers = login(client, "dr.a") | {"X-Purpose-Of-Use": "CURIOSITY"}
    r = client.get(f"/api/test/patients/{city.patient_a}/reports", headers=headers)
    assert r.status_code == 400
    assert r.json()["issue"][0]["expression"] == ["X-Purpose-Of-Use"]


@pytest.mark.postgres
def test_clinical_reads_are_decided_and_every_one_audited(
    client: TestClient, city: City, engine: Engine
) -> None:
    dr = login(client, "dr.a")
    url = "/api/test/patients/{}/reports"
    cases = [  # (headers, patient, status)
        (dr | {"X-Purpose-Of-Use": "TREAT"}, city.patient_a, 200),  # care relationship
        (dr, city.patient_a, 403),  # missing purpose
        (dr | {"X-Purpose-Of-Use": "TREAT"}, city.patient_b, 403),  # no care relationship
        (dr | {"X-Purpose-Of-Use": "ETREAT"}, city.patient_b, 200),  # break-glass, flagged
        (login(client, "pt.a"), city.patient_a, 200),  # own record
        (login(client, "pt.a"), city.patient_b, 404),  # another's: existence hidden
        (login(client, "op"), city.patient_a, 403),  # operators never read contents
        (login(client, "int.a"), city.patient_a, 403),  # integrators only submit
    ]
    for headers, patient, status in cases:
        r = client.get(url.format(patient), headers=headers)
        assert r.status_code == status, (headers, r.text)
        if status != 200:
            assert r.json()["resourceType"] == "OperationOutcome"
            assert patient not in r.text and "患者" not in r.text
    events = _events(engine)
    assert [e.status for e in events] == [c[2] for c in cases]
    assert [e.outcome for e in events] == ["0" if c[2] == 200 else "4" for c in cases]
    assert [e.flagged for e in events] == [False, False, False, True, False, False, False, False]
    first = events[0]
    assert (first.username, first.role, first.institution_id, first.patient_id, first.purpose,
            first.subtype, first.action) == ("dr.a", "doctor", city.inst_a, city.patient_a,
                                             "TREAT", "search", "E")  # fmt: skip
    assert first.client_address == "testclient"


def test_unknown_patient_is_404_and_audited(client: TestClient, city: City, engine) -> None:
    headers = login(client, "dr.a") | {"X-Purpose-Of-Use": "ETREAT"}
    r = client.get("/api/test/patients/p-does-not-exist/reports", headers=headers)
    assert r.status_code == 404 and r.json()["issue"][0]["code"] == "not-found"
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(audit_events)).scalar() == 1
        event = conn.execute(select(audit_events)).one()
    assert (event.outcome, event.status, event.flagged) == ("4", 404, True)
    assert audit.verify(engine, audit.chain_key(SETTINGS.secret_key)).ok
