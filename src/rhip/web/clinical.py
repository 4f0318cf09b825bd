"""Read model of the doctor and patient pages (调阅): a patient's timeline, one report with its
observations, one test's trend. Each is one indexed query keyed by the golden patient
(``ix_reports_patient_issued``, ``ix_observations_patient_code_time``), no cross-patient joins.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, and_, func, select

from rhip.exchange.models import observations, reports
from rhip.registry.models import institutions

TIMELINE_LIMIT = 500
ABNORMAL = ("H", "HH", "L", "LL", "A", "AA", ">", "<")

_REPORT_COLUMNS = (
    reports.c.id, reports.c.patient_id, reports.c.institution_id, reports.c.kind,
    reports.c.code, reports.c.display, reports.c.status, reports.c.specimen, reports.c.findings,
    reports.c.conclusion, reports.c.collected_at, reports.c.issued_at,
)  # fmt: skip
_OBS_COLUMNS = (
    observations.c.seq, observations.c.code, observations.c.display, observations.c.value_type,
    observations.c.value_num, observations.c.comparator, observations.c.value_text,
    observations.c.value_code, observations.c.unit, observations.c.reference_range,
    observations.c.abnormal_flag, observations.c.observed_at,
)  # fmt: skip


def timeline(engine: Engine, patient_id: str, limit: int = TIMELINE_LIMIT) -> list[dict[str, Any]]:
    """Current reports of the patient from every institution, newest first, with the number of
    abnormal results of each."""
    abnormal = (
        select(observations.c.report_id, func.count().label("n"))
        .where(
            observations.c.patient_id == patient_id,
            observations.c.abnormal_flag.in_(ABNORMAL),
        )
        .group_by(observations.c.report_id)
        .subquery()
    )
    query = (
        select(
            reports.c.id,
            reports.c.kind,
            reports.c.code,
            reports.c.display,
            reports.c.status,
            reports.c.issued_at,
            reports.c.institution_id,
            institutions.c.name.label("institution"),
            func.coalesce(abnormal.c.n, 0).label("abnormal"),
        )
        .join(institutions, institutions.c.id == reports.c.institution_id)
        .outerjoin(abnormal, abnormal.c.report_id == reports.c.id)
        .where(reports.c.patient_id == patient_id, reports.c.current.is_(True))
        .order_by(reports.c.issued_at.desc())
        .limit(limit)
    )
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(query)]


def report(engine: Engine, report_id: str) -> dict[str, Any] | None:
    """One report (any version) with its institution's name and its observations."""
    with engine.connect() as conn:
        row = conn.execute(
            select(*_REPORT_COLUMNS, institutions.c.name.label("institution"))
            .join(institutions, institutions.c.id == reports.c.institution_id)
            .where(reports.c.id == report_id)
        ).first()
        if row is None:
            return None
        out = dict(row._mapping)
        out["observations"] = [
            dict(r._mapping) | {"abnormal": r.abnormal_flag in ABNORMAL}
            for r in conn.execute(
                select(*_OBS_COLUMNS)
                .where(observations.c.report_id == report_id)
                .order_by(observations.c.seq, observations.c.id)
            )
        ]
    return out


def trend(engine: Engine, patient_id: str, code: str) -> list[dict[str, Any]]:
    """Numeric results of one test code for the patient, oldest first, with the institution."""
    query = (
        select(
            observations.c.observed_at,
            observations.c.value_num,
            observations.c.unit,
            observations.c.reference_range,
            observations.c.abnormal_flag,
            observations.c.display,
            reports.c.id.label("report_id"),
            institutions.c.name.label("institution"),
        )
        .join(
            reports,
            and_(reports.c.id == observations.c.report_id, reports.c.current.is_(True)),
        )
        .join(institutions, institutions.c.id == reports.c.institution_id)
        .where(
            observations.c.patient_id == patient_id,
            observations.c.code == code,
            observations.c.value_num.is_not(None),
        )
        .order_by(observations.c.observed_at)
    )
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(query)]


def reference_bounds(text: str | None) -> tuple[float | None, float | None]:
    """``3.9-6.1`` → (3.9, 6.1); ``<5.2`` → (None, 5.2); anything else → (None, None).

    >>> reference_bounds("3.9-6.1"), reference_bounds("<5.2"), reference_bounds("阴性")
    ((3.9, 6.1), (None, 5.2), (None, None))
    """
    text = (text or "").strip()
    try:
        if text.startswith(("<", "≤")):
            return None, float(text.lstrip("<≤="))
        if text.startswith((">", "≥")):
            return float(text.lstrip(">≥=")), None
        low, sep, high = text.partition("-")
        return (float(low), float(high)) if sep else (None, None)
    except ValueError:
        return None, None
