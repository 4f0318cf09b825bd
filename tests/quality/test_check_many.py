"""Several messages checked at once (a group commit, an NDJSON chunk) find and count exactly what
each message checked alone does: failures land in their own message, counts stay per message."""

from __future__ import annotations

import dataclasses
import datetime as dt
import random
from collections import Counter

from quality.test_rules import COLLECTED, ISSUED, NOW, obs, report
from rhip.exchange.reports import Batch
from rhip.exchange.values import Value
from rhip.quality import CHECKS, Frames, QualityContext, Rule, check, check_many, default_rules
from rhip.quality.checks import hits, per_batch
from rhip.quality.frames import Columns
from rhip.quality.service import RuleCount

CTX = QualityContext("org-1", NOW)
LATER = NOW + dt.timedelta(days=1)


def standard(frames: Frames) -> dict[str, list]:
    """Terminology's columns, decided by each observation itself (so that a message gets the
    same whether checked alone or with others): XX is unmapped, HCG is the urine pregnancy
    test, furlong is no UCUM unit."""
    o = frames.observations
    return {
        "std_code": ["2106-3" if c == "HCG" else None for c in o["code"]],
        "std_unit": ["mmol/L"] * len(o),
        "mapped": [c != "XX" for c in o["code"]],
        "unit_status": ["unknown" if u == "furlong" else "ok" for u in o["unit"]],
    }


def frames_of(batches: list[Batch]) -> Frames:
    frames = Frames.of_many(batches)
    return frames.with_standard(standard(frames))


def messages() -> list[Batch]:
    """A good message, one where most rules fail, one without reports, one where a rule fails
    on every row, and a good one again."""
    good = Batch("org-1", [("p-1", report([obs(1), obs(2, code="TC")]))], ISSUED,
                 gender={"p-1": "female"})  # fmt: skip
    bad = report(
        [
            obs(1, unit=None),
            obs(2),  # GLU again
            obs(3, code="NUM", value=Value("NM", text="high")),
            obs(4, code="HCG", value=Value("CWE", text="阴性", code="NEG")),  # a man's
            obs(5, code="XX"),
            obs(6, code="U", unit="furlong"),
            obs(7, code="LATE", observed_at=LATER),
        ],
        issued_at=COLLECTED - dt.timedelta(hours=1),
    )
    empty = dataclasses.replace(report(filler_number="F9"), observations=[])
    many = Batch("org-1", [("p-2", bad), ("p-2", bad), ("p-2", empty)], ISSUED,
                 gender={"p-2": "male"})  # fmt: skip
    every = report([obs(1, reference_range=None), obs(2, code="TC", reference_range=None)])
    return [
        good,
        many,
        Batch("org-1", [], ISSUED),
        Batch("org-1", [("p-3", every)], ISSUED),
        dataclasses.replace(good, items=[("p-4", report([obs(1)]))]),
    ]


def alone(batches: list[Batch], rules=None) -> list:
    return [check(frames_of([b]), CTX, rules) for b in batches]


def test_many_messages_at_once_find_and_count_as_each_alone() -> None:
    batches = messages()
    flipped = [
        r.model_copy(update={"severity": "warning" if r.severity == "error" else "error"})
        for r in default_rules()
    ]
    for rules in (None, flipped, default_rules()[::-1]):
        together = check_many(frames_of(batches), CTX, rules)
        assert [f.items for f in together] == [f.items for f in alone(batches, rules)]
        assert [f.counts for f in together] == [f.counts for f in alone(batches, rules)]


def test_failures_stay_in_their_message() -> None:
    good, many, empty, every, good_again = check_many(frames_of(messages()), CTX)
    assert good.items == () and good_again.items == () and empty.items == ()
    assert {f.rule_id for f in many.items} == {
        "completeness.unit", "validity.numeric", "uniqueness.observation_code",
        "consistency.sex_specific", "validity.code_mapped", "validity.unit_known",
        "validity.future_observed", "consistency.issued_after_collected",
        "uniqueness.report_in_message",
    }  # fmt: skip
    assert {f.item for f in many.items} == {0, 1}  # the report without observations passes
    assert [f.rule_id for f in every.items] == ["completeness.reference_range"] * 2


def test_counts_are_per_message() -> None:
    good, many, empty, every, _ = check_many(frames_of(messages()), CTX)
    assert good.counts["completeness.unit"] == RuleCount(2, 2)
    # 2 reports of 7 observations: 5 numbers each (not "high", not the CWE), obs 1 without unit
    assert many.counts["completeness.unit"] == RuleCount(10, 8, warnings=2)
    assert many.counts["validity.numeric"] == RuleCount(12, 10, errors=2)  # NM only: not obs 4
    assert many.counts["completeness.reference_range"] == RuleCount(12, 12)
    assert many.counts["validity.code_mapped"] == RuleCount(14, 12, warnings=2)
    assert many.counts["consistency.sex_specific"] == RuleCount(17, 15, errors=2)
    assert many.counts["uniqueness.report_in_message"] == RuleCount(3, 2, warnings=1)
    assert many.counts["validity.patient_id"] == RuleCount(3, 3)
    assert set(empty.counts) == {r.id for r in default_rules()}
    assert all(c == RuleCount(0, 0) for c in empty.counts.values())
    assert every.counts["completeness.reference_range"] == RuleCount(2, 0, warnings=2)


def test_columns_built_by_hand_count_the_same_in_any_row_order() -> None:
    """As ``exchange.bulk_store`` builds them: no message boundaries given, and rows that need
    not be in message order."""
    frames = frames_of(messages())
    expected = check_many(frames, CTX)
    r, o = frames.reports, frames.observations
    order = list(range(len(o)))
    random.Random(7).shuffle(order)
    for rows in (range(len(o)), order):
        shuffled = {name: [column[i] for i in rows] for name, column in o.cols.items()}
        by_hand = Frames(
            Columns(dict(r.cols), len(r), frames.batches),
            Columns(shuffled, len(o), frames.batches),
            frames.batches,
        )
        found = check_many(by_hand, CTX)
        assert [f.counts for f in found] == [f.counts for f in expected]
        assert [sorted(f.items, key=repr) for f in found] == [
            sorted(f.items, key=repr) for f in expected
        ]


def test_per_batch_counts_rows_of_each_message() -> None:
    frames = frames_of(messages())
    o = frames.observations
    for rows in (range(len(o)), [], [0], [i for i in range(len(o)) if i % 3], [len(o) - 1]):
        expected = Counter(o["batch"][i] for i in rows)
        assert per_batch(o, rows) == expected and list(per_batch(o, rows)) == list(expected)


def test_a_subject_failing_twice_counts_once(monkeypatch) -> None:
    """Rules stay data: a new check is a function plus a row; a report or observation that
    fails twice is two findings but one subject that did not pass."""

    def twice(frames: Frames, ctx: QualityContext):
        o = frames.observations
        last = len(o) - 1
        return hits(o, range(len(o)), [last, last], "unit", "twice")

    monkeypatch.setitem(CHECKS, "twice", twice)
    rule = Rule(id="custom.twice", dimension="validity", severity="warning", check="twice")
    batches = messages()[:2]
    first, second = check_many(frames_of(batches), CTX, [rule])
    assert first.items == () and first.counts["custom.twice"] == RuleCount(2, 2)
    assert [f.obs for f in second.items] == [6, 6]
    assert second.counts["custom.twice"] == RuleCount(14, 13, warnings=2)
