"""Quality control on the HL7 v2 path: error rules give AE + ERR and write nothing; warning rules
accept and store the finding; the scorecard adds up to what was sent."""

from __future__ import annotations

import datetime as dt

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, select

from exchange.support import ack_fields, oru
from factories import SETTINGS, token_headers
from rhip.api.app import create_app
from rhip.exchange import terminology
from rhip.exchange.ingest import V2Ingest
from rhip.exchange.models import inbox_messages, observations, reports
from rhip.kernel.clock import CST, now, today_cst
from rhip.quality.models import quality_daily, quality_findings

pytestmark = pytest.mark.postgres
PEER = "127.0.0.1"


def stamp(hours_ago: float) -> str:
    return (now() - dt.timedelta(hours=hours_ago)).astimezone(CST).strftime("%Y%m%d%H%M%S")


def fresh(control_id: str, obx: list[str], *, sex: str = "F", obr7: float = 2, obr22=1.0) -> str:
    """An ORU collected ``obr7`` hours and issued ``obr22`` hours ago, from a patient of ``sex``."""
    text = oru(control_id, obx=obx, obr22=obr22 if isinstance(obr22, str) else stamp(obr22))
    text = text.replace("|20240301080000|", f"|{stamp(obr7)}|")
    return text.replace("||19491231|F", f"||19491231|{sex}")


GOOD_OBX = [
    "OBX|1|NM|GLU^葡萄糖^L||100|mg/dL|70-110|N|||F",
    "OBX|2|NM|HGB^血红蛋白^L||13.5|g/dL|11-16|N|||F",
]


def client(engine: Engine) -> TestClient:
    """The platform app, signed in as an operator (scorecards are statistics)."""
    return TestClient(create_app(SETTINGS, engine=engine), headers=token_headers("operator"))


def _count(engine: Engine, table) -> int:
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(table)).scalar_one()


def _err(ack: bytes) -> tuple[str, str, str, str]:
    seg = ack_fields(ack)
    err = seg.get("ERR", [""] * 9)
    return seg["MSA"][1], err[2], err[3].split("^")[0], err[8]


@pytest.mark.parametrize(
    ("message", "rule", "err2", "words"),
    [
        (
            fresh("M1", ["OBX|1|CWE|2106-3^尿妊娠试验^LN||NEG^阴性||||||F"], sex="M"),
            "consistency.sex_specific", "OBX^1^3^1", "is for women but the patient (PID-8) is male",
        ),
        (
            fresh("M2", GOOD_OBX, obr7=1, obr22=3),
            "consistency.issued_after_collected", "OBR^1^22^1", "before OBR-7 collection time",
        ),
        (
            fresh("M3", GOOD_OBX, obr22="20990101000000", obr7=1),
            "validity.future_issued", "OBR^1^22^1", "2099-01-01 00:00 (CST) is in the future",
        ),
        (
            fresh("M4", ["OBX|1|NM|GLU^葡萄糖^L||5..6|mmol/L|3.9-6.1|N|||F"]),
            "validity.numeric", "OBX^1^5^1", "'5..6' is not a number",
        ),
    ],
    ids=["male-pregnancy-test", "issued-before-collection", "future-date", "nm-not-numeric"],
)  # fmt: skip
def test_an_error_rule_rejects_with_ae_err_and_writes_nothing(
    engine: Engine, ingest: V2Ingest, message: str, rule: str, err2: str, words: str
) -> None:
    terminology.load_code_map(engine, terminology.STARTER)
    ack = ingest.receive(message.encode(), PEER)
    code, location, hl7_code, text = _err(ack)
    assert (code, location, hl7_code) == ("AE", err2, "102")
    assert f"[{rule}]" in text and words in text
    for table in (reports, observations, quality_findings, quality_daily):
        assert _count(engine, table) == 0
    with engine.connect() as conn:
        row = conn.execute(select(inbox_messages)).mappings().one()
    assert row["status"] == "failed" and f"[{rule}]" in row["error"]
    assert row["raw"] == message.encode()


