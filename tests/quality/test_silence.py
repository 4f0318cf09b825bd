"""Silent feeds: an institution quiet for longer than k × its median gap is flagged (数据断流)."""

from __future__ import annotations

import datetime as dt

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, insert

from exchange.support import add_institution
from factories import SETTINGS, token_headers
from rhip.api.app import create_app
from rhip.exchange.models import inbox_messages
from rhip.kernel.clock import now
from rhip.kernel.ids import make_credit_code
from rhip.quality import feed_gaps, silent_feeds

pytestmark = pytest.mark.postgres
NOW = now()


def arrivals(engine: Engine, institution_id: str, minutes_ago: list[float], status="processed"):
    rows = [
        {
            "channel": "mllp", "sender": institution_id, "institution_id": institution_id,
            "peer": "", "status": status, "raw": b"x", "size": 1,
            "received_at": NOW - dt.timedelta(minutes=m),
        }
        for m in minutes_ago
    ]  # fmt: skip
    with engine.begin() as conn:
        conn.execute(insert(inbox_messages), rows)


@pytest.fixture
def feeds(engine: Engine) -> dict[str, str]:
    ids = {
        name: add_institution(engine, make_credit_code(f"12440300MB2F34{n}0"))
        for n, name in enumerate(["quiet", "busy", "new", "slow"])
    }
    arrivals(engine, ids["quiet"], [50 + 10 * i for i in range(10)])  # every 10 min, 50 min ago
    arrivals(engine, ids["busy"], [5 + 10 * i for i in range(10)])  # every 10 min, 5 min ago
    arrivals(engine, ids["new"], [300, 200])  # too few gaps to know its rhythm
    # twice a day, last 20 h ago: quiet for long, but not long for this feed
    arrivals(engine, ids["slow"], [20 * 60 + 12 * 60 * i for i in range(8)])
    arrivals(engine, ids["busy"], [1, 2, 3], status="duplicate")  # resends are not arrivals
    return ids


def test_a_feed_quiet_for_k_times_its_usual_gap_is_silent(engine: Engine, feeds) -> None:
    silent = silent_feeds(engine, NOW)
    assert [f.institution_id for f in silent] == [feeds["quiet"]]
    (quiet,) = silent
    assert quiet.median_gap_s == pytest.approx(600) and quiet.quiet_s == pytest.approx(3000, abs=1)
    with engine.connect() as conn:
        gaps = {f.institution_id: f for f in feed_gaps(conn, NOW)}
    assert gaps[feeds["busy"]].messages == 10 and not gaps[feeds["busy"]].silent
    assert gaps[feeds["new"]].median_gap_s is None and not gaps[feeds["new"]].silent
    assert gaps[feeds["slow"]].median_gap_s == pytest.approx(12 * 3600)
    # an hour later the busy feed is silent too (65 min > 3 × 10 min)
    later = [f.institution_id for f in silent_feeds(engine, NOW + dt.timedelta(hours=1))]
    assert later == sorted([feeds["quiet"], feeds["busy"]])


def test_silence_is_served_over_http(engine: Engine, feeds) -> None:
    http = TestClient(create_app(SETTINGS, engine=engine), headers=token_headers("operator"))
    body = http.get("/api/quality/silence").json()
    assert [f["institution_id"] for f in body] == [feeds["quiet"]] and body[0]["silent"]
    card = http.get(f"/api/quality/institutions/{feeds['quiet']}").json()
    assert card["feed"]["silent"] is True and card["feed"]["median_gap_s"] == pytest.approx(600)
    assert TestClient(http.app).get("/api/quality/silence").status_code == 401
    doctor = token_headers("doctor", institution_id=feeds["quiet"], purpose="TREAT")
    assert http.get("/api/quality/silence", headers=doctor).status_code == 403
