"""Each shipped quality rule fires on the bad case and stays quiet on the good one (no database)."""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path

import pandas as pd
import pytest

from rhip.exchange.errors import Location
from rhip.exchange.oru import ObservationIn, ReportIn
from rhip.exchange.reports import Batch
from rhip.exchange.values import Value
from rhip.quality import CHECKS, Frames, QualityContext, check, default_rules, load_rules
from rhip.quality.rules import RuleError, rule
from rhip.quality.service import check_many

NOW = dt.datetime(2024, 3, 1, 4, 0, tzinfo=dt.UTC)
COLLECTED = dt.datetime(2024, 3, 1, 0, 0, tzinfo=dt.UTC)
ISSUED = dt.datetime(2024, 3, 1, 2, 30, tzinfo=dt.UTC)


def obs(seq: int = 1, code: str = "GLU", **kw) -> ObservationIn:
    values = dict(
        value=Value("NM", num=5.6, text="5.6"), unit="mmol/L", reference_range="3.9-6.1",
        observed_at=COLLECTED, location=Location("OBX", seq),
    )  # fmt: skip
    values.update(kw)
    return ObservationIn(
        seq=seq, code_system=None, code=code, display="", abnormal_flag=None, status="F",
        **values,
    )  # fmt: skip


def report(observations=None, **kw) -> ReportIn:
    values = dict(
        obr=Location("OBR", 1), code_system=None, code="BIO", display="", status="final",
        placer_number="P1", filler_number="F1", collected_at=COLLECTED, issued_at=ISSUED,
        section="CH",
    )  # fmt: skip
    values.update(kw)
    return ReportIn(observations=list(observations or [obs()]), **values)


def standard(frames: Frames, mapped=True, unit_status="ok", std_code=None) -> pd.DataFrame:
    n = len(frames.observations)
    return pd.DataFrame(
        {
            "std_system": ["http://loinc.org"] * n,
            "std_code": [std_code] * n,
            "std_display": [None] * n,
            "std_value": [None] * n,
            "std_unit": ["mmol/L"] * n,
            "mapped": [mapped] * n,
            "unit_status": [unit_status] * n,
        }
    )


def run(rule_id: str, reports, gender="female", **std) -> list:
    batch = Batch("org-1", [("p-1", r) for r in reports], ISSUED)
    frames = Frames.of(batch, {"p-1": gender})
    frames = frames.with_standard(standard(frames, **std))
    ctx = QualityContext("org-1", NOW, gender={"p-1": gender})
    findings = check(frames, ctx, [rule(rule_id)])
    assert set(findings.counts) == {rule_id}
    return list(findings.items)


