"""The inbox router and CLI: list failed messages, retry them."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from exchange.support import oru
from rhip.exchange.ingest import V2Ingest
from rhip.exchange.router import router
from rhip.kernel.crypto import IdentifierVault


def test_failed_messages_are_listed_and_retried_over_http(engine: Engine, sender_id: str) -> None:
    vault = IdentifierVault("test-secret")
    ingest = V2Ingest(engine, vault=vault)
    ingest.receive(oru("OK").encode(), "127.0.0.1")
    ingest.receive(oru("BAD", status="").encode(), "127.0.0.1")
    app = FastAPI()
    app.state.engine, app.state.vault = engine, vault
    app.include_router(router)
    client = TestClient(app)
    failed = client.get("/api/inbox", params={"status": "failed"}).json()
    assert [m["control_id"] for m in failed] == ["BAD"]
    assert "raw" not in failed[0] and "OBR-25" in failed[0]["error"]
    assert len(client.get("/api/inbox").json()) == 2
    result = client.post("/api/inbox/retry", json={"ids": [failed[0]["id"]]}).json()
    assert result[0]["status"] == "failed" and result[0]["ack_code"] == "AE"
    assert client.post("/api/inbox/retry", json={"ids": []}).status_code == 422