def test_a_warning_rule_accepts_and_stores_the_finding(
    engine: Engine, ingest: V2Ingest, sender_id: str
) -> None:
    terminology.load_code_map(engine, terminology.STARTER)
    obx = [*GOOD_OBX, "OBX|3|NM|XYZ9^自定义项目^L||1.2|g/L|1-2|N|||F",
           "OBX|4|NM|WBC^白细胞^L||6.1|cells|4-10|N|||F"]  # fmt: skip
    ack = ingest.receive(fresh("W1", obx).encode(), PEER)
    assert ack_fields(ack)["MSA"][1] == "AA"
    with engine.connect() as conn:
        (report_id,) = conn.execute(select(reports.c.id)).scalars()
        found = conn.execute(select(quality_findings).order_by(quality_findings.c.id)).mappings()
        found = [(f["rule_id"], f["field"], f["report_id"], f["severity"]) for f in found]
        obs = conn.execute(
            select(observations.c.code, observations.c.std_code, observations.c.std_value,
                   observations.c.std_unit, observations.c.value_num, observations.c.unit)
            .order_by(observations.c.seq)
        ).all()  # fmt: skip
    assert found == [
        ("validity.code_mapped", "OBX[3].3", report_id, "warning"),
        ("validity.unit_known", "OBX[4].6", report_id, "warning"),
    ]
    glucose, hgb, unmapped, wbc = obs
    assert glucose[1:4] == ("14749-6", pytest.approx(5.55), "mmol/L")
    assert glucose[4:] == (100.0, "mg/dL")  # the original is kept
    assert hgb[1:4] == ("718-7", pytest.approx(135.0), "g/L")
    assert unmapped[1:4] == (None, None, None)
    assert wbc[1:4] == ("6690-2", None, "10*9/L")


def test_the_scorecard_adds_up_to_what_was_sent(
    engine: Engine, ingest: V2Ingest, sender_id: str
) -> None:
    terminology.load_code_map(engine, terminology.STARTER)
    for n in range(3):  # clean
        assert b"MSA|AA" in ingest.receive(fresh(f"C{n}", GOOD_OBX).encode(), PEER)
    late = fresh("L1", GOOD_OBX, obr7=40, obr22=30)  # issued 30 h ago: a timeliness warning
    assert b"MSA|AA" in ingest.receive(late.encode(), PEER)
    future = fresh("F1", GOOD_OBX, obr22="20990101000000", obr7=1)
    assert b"MSA|AE" in ingest.receive(future.encode(), PEER)

    http = client(engine)
    day = today_cst().isoformat()
    body = http.get(
        f"/api/quality/institutions/{sender_id}", params={"from": day, "to": day}
    ).json()
    rules = {r["rule_id"]: r for r in body["rules"]}
    timely = rules["timeliness.upload_delay"]
    assert (timely["checked"], timely["passed"], timely["warnings"], timely["errors"]) == (
        4,
        3,
        1,
        0,
    )
    assert timely["pass_rate"] == 0.75 and timely["days"][0]["day"] == day
    future_rule = rules["validity.future_issued"]
    assert (future_rule["checked"], future_rule["passed"], future_rule["errors"]) == (5, 4, 1)
    mapped = rules["validity.code_mapped"]
    assert (mapped["checked"], mapped["passed"], mapped["warnings"]) == (8, 8, 0)
    assert rules["silence.feed_gap"]["checked"] == 0
    assert body["feed"]["messages"] == 5 and body["feed"]["silent"] is False
    missing = http.get("/api/quality/institutions/nope")
    assert missing.status_code == 404 and missing.json()["resourceType"] == "OperationOutcome"
    assert (
        http.get(f"/api/quality/institutions/{sender_id}?from=2024-02-01&to=2024-01-01").status_code
        == 422
    )
    own = token_headers("integrator", institution_id=sender_id)
    assert http.get(f"/api/quality/institutions/{sender_id}", headers=own).status_code == 403