later = dt.datetime(2024, 3, 2, tzinfo=dt.UTC)
CASES = [
    # rule, bad reports, good reports, kwargs, expected field
    ("completeness.collected_at", [report(collected_at=None)], [report()], {}, "OBR[1].7"),
    ("completeness.unit", [report([obs(unit=None)])], [report()], {}, "OBX[1].6"),
    ("completeness.reference_range", [report([obs(reference_range=None)])], [report()], {},
     "OBX[1].7"),
    ("validity.numeric", [report([obs(value=Value("NM", text="5,6"))])], [report()], {},
     "OBX[1].5"),
    ("validity.code_mapped", [report()], [report()], {"mapped": False}, "OBX[1].3"),
    ("validity.unit_known", [report()], [report()], {"unit_status": "unknown"}, "OBX[1].6"),
    ("validity.unit_convertible", [report()], [report()], {"unit_status": "incompatible"},
     "OBX[1].6"),
    ("validity.future_collected", [report(collected_at=later, issued_at=later)], [report()], {},
     "OBR[1].7"),
    ("validity.future_issued", [report(issued_at=later)], [report()], {}, "OBR[1].22"),
    ("validity.future_observed", [report([obs(observed_at=later)])], [report()], {}, "OBX[1].14"),
    ("consistency.issued_after_collected", [report(issued_at=COLLECTED - dt.timedelta(hours=1))],
     [report()], {}, "OBR[1].22"),
    ("timeliness.upload_delay", [report(issued_at=NOW - dt.timedelta(hours=30))], [report()], {},
     "OBR[1].22"),
    ("uniqueness.observation_code", [report([obs(1), obs(2)])],
     [report([obs(1), obs(2, code="TC")])], {}, "OBX[2].3"),
    ("uniqueness.report_in_message", [report(), report()], [report(), report(filler_number="F2")],
     {}, "OBR[1].3"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("rule_id", "bad", "good", "std", "field"), CASES, ids=[c[0] for c in CASES]
)
def test_rule_fires_on_bad_input_and_not_on_good(rule_id, bad, good, std, field) -> None:
    found = run(rule_id, bad, **std)
    assert [f.rule_id for f in found] == [rule_id]
    assert found[0].field == field and found[0].message
    assert found[0].severity == rule(rule_id).severity
    quiet = {k: v for k, v in std.items() if k != "mapped" and k != "unit_status"}
    assert run(rule_id, good, **quiet) == []


def test_sex_specific_tests_fit_the_patient() -> None:
    pregnancy = report([obs(code="HCG-U", value=Value("CWE", text="阴性", code="NEG"))])
    (found,) = run("consistency.sex_specific", [pregnancy], gender="male", std_code="2106-3")
    assert found.severity == "error" and found.field == "OBX[1].3"
    assert "for women" in found.message and "male" in found.message
    assert run("consistency.sex_specific", [pregnancy], gender="female", std_code="2106-3") == []
    psa = report([obs(code="PSA")])
    assert run("consistency.sex_specific", [psa], gender="female", std_code="2857-1")
    assert run("consistency.sex_specific", [psa], gender="male", std_code="2857-1") == []
    # the report's own code (OBR-4) counts too, and unknown sex is never a conflict
    assert run("consistency.sex_specific", [report(code="2118-8")], gender="male")[0].field == (
        "OBR[1].4"
    )
    assert run("consistency.sex_specific", [pregnancy], gender=None, std_code="2106-3") == []


def test_counts_say_how_many_were_checked_and_passed() -> None:
    batch = Batch("org-1", [("p-1", report([obs(1, unit=None), obs(2, code="TC")]))], ISSUED)
    frames = Frames.of(batch)
    findings = check(frames, QualityContext("org-1", NOW), [rule("completeness.unit")])
    count = findings.counts["completeness.unit"]
    assert (count.checked, count.passed, count.warnings, count.errors) == (2, 1, 1, 0)


def test_many_messages_at_once_count_as_each_alone() -> None:
    batches = [
        Batch("org-1", [("p-1", report([obs(1, unit=None), obs(2, code="TC")]))], ISSUED),
        Batch("org-1", [("p-2", report([obs(1), obs(2, code="TC", unit=None)])),
                        ("p-2", report([obs(1, value=Value("NM", text="high"))]))], ISSUED),
        Batch("org-1", [("p-3", report([obs(1)]))], ISSUED),
    ]  # fmt: skip
    ctx, rules = QualityContext("org-1", NOW), default_rules()
    together = check_many(Frames.of_many(batches), ctx, rules)
    alone = [check(Frames.of(b), ctx, rules) for b in batches]
    assert [f.counts for f in together] == [f.counts for f in alone]
    assert [f.items for f in together] == [f.items for f in alone]
    assert [len(f.items) for f in together] == [1, 3, 0]  # message 2: unit, number, F1 twice
    unit = together[1].counts["completeness.unit"]
    assert (unit.checked, unit.passed, unit.warnings) == (2, 1, 1)  # "high" has no number
    numeric = together[1].counts["validity.numeric"]
    assert (numeric.checked, numeric.passed, numeric.errors) == (3, 2, 1)


def test_without_an_hl7_location_the_field_is_the_fhir_path() -> None:
    item = report([obs(location=None)], obr=Location("DiagnosticReport", 1))
    (found,) = run("validity.future_issued", [dataclasses.replace(item, issued_at=later)])
    assert found.field == "DiagnosticReport.issued" and found.segment is None
    (found,) = run("completeness.unit", [report([obs(unit=None, location=None)])])
    assert found.field == "Observation.valueQuantity.unit"


def test_errors_become_one_rejection_naming_every_rule() -> None:
    bad = report([obs(value=Value("NM", text="abc"))], issued_at=COLLECTED - dt.timedelta(hours=1))
    batch = Batch("org-1", [("p-1", bad)], ISSUED)
    findings = check(Frames.of(batch), QualityContext("org-1", NOW))
    rejection = findings.rejection()
    assert rejection is not None and rejection.status == 422
    assert "[validity.numeric]" in rejection.message
    assert "[consistency.issued_after_collected]" in rejection.message
    assert rejection.location == ("OBX", 1, 5) and rejection.hl7_code == "102"
    assert rejection.to_operation_outcome()["issue"][0]["expression"] == ["OBX[1].5"]


def test_shipped_rules_cover_every_dimension_and_name_known_checks() -> None:
    rules = default_rules()
    assert {r.dimension for r in rules} == {
        "completeness", "validity", "consistency", "timeliness", "uniqueness", "silence",
    }  # fmt: skip
    assert all(r.check in CHECKS for r in rules)


def test_a_rules_file_is_data_and_is_validated(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(
        "- {id: validity.numeric, dimension: validity, severity: warning, check: numeric_value}\n",
        encoding="utf-8",
    )
    (relaxed,) = load_rules(path)
    batch = Batch("org-1", [("p-1", report([obs(value=Value("NM", text="x"))]))], ISSUED)
    findings = check(Frames.of(batch), QualityContext("org-1", NOW), [relaxed])
    assert findings.rejection() is None and len(findings.warnings) == 1
    path.write_text("- {id: a.b, dimension: validity, severity: error, check: nope}\n")
    with pytest.raises(RuleError, match="unknown check 'nope'"):
        load_rules(path)
