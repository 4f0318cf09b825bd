"""Platform REST for viewing (调阅): a patient's timeline, one report, one test's trend.

Every endpoint reads through ``audited_read``: the policy decides on the signed-in principal,
the ``X-Purpose-Of-Use`` header and the care relationship; the read and its audit event share a
transaction, and a refusal (403, or 404 where existence must not leak) is audited too.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel

from rhip.api.auth import CurrentUser, PurposeOfUse, audited_read
from rhip.exchange import viewing
from rhip.kernel.errors import InvalidInput

router = APIRouter(tags=["viewing"])


class TimelineItem(BaseModel):
    """One report on the timeline (current version)."""

    id: str
    patient_id: str  # the record it is filed under: the golden id or one merged into it
    kind: str  # lab | exam
    code_system: str | None
    code: str
    display: str | None
    status: str
    version: int
    issued_at: dt.datetime
    collected_at: dt.datetime | None
    institution_id: str
    institution_name: str
    specimen: str | None
    conclusion: str | None


class TimelinePublic(BaseModel):
    patient_id: str
    items: list[TimelineItem]
    next: str | None  # pass as ``before`` for the next (older) page


class ObservationPublic(BaseModel):
    id: int
    seq: int
    code_system: str | None
    code: str
    display: str | None
    value_type: str
    value_num: float | None
    comparator: str | None
    value_text: str | None
    value_code: str | None
    unit: str | None
    reference_range: str | None
    abnormal_flag: str | None
    abnormal: bool
    critical: bool
    flag_label: str | None
    status: str | None
    observed_at: dt.datetime
    std_system: str | None = None
    std_code: str | None = None
    std_display: str | None = None
    std_value: float | None = None
    std_unit: str | None = None


class ReportPublic(BaseModel):
    id: str
    report_key: str
    version: int
    current: bool
    patient_id: str
    institution_id: str
    institution_name: str
    kind: str
    code_system: str | None
    code: str
    display: str | None
    status: str
    placer_number: str | None
    filler_number: str | None
    specimen: str | None
    findings: str | None
    conclusion: str | None
    collected_at: dt.datetime | None
    issued_at: dt.datetime
    recorded_at: dt.datetime
    abnormal_count: int
    observations: list[ObservationPublic]


class TrendPoint(BaseModel):
    observed_at: dt.datetime
    value: float | None  # in ``unit``: the standard unit where the code map gives one
    unit: str | None
    comparator: str | None
    value_text: str | None
    value_as_sent: float | None
    unit_as_sent: str | None
    reference_range: str | None
    abnormal_flag: str | None
    display: str | None
    report_id: str
    status: str
    institution_id: str
    institution_name: str


class TrendPublic(BaseModel):
    patient_id: str
    code: str
    display: str | None
    unit: str | None  # None when the points carry different units
    points: list[TrendPoint]


def when(value: str | None, name: str) -> dt.date | dt.datetime | None:
    """A query date (``2024-03-01``, a CST day) or date-time (offset-less: CST); else 422."""
    if value is None or value == "":
        return None
    try:
        return (
            dt.date.fromisoformat(value) if len(value) == 10 else dt.datetime.fromisoformat(value)
        )
    except ValueError:
        raise InvalidInput(
            f"{name} must be an ISO date (2024-03-01) or date-time, got {value!r}",
            expression=name,
        ) from None


@router.get("/api/patients/{patient_id}/timeline", response_model=TimelinePublic)
def get_timeline(
    patient_id: str,
    request: Request,
    user: CurrentUser,
    purpose: PurposeOfUse,
    kind: Annotated[str | None, Query(description="lab (检验) | exam (检查)")] = None,
    since: Annotated[str | None, Query(description="issued on/after: date or date-time")] = None,
    until: Annotated[str | None, Query(description="issued up to: a date includes the day")] = None,
    institution: Annotated[str | None, Query(description="issuing institution id")] = None,
    limit: Annotated[int, Query(ge=1, le=viewing.MAX_LIMIT)] = viewing.DEFAULT_LIMIT,
    before: Annotated[str | None, Query(description="the previous page's next")] = None,
) -> dict:
    """All of a patient's current reports across institutions, newest first, keyset-paged."""
    viewing.check_id(patient_id, "patient")
    start, end = when(since, "since"), when(until, "until")
    with audited_read(
        request, user, purpose, patient_id=patient_id, resource="DiagnosticReport",
        subtype="search",
    ) as conn:  # fmt: skip
        return viewing.timeline(
            conn, patient_id, kind=kind, since=start, until=end, institution=institution,
            limit=limit, before=before,
        )  # fmt: skip


@router.get("/api/reports/{report_id}", response_model=ReportPublic)
def get_report(report_id: str, request: Request, user: CurrentUser, purpose: PurposeOfUse) -> dict:
    """One report with its observations, reference ranges and abnormal flags."""
    viewing.check_id(report_id, "report")
    with request.app.state.engine.connect() as conn:
        patient_id = viewing.report_patient(conn, report_id)
    with audited_read(
        request, user, purpose, patient_id=patient_id, resource="DiagnosticReport"
    ) as conn:
        return viewing.report_detail(conn, report_id)


@router.get("/api/patients/{patient_id}/trend", response_model=TrendPublic)
def get_trend(
    patient_id: str,
    request: Request,
    user: CurrentUser,
    purpose: PurposeOfUse,
    code: Annotated[str, Query(description="standard (LOINC) code, or the code as sent")],
    since: Annotated[str | None, Query()] = None,
    until: Annotated[str | None, Query()] = None,
) -> dict:
    """One test's results across institutions, oldest first, for a trend chart (趋势)."""
    viewing.check_id(patient_id, "patient")
    start, end = when(since, "since"), when(until, "until")
    with audited_read(
        request, user, purpose, patient_id=patient_id, resource="Observation", subtype="search"
    ) as conn:
        return viewing.trend(conn, patient_id, code, since=start, until=end)
