"""Mutual recognition (互认): every reason code, the recognisable case, decisions, stats, rules."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from sqlalchemy import Engine

from exchange.test_viewing import FAR, T0, A, B, add_org, add_person, add_report
from rhip.exchange import recognition
from rhip.kernel.errors import Conflict, InvalidInput, NotFound

AT = T0 + dt.timedelta(days=10)
HGB = "718-7"  # hemoglobin: 7 days, province scope, EQA required, whole blood


def hgb(value: float = 135.0, **extra) -> list[dict]:
    return [dict(code="HGB", value_num=value, unit="g/L", std_code=HGB, **extra)]


@pytest.fixture
def world(engine: Engine) -> dict[str, str]:
    """Candidates of HGB for p1, one per reason, and one recognisable."""
    recent = AT - dt.timedelta(days=2)
    with engine.begin() as conn:
        add_org(conn, A)
        add_org(conn, B, "440305")
        add_org(conn, FAR, "110105")
        add_person(conn, "p1")
        year = dict(valid_from=T0 - dt.timedelta(days=60), valid_until=T0 + dt.timedelta(days=300))
        recognition.add_qualification(conn, A, "*", passed=True, **year)
        recognition.add_qualification(conn, FAR, HGB, passed=True, **year)
        recognition.add_qualification(conn, B, HGB, passed=False, **year)
        ids = {
            "ok": add_report(conn, "p1", A, recent, obs=hgb()),
            "expired": add_report(conn, "p1", A, AT - dt.timedelta(days=9), obs=hgb()),
            "not_final": add_report(conn, "p1", A, recent, status="preliminary", obs=hgb()),
            "cancelled": add_report(conn, "p1", A, recent, status="cancelled", current=False,
                                    obs=hgb()),
            "lab_not_qualified": add_report(conn, "p1", B, recent, obs=hgb()),
            "different_specimen": add_report(conn, "p1", A, recent, specimen="血清", obs=hgb()),
            "out_of_scope": add_report(conn, "p1", FAR, recent, obs=hgb()),
            "no_valid_result": add_report(conn, "p1", A, recent, obs=hgb(status="W")),
        }  # fmt: skip
        add_report(conn, "p1", A, AT + dt.timedelta(days=1), obs=hgb())  # after the check: unseen
        add_report(conn, "p2", A, recent, obs=hgb())  # another patient
    return ids


@pytest.mark.postgres
def test_each_candidate_gets_its_specific_reason(engine: Engine, world: dict[str, str]) -> None:
    with engine.connect() as conn:
        result = recognition.check(conn, "p1", HGB, AT, requester=A)
    by_id = {c["report_id"]: c for c in result["candidates"]}
    assert set(by_id) == set(world.values())
    for expected, rid in world.items():
        cand = by_id[rid]
        if expected == "ok":
            assert cand["recognisable"] and cand["reasons"] == [] and cand["hr_label"] == "粤HR"
        else:
            assert not cand["recognisable"]
            assert cand["reasons"] == [expected], (expected, cand["reasons"])
    assert result["recognisable"] is True and result["item"]["validity_days"] == 7


@pytest.mark.postgres
def test_without_a_requester_scope_is_not_judged(engine: Engine, world: dict[str, str]) -> None:
    with engine.connect() as conn:
        cands = recognition.check(conn, "p1", HGB, AT)["candidates"]
    far = next(c for c in cands if c["report_id"] == world["out_of_scope"])
    assert far["recognisable"]


@pytest.mark.postgres
def test_exam_items_match_the_report_code_and_expire_later(engine: Engine) -> None:
    with engine.begin() as conn:
        add_org(conn, A)
        ct = add_report(conn, "p1", A, AT - dt.timedelta(days=60), kind="exam", code="24627-2")
        old = add_report(conn, "p1", A, AT - dt.timedelta(days=100), kind="exam", code="24627-2")
    with engine.connect() as conn:
        cands = recognition.check(conn, "p1", "24627-2", AT, requester=A)["candidates"]
    assert [(c["report_id"], c["reasons"]) for c in cands] == [(ct, []), (old, ["expired"])]


def test_unknown_item_is_rejected(engine: Engine) -> None:
    with engine.connect() as conn, pytest.raises(InvalidInput, match="recognition list"):
        recognition.check(conn, "p1", "NOPE-1", AT)


@pytest.mark.postgres
def test_decisions_are_validated_and_counted(engine: Engine, world: dict[str, str]) -> None:
    with engine.begin() as conn:
        add_org(conn, "org-c", "440306")
        ok = recognition.record_decision(
            conn, patient_id="p1", item=HGB, decision="recognised", institution_id=A,
            decided_by="dr1", report_id=world["ok"], at=AT,
        )  # fmt: skip
        assert ok["source_institution_id"] == A
        recognition.record_decision(
            conn, patient_id="p1", item=HGB, decision="refused", reason_code="emergency",
            institution_id=A, decided_by="dr1", at=AT,
        )  # fmt: skip
        recognition.record_decision(
            conn, patient_id="p1", item=HGB, decision="recognised", institution_id="org-c",
            decided_by="dr2", report_id=world["ok"], at=AT,
        )  # fmt: skip
    bad = [
        (InvalidInput, dict(decision="refused", reason_code="bored")),
        (InvalidInput, dict(decision="refused", reason_code="other")),  # needs a note
        (InvalidInput, dict(decision="refused")),
        (InvalidInput, dict(decision="recognised")),  # needs the report used
        (InvalidInput, dict(decision="maybe", report_id=world["ok"])),
        (Conflict, dict(decision="recognised", report_id=world["expired"])),
        (InvalidInput, dict(decision="recognised", report_id="f" * 32)),
        (NotFound, dict(decision="refused", reason_code="emergency", institution_id="org-x")),
    ]
    for error, fields in bad:
        args = dict(patient_id="p1", item=HGB, institution_id=A, decided_by="dr1", at=AT)
        with engine.begin() as conn, pytest.raises(error):
            recognition.record_decision(conn, **{**args, **fields})
    with engine.connect() as conn:
        rows = recognition.stats(conn)
        only_c = recognition.stats(conn, institution="org-c")
        later = recognition.stats(conn, since=AT + dt.timedelta(days=1))
    counts = {(r["institution_id"], r["item_code"]): (r["avoided"], r["refused"]) for r in rows}
    assert counts == {(A, HGB): (1, 1), ("org-c", HGB): (1, 0)}
    assert [r["item_name"] for r in only_c] == ["血红蛋白"] and later == []


def test_shipped_rules_cover_common_items_within_national_ranges() -> None:
    rules = recognition.load_rules()
    assert len(rules) >= 30
    for rule in rules.values():
        low, high = (7, 30) if rule.kind == "lab" else (30, 180)
        assert low <= rule.validity_days <= high, rule
        assert rule.hr_label.endswith("HR")
    for code in ("718-7", "1742-6", "14682-9", "14749-6", "4548-4", "14647-2", "24627-2"):
        assert code in rules
    assert not rules["24627-2"].eqa_required and rules["718-7"].eqa_required


def test_a_bad_rules_file_names_its_line(tmp_path: Path) -> None:
    src = recognition.RULES_FILE.read_text(encoding="utf-8").splitlines()
    bad = tmp_path / "rules.csv"
    bad.write_text("\n".join([src[0], src[1].replace(",7,", ",seven,")]), encoding="utf-8")
    with pytest.raises(InvalidInput, match="line 2"):
        recognition.load_rules(bad)
