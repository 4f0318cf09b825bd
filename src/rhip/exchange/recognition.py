"""Mutual recognition (检查检验结果互认): can an earlier result be used instead of a repeat test?

The rules are data (``recognition_rules.csv``): per item code its validity in days, scope
(city | province | national), whether the issuing lab must have passed external quality
assessment (室间质评, EQA), the recognition label printed on reports (互认标识, ``HR``/``粤HR``)
and the specimens it applies to. Validity follows the spirit of the 2022 national measures
(医疗机构检查检验结果互认管理办法): lab items 7-30 days by how fast they change, imaging 30-180.

``check`` lists every candidate result with ``recognisable`` and, when it is not, the reasons in
``REASONS``; doctors then record a decision (``record_decision``): recognised, or refused with a
national exception reason (``EXCEPTION_REASONS``). ``stats`` counts repeat tests avoided.
"""

from __future__ import annotations

import csv
import datetime as dt
import functools
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, and_, case, func, literal, or_, select

from rhip.exchange.models import observations, reports
from rhip.exchange.recognition_models import DECISIONS, lab_qualifications, recognition_decisions
from rhip.exchange.viewing import HAS_STD, check_id, patient_keys
from rhip.kernel.clock import CST, now
from rhip.kernel.errors import Conflict, InvalidInput, NotFound
from rhip.registry.models import institutions

R, O, Q, D = reports.c, observations.c, lab_qualifications.c, recognition_decisions.c  # noqa: E741
I = institutions.c  # noqa: E741 - the table's initial, as R, O
RULES_FILE = Path(__file__).with_name("recognition_rules.csv")
SCOPES = {"city": 4, "province": 2, "national": 0}  # leading GB/T 2260 digits that must agree
LEVELS = ("report", "observation")
CANDIDATE_LIMIT = 50
FINAL = ("final", "corrected")

# why a candidate cannot be recognised, most decisive first
REASONS: dict[str, str] = {
    "cancelled": "报告已作废 report cancelled",
    "not_final": "非最终报告 not a final result",
    "no_valid_result": "结果无效 (OBX-11 W/D/X) result withdrawn or not obtained",
    "expired": "超出互认有效期 older than the item's validity",
    "lab_not_qualified": "检验机构未通过室间质评 issuing lab has no passed EQA for the item",
    "different_specimen": "标本类型不同 different specimen",
    "out_of_scope": "不在互认范围 issuing institution outside the item's scope",
}
# 互认例外情形: national exception reasons a doctor may give for a repeat test (2022 measures,
# art. on situations where re-examination is justified), plus timeliness and patient request
EXCEPTION_REASONS: dict[str, str] = {
    "condition_changed": "病情变化 the condition changed",
    "inconsistent_clinical": "结果与临床表现不符 inconsistent with the clinical picture",
    "rapid_change": "指标变化较快 a value that changes fast as the disease evolves",
    "major_procedure": "重大医疗措施前 before surgery, transfusion or another major measure",
    "emergency": "急诊/抢救 emergency or resuscitation",
    "forensic": "司法、伤残及病退鉴定 forensic, disability or retirement assessment",
    "timeliness": "检查检验项目时效性 the result is too old for this clinical question",
    "patient_request": "患者要求 the patient asks for a new test",
    "quality_doubt": "结果或图像质量不满足诊疗需要 quality not sufficient",
    "other": "其他情形确需复查 other (a note is required)",
}


@dataclass(frozen=True, slots=True)
class Rule:
    """One recognisable item (互认项目)."""

    item_code: str
    system: str
    level: str  # report: matched on the report's code; observation: on an observation's
    kind: str  # lab | exam
    name: str
    name_en: str
    validity_days: int
    scope: str
    eqa_required: bool
    hr_label: str
    specimens: tuple[str, ...]  # accepted specimen words, lower case; empty: any


@functools.cache
def load_rules(path: Path = RULES_FILE) -> dict[str, Rule]:
    """The rules file as ``{item code: Rule}``; a bad line is an error naming the line."""
    rules: dict[str, Rule] = {}
    with path.open(encoding="utf-8", newline="") as fh:
        for line_no, row in enumerate(csv.DictReader(fh), start=2):
            rule = _rule(row, f"{path.name} line {line_no}")
            if rule.item_code in rules:
                raise InvalidInput(f"{path.name} line {line_no}: item {rule.item_code} twice")
            rules[rule.item_code] = rule
    return rules


