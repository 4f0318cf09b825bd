"""Platform REST for mutual recognition (检查检验结果互认): check, decisions, stats, rules.

``check`` reads a patient's results, so it goes through ``audited_read`` like every clinical read;
recording a decision is a doctor's act at their own institution (taken from the token, never from
the body) and is audited in the same transaction. Stats are for operators.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field

from rhip.api.auth import CurrentUser, PurposeOfUse, audited_read, permit, require_roles
from rhip.api.routers.viewing import when
from rhip.exchange import recognition, viewing
from rhip.security.policy import Action
from rhip.security.schemas import Principal, Role

router = APIRouter(prefix="/api/recognition", tags=["recognition"])
DoctorUser = Annotated[Principal, Depends(require_roles(Role.DOCTOR))]
StatsUser = Annotated[Principal, Depends(permit(Action.READ_STATS))]
ManagerUser = Annotated[Principal, Depends(permit(Action.MANAGE))]


class RulePublic(BaseModel):
    item_code: str
    system: str
    level: str
    kind: str
    name: str
    name_en: str
    validity_days: int
    scope: str
    eqa_required: bool
    hr_label: str
    specimens: list[str]


class Candidate(BaseModel):
    report_id: str
    observation_id: int | None = None
    status: str
    issued_at: dt.datetime
    collected_at: dt.datetime | None
    valid_until: dt.datetime
    specimen: str | None
    institution_id: str
    institution_name: str
    district_code: str | None
    code: str
    display: str | None
    value_num: float | None = None
    value_text: str | None = None
    unit: str | None = None
    abnormal_flag: str | None = None
    recognisable: bool
    reason: str | None  # the most decisive of ``reasons``
    reasons: list[str]  # codes of GET /api/recognition/reasons ``not_recognisable``
    hr_label: str | None  # 互认标识 to show on a recognisable result


class CheckPublic(BaseModel):
    patient_id: str
    item: RulePublic
    at: dt.datetime
    recognisable: bool
    candidates: list[Candidate]


class DecisionCreate(BaseModel):
    """A doctor's decision: recognised (with the report used) or refused (with a reason)."""

    patient_id: str = Field(max_length=64)
    item: str = Field(max_length=64)
    decision: Literal["recognised", "refused"]
    report_id: str | None = Field(None, max_length=64)
    reason_code: str | None = Field(None, max_length=32)
    note: str | None = Field(None, max_length=1000)


class DecisionPublic(BaseModel):
    id: int
    patient_id: str
    item_code: str
    decision: str
    reason_code: str | None
    note: str | None
    report_id: str | None
    source_institution_id: str | None
    institution_id: str
    decided_by: str
    decided_at: dt.datetime


class StatRow(BaseModel):
    institution_id: str
    institution_name: str
    item_code: str
    item_name: str | None
    avoided: int  # repeat tests avoided: recognised decisions
    refused: int


class QualificationCreate(BaseModel):
    """An EQA result (室间质评) of an institution for an item, or ``*`` for every item."""

    institution_id: str = Field(max_length=64)
    item_code: str = Field(max_length=64)
    scheme: str = Field("NCCL", max_length=64)
    passed: bool
    valid_from: dt.datetime
    valid_until: dt.datetime


@router.get("/check", response_model=CheckPublic)
def check(
    request: Request,
    user: CurrentUser,
    purpose: PurposeOfUse,
    patient: Annotated[str, Query(description="golden patient id")],
    item: Annotated[str, Query(description="item code of the recognition list")],
) -> dict:
    """Earlier results of ``item`` for ``patient``: which are recognisable, why others are not."""
    viewing.check_id(patient, "patient")
    recognition.rule_for(item)
    with audited_read(
        request, user, purpose, patient_id=patient, resource="DiagnosticReport", subtype="search"
    ) as conn:
        return recognition.check(conn, patient, item, requester=user.institution_id)


@router.post("/decisions", response_model=DecisionPublic, status_code=201)
def record_decision(
    body: DecisionCreate, request: Request, user: DoctorUser, purpose: PurposeOfUse
) -> dict:
    """Record 互认 (recognised) or 不予互认 (refused, with a national exception reason)."""
    viewing.check_id(body.patient_id, "patient_id")
    with audited_read(
        request, user, purpose, patient_id=body.patient_id, resource="DiagnosticReport",
        subtype="create",
    ) as conn:  # fmt: skip
        return recognition.record_decision(
            conn, patient_id=body.patient_id, item=body.item, decision=body.decision,
            institution_id=user.institution_id or "", decided_by=user.username,
            report_id=body.report_id, reason_code=body.reason_code, note=body.note,
        )  # fmt: skip


@router.get("/stats", response_model=list[StatRow])
def stats(
    request: Request,
    _user: StatsUser,
    since: Annotated[str | None, Query(description="decided on/after (date: a CST day)")] = None,
    until: Annotated[
        str | None, Query(description="decided up to (a date includes the day)")
    ] = None,
    institution: Annotated[str | None, Query(description="deciding institution id")] = None,
) -> list[dict]:
    """Repeat tests avoided per institution and item, counted from recorded decisions."""
    start, end = viewing.date_range(when(since, "since"), when(until, "until"))
    with request.app.state.engine.connect() as conn:
        return recognition.stats(conn, since=start, until=end, institution=institution)


@router.get("/rules", response_model=list[RulePublic])
def rules(_user: CurrentUser) -> list[dict]:
    """The recognition list (互认项目): validity days, scope, EQA requirement, HR label."""
    return [asdict(rule) for rule in recognition.load_rules().values()]


@router.get("/reasons")
def reasons(_user: CurrentUser) -> dict[str, dict[str, str]]:
    """Codes: why a result is not recognisable, and the exception reasons for a refusal."""
    return {
        "not_recognisable": recognition.REASONS,
        "exception": recognition.EXCEPTION_REASONS,
    }


@router.post("/qualifications", status_code=201)
def add_qualification(
    body: QualificationCreate, request: Request, _user: ManagerUser
) -> dict[str, int]:
    """Record an institution's EQA result, used by items that require one."""
    with request.app.state.engine.begin() as conn:
        new_id = recognition.add_qualification(
            conn, body.institution_id, body.item_code, passed=body.passed,
            valid_from=body.valid_from, valid_until=body.valid_until, scheme=body.scheme,
        )  # fmt: skip
    return {"id": new_id}
