"""The synthetic report stream: deterministic, realistic, and accepted by the real ingest."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import Engine, func, select

from rhip.exchange.ack import ack_code_of
from rhip.exchange.ingest import V2Ingest
from rhip.exchange.models import observations, reports
from rhip.kernel import clock
from rhip.registry.models import districts, institutions
from rhip.store import bulk_insert
from rhip.synth.city import build_city
from rhip.synth.people import generate
from rhip.synth.reports import generate_reports
from rhip.synth.reports_render import to_hl7, to_ndjson, write_files

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from exchange.support import resolver


@pytest.fixture(scope="module")
def city_people():
    city = build_city(5)
    _, regs = generate(400, city.institutions, 5)
    return city, regs


def test_same_seed_same_stream_and_lab_panels_are_rich(city_people) -> None:
    city, regs = city_people
    r1, o1 = generate_reports(regs, city.institutions, 3000, seed=9)
    r2, o2 = generate_reports(regs, city.institutions, 3000, seed=9)
    pd.testing.assert_frame_equal(r1, r2)
    pd.testing.assert_frame_equal(o1, o2)
    assert not r1.equals(generate_reports(regs, city.institutions, 3000, seed=10)[0])
    lab = r1.loc[r1["kind"] == "lab", "report"]
    per_report = o1[o1["report"].isin(lab)].groupby("report").size()
    assert len(per_report) == len(lab) and per_report.min() >= 10
    assert o1["loinc_code"].str.fullmatch(r"\d{1,6}-\d").all()  # LOINC check-digit shape
    assert set(o1["flag"]) >= {"H", "L", "N"}
    counts = r1["status"].value_counts()
    assert counts["F"] == 3000 and 60 < counts["P"] < 260 and 5 < counts["C"] < 70
    exams = o1[o1["value_type"] == "TX"]["value_text"]
    assert exams.str.contains("[\u4e00-\u9fff]").all() and len(exams) > 100
    # every preliminary is issued before its final, every correction after
    order = r1.groupby("filler")["status"].agg("".join)
    assert set(order) <= {"F", "PF", "FC", "PFC"}


@pytest.mark.postgres
def test_every_hl7_message_is_accepted_by_the_real_ingest(engine: Engine, city_people) -> None:
    city, regs = city_people
    reps, obs = generate_reports(regs, city.institutions, 150, seed=3, imaging=0.2)
    used = city.institutions[city.institutions["id"].isin(reps["institution_id"])]
    with engine.begin() as conn:
        bulk_insert(conn, districts, city.districts)
        now = clock.now()
        bulk_insert(conn, institutions, used.assign(created_at=now, updated_at=now, part_of=None))
    ingest = V2Ingest(engine, resolver)
    messages = to_hl7(reps, obs)
    assert any(b"GB 18030-2000" in m for m in messages)
    acks = ingest.receive_many([(m, "127.0.0.1", None) for m in messages])
    codes = [ack_code_of(a) for a in acks]
    assert codes == ["AA"] * len(messages), [a for a in acks if ack_code_of(a) != "AA"][:1]
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(reports)).scalar_one() == len(reps)
        n_obs = conn.execute(select(func.count()).select_from(observations)).scalar_one()
    assert n_obs == len(obs)


def test_ndjson_lines_are_transaction_bundles(city_people, tmp_path: Path) -> None:
    city, regs = city_people
    reps, obs = generate_reports(regs, city.institutions, 80, seed=4, imaging=0.3)
    lines = list(to_ndjson(reps, obs))
    assert len(lines) == len(reps)
    for line, row in zip(lines, reps.itertuples(), strict=True):
        bundle = json.loads(line)
        assert (bundle["resourceType"], bundle["type"]) == ("Bundle", "transaction")
        kinds = [e["resource"]["resourceType"] for e in bundle["entry"]]
        report = bundle["entry"][0]["resource"]
        assert report["subject"]["reference"] == (
            f"Patient?identifier=urn:rhip:id:mrn:{row.credit_code}|{row.mrn}"
        )
        if row.kind == "lab":
            assert kinds[0] == "DiagnosticReport" and kinds.count("Observation") >= 10
        else:
            assert report["conclusion"] and report["presentedForm"]
    paths = write_files(reps, obs, tmp_path, seed=4)
    assert paths["hl7"].read_bytes().count(b"\x1c\r") == len(reps)
    assert sum(1 for p in paths["ndjson"].glob("*.ndjson") for _ in p.open()) == len(reps)