def _rule(row: dict[str, str], where: str) -> Rule:
    try:
        days = int(row["validity_days"])
        rule = Rule(
            item_code=row["item_code"].strip(),
            system=row["system"].strip(),
            level=row["level"].strip(),
            kind=row["kind"].strip(),
            name=row["name"].strip(),
            name_en=row["name_en"].strip(),
            validity_days=days,
            scope=row["scope"].strip(),
            eqa_required=row["eqa_required"].strip().lower() in ("true", "1", "yes"),
            hr_label=row["hr_label"].strip(),
            specimens=tuple(s.strip().lower() for s in row["specimens"].split(";") if s.strip()),
        )
    except (KeyError, ValueError, AttributeError) as exc:
        raise InvalidInput(f"{where}: {exc.__class__.__name__}: {exc}") from None
    if rule.level not in LEVELS or rule.scope not in SCOPES or days <= 0 or not rule.item_code:
        raise InvalidInput(f"{where}: level, scope or validity_days not allowed")
    return rule


def rule_for(item: str, rules: dict[str, Rule] | None = None) -> Rule:
    rule = (rules or load_rules()).get(item)
    if rule is None:
        raise InvalidInput(f"item {item!r} is not on the recognition list", expression="item")
    return rule


def check(
    conn: Connection,
    patient_id: str,
    item: str,
    at: dt.datetime | None = None,
    *,
    requester: str | None = None,
    rules: dict[str, Rule] | None = None,
) -> dict[str, Any]:
    """Every earlier result of ``item`` for the patient, newest first, each with ``recognisable``
    and ``reasons`` (codes of ``REASONS``). One query. ``requester`` is the institution asking
    (its district decides the scope); ``at`` the moment of the check (default now).
    """
    check_id(patient_id, "patient")
    rule = rule_for(item, rules)
    at = at or now()
    rows = conn.execute(_candidates(rule, patient_id, at, requester)).mappings().all()
    candidates = [_judge(rule, dict(r), at) for r in rows]
    return {
        "patient_id": patient_id,
        "item": asdict(rule),
        "at": at,
        "recognisable": any(c["recognisable"] for c in candidates),
        "candidates": candidates,
    }


def _candidates(rule: Rule, patient_id: str, at: dt.datetime, requester: str | None):
    qualified: Any = literal(True)
    if rule.eqa_required:
        qualified = (
            select(Q.id)
            .where(Q.institution_id == R.institution_id, Q.item_code.in_((rule.item_code, "*")),
                   Q.passed.is_(True), Q.valid_from <= R.issued_at, Q.valid_until > R.issued_at)
            .exists()
        )  # fmt: skip
    home = select(I.district_code).where(I.id == requester).scalar_subquery()
    cols = [R.id.label("report_id"), R.status, R.issued_at, R.collected_at, R.specimen,
            R.institution_id, R.code, R.display, I.name.label("institution_name"),
            I.district_code, home.label("requester_district"),
            qualified.label("qualified")]  # fmt: skip
    live = or_(R.current.is_(True), R.status == "cancelled")
    if rule.level == "report":
        query = select(*cols).where(
            R.patient_id.in_(patient_keys(patient_id)), R.code == rule.item_code
        )
    else:
        match = O.code == rule.item_code
        if HAS_STD:
            match = or_(O.std_code == rule.item_code, and_(O.std_code.is_(None), match))
        obs = [O.id.label("observation_id"), O.value_num, O.value_text, O.unit,
               O.abnormal_flag, O.status.label("obs_status")]  # fmt: skip
        query = (
            select(*cols, *obs)
            .select_from(observations)
            .join(reports, R.id == O.report_id)
            .where(O.patient_id.in_(patient_keys(patient_id)), match)
        )
    return (
        query.join(institutions, I.id == R.institution_id)
        .where(live, R.issued_at <= at)
        .order_by(R.issued_at.desc(), R.id.desc())
        .limit(CANDIDATE_LIMIT)
    )


def _judge(rule: Rule, row: dict[str, Any], at: dt.datetime) -> dict[str, Any]:
    reasons = []
    if row["status"] == "cancelled":
        reasons.append("cancelled")
    elif row["status"] not in FINAL or (row.get("obs_status") or "F") in "PRISA":
        reasons.append("not_final")
    if (row.get("obs_status") or "") in ("W", "D", "X"):
        reasons.append("no_valid_result")
    performed = row["collected_at"] or row["issued_at"]
    valid_until = performed + dt.timedelta(days=rule.validity_days)
    if at > valid_until:
        reasons.append("expired")
    if not row.pop("qualified"):
        reasons.append("lab_not_qualified")
    if rule.specimens and row["specimen"] and not _specimen_ok(rule, row["specimen"]):
        reasons.append("different_specimen")
    home = row.pop("requester_district")
    digits = SCOPES[rule.scope]
    if home and digits and (row["district_code"] or "")[:digits] != home[:digits]:
        reasons.append("out_of_scope")
    row.update(
        recognisable=not reasons,
        reasons=reasons,
        reason=reasons[0] if reasons else None,
        valid_until=valid_until,
        hr_label=rule.hr_label if not reasons else None,
    )
    return row


def _specimen_ok(rule: Rule, specimen: str) -> bool:
    text = specimen.strip().lower()
    return any(word == text or word in text for word in rule.specimens)


