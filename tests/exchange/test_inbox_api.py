"""The inbox router and CLI: list failed messages, retry them — operators only."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy import Engine

from exchange.support import RID, oru
from factories import SETTINGS, token_headers
from rhip.api import create_app
from rhip.exchange.ingest import V2Ingest


def test_failed_messages_are_listed_and_retried_over_http(engine: Engine, sender_id: str) -> None:
    app = create_app(SETTINGS, engine=engine)
    ingest = V2Ingest(engine, vault=app.state.vault)
    ingest.receive(oru("OK").encode(), "127.0.0.1")
    ingest.receive(oru("BAD", status="").encode(), "127.0.0.1")
    client = TestClient(app, headers=token_headers("operator"))
    failed = client.get("/api/inbox", params={"status": "failed"}).json()
    assert [m["control_id"] for m in failed] == ["BAD"]
    assert "raw" not in failed[0] and "OBR-25" in failed[0]["error"]
    assert len(client.get("/api/inbox").json()) == 2
    result = client.post("/api/inbox/retry", json={"ids": [failed[0]["id"]]}).json()
    assert result[0]["status"] == "failed" and result[0]["ack_code"] == "AE"
    assert client.post("/api/inbox/retry", json={"ids": []}).status_code == 422
    assert RID not in str(client.get("/api/inbox").json())


def test_the_inbox_is_for_operators(engine: Engine, sender_id: str) -> None:
    client = TestClient(create_app(SETTINGS, engine=engine))
    r = client.get("/api/inbox")
    assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Bearer")
    for who in (token_headers("doctor", institution_id=sender_id, purpose="TREAT"),
                token_headers("integrator", institution_id=sender_id),
                token_headers("patient", patient_id="p1")):  # fmt: skip
        assert client.get("/api/inbox", headers=who).status_code == 403
        r = client.post("/api/inbox/retry", json={"ids": [1]}, headers=who)
        assert r.status_code == 403 and r.json()["resourceType"] == "OperationOutcome"
