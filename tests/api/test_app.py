"""The app factory, health probe, CapabilityStatement and error shapes."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from factories import SETTINGS, token_headers
from rhip.api import create_app
from rhip.kernel.settings import Settings


@pytest.fixture
def client(engine: Engine) -> TestClient:
    return TestClient(create_app(SETTINGS, engine=engine))


@pytest.mark.postgres
def test_health_reports_database_and_schema_revision(client: TestClient, backend: str) -> None:
    r = client.get("/health")
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "ok"
    assert body["database"] == ("sqlite" if backend == "sqlite" else "postgresql")
    assert body["schema_revision"]


def test_capability_statement_is_fhir_r4_and_lists_served_resources(client: TestClient) -> None:
    r = client.get("/fhir/metadata")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/fhir+json")
    cs = r.json()
    assert cs["resourceType"] == "CapabilityStatement"
    assert cs["fhirVersion"] == "4.0.1"
    types = {res["type"] for res in cs["rest"][0]["resource"]}
    assert {"Organization", "Patient", "DiagnosticReport", "Observation"} <= types
    assert {i["code"] for i in cs["rest"][0]["interaction"]} == {"transaction", "batch"}
    # every resource the statement lists must really answer a search, for a caller allowed to
    op = token_headers("operator")
    dr = token_headers("doctor", institution_id="org-1", purpose="ETREAT")
    clinical = {"DiagnosticReport", "Observation"}
    for t in types:
        params = {"_count": 1} | ({"patient": "Patient/p1"} if t in clinical else {})
        r = client.get(f"/fhir/{t}", params=params, headers=dr if t in clinical else op)
        assert r.status_code == 200, (t, r.text)


def test_unknown_endpoint_is_an_operation_outcome(client: TestClient) -> None:
    assert client.get("/fhir/NoSuchThing/1").status_code == 401  # deny by default
    r = client.get("/fhir/NoSuchThing/1", headers=token_headers("operator"))
    assert r.status_code == 404
    assert r.json()["resourceType"] == "OperationOutcome"
    assert r.json()["issue"][0]["code"] == "not-found"


def test_openapi_docs_are_served(client: TestClient) -> None:
    assert client.get("/openapi.json").status_code == 200
    assert client.get("/docs").status_code == 200


def test_public_paths_need_no_token_and_the_rest_is_401(client: TestClient) -> None:
    for path in ("/health", "/fhir/metadata", "/openapi.json", "/docs", "/redoc"):
        assert client.get(path).status_code == 200, path
    for path in ("/fhir/Organization", "/api/registry/institutions", "/api/inbox", "/x"):
        r = client.get(path)
        assert r.status_code == 401, path
        assert r.headers["www-authenticate"] == 'Bearer realm="rhip"'
        assert r.json()["resourceType"] == "OperationOutcome"


def test_app_with_mllp_listens_for_hl7_and_acks(engine: Engine) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    settings = Settings(env="test", mllp_port=port)
    with (
        TestClient(create_app(settings, engine=engine, mllp=True)),
        socket.create_connection(("127.0.0.1", port), timeout=5) as conn,
    ):
        msg = "MSH|^~\\&|LIS|UNKNOWN|RHIP|RHIP|20260101120000||ORU^R01|C1|P|2.5.1\r"
        conn.sendall(b"\x0b" + msg.encode() + b"\x1c\r")
        ack = conn.recv(65536).decode()
    assert ack.startswith("\x0bMSH|")
    # the sender is not a registered institution: refused, with the reason in ERR
    assert "MSA|AR|C1" in ack
    assert "\rERR|" in ack