def record_decision(
    conn: Connection,
    *,
    patient_id: str,
    item: str,
    decision: str,
    institution_id: str,
    decided_by: str,
    report_id: str | None = None,
    reason_code: str | None = None,
    note: str | None = None,
    at: dt.datetime | None = None,
    rules: dict[str, Rule] | None = None,
) -> dict[str, Any]:
    """Record a doctor's decision (互认确认/不予互认). A recognised result must be recognisable
    now (409 with its reasons if not); a refusal needs a code of ``EXCEPTION_REASONS``.
    """
    rule = rule_for(item, rules)
    at = at or now()
    _validate(decision, reason_code, report_id, note)
    _ensure_institution(conn, institution_id)
    source = None
    if report_id is not None:
        found = check(conn, patient_id, item, at, requester=institution_id, rules={item: rule})
        cand = next((c for c in found["candidates"] if c["report_id"] == report_id), None)
        if cand is None:
            raise InvalidInput(
                f"report {report_id} is not a result of item {item} for this patient",
                expression="report_id",
            )
        if decision == "recognised" and not cand["recognisable"]:
            raise Conflict(
                f"report {report_id} cannot be recognised: {', '.join(cand['reasons'])}",
                expression="report_id",
            )
        source = cand["institution_id"]
    values = dict(
        patient_id=patient_id, item_code=item, decision=decision, reason_code=reason_code,
        note=note, report_id=report_id, source_institution_id=source,
        institution_id=institution_id, decided_by=decided_by, decided_at=at,
    )  # fmt: skip
    new_id = conn.execute(recognition_decisions.insert().values(**values)).inserted_primary_key[0]
    return {"id": new_id, **values}


def _aware(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo else value.replace(tzinfo=CST)  # no offset: CST


def _ensure_institution(conn: Connection, institution_id: str) -> None:
    if conn.execute(select(I.id).where(I.id == institution_id)).first() is None:
        raise NotFound(f"Organization/{institution_id} is not registered", expression="institution")


def _validate(decision: str, reason: str | None, report_id: str | None, note: str | None) -> None:
    if decision not in DECISIONS:
        raise InvalidInput(f"decision must be one of {', '.join(DECISIONS)}", expression="decision")
    if decision == "recognised":
        if reason is not None:
            raise InvalidInput("a recognised result takes no reason_code", expression="reason_code")
        if report_id is None:
            raise InvalidInput("recognised needs the report_id used", expression="report_id")
        return
    if reason not in EXCEPTION_REASONS:
        raise InvalidInput(
            f"reason_code {reason!r} is not a national exception reason; one of "
            f"{', '.join(EXCEPTION_REASONS)}",
            expression="reason_code",
        )
    if reason == "other" and not (note or "").strip():
        raise InvalidInput("reason_code other needs a note", expression="note")


def stats(
    conn: Connection,
    *,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
    institution: str | None = None,
    rules: dict[str, Rule] | None = None,
) -> list[dict[str, Any]]:
    """Repeat tests avoided (recognised decisions) and refusals per institution and item."""
    recognised = func.sum(case((D.decision == "recognised", 1), else_=0))
    refused = func.sum(case((D.decision == "refused", 1), else_=0))
    query = (
        select(D.institution_id, I.name.label("institution_name"), D.item_code,
               recognised.label("avoided"), refused.label("refused"))
        .join(institutions, I.id == D.institution_id)
        .group_by(D.institution_id, I.name, D.item_code)
        .order_by(recognised.desc(), D.institution_id, D.item_code)
    )  # fmt: skip
    if since is not None:
        query = query.where(D.decided_at >= since)
    if until is not None:
        query = query.where(D.decided_at < until)
    if institution is not None:
        query = query.where(D.institution_id == institution)
    known = rules or load_rules()
    out = []
    for row in conn.execute(query).mappings():
        rule = known.get(row["item_code"])
        item = dict(row, item_name=rule.name if rule else None)
        item["avoided"], item["refused"] = int(item["avoided"]), int(item["refused"])
        out.append(item)
    return out


def add_qualification(
    conn: Connection,
    institution_id: str,
    item_code: str,
    *,
    passed: bool,
    valid_from: dt.datetime,
    valid_until: dt.datetime,
    scheme: str = "NCCL",
) -> int:
    """Record an EQA result (室间质评) of an institution for an item (``*``: every item)."""
    valid_from, valid_until = (_aware(valid_from), _aware(valid_until))
    if valid_until <= valid_from:
        raise InvalidInput("valid_until must be after valid_from", expression="valid_until")
    _ensure_institution(conn, institution_id)
    values = dict(institution_id=institution_id, item_code=item_code, scheme=scheme,
                  passed=passed, valid_from=valid_from, valid_until=valid_until,
                  recorded_at=now())  # fmt: skip
    return conn.execute(lab_qualifications.insert().values(**values)).inserted_primary_key[0]
