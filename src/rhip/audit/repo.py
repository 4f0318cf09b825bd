"""Reading the access log: search (AuditEvent), a patient's viewers, daily view statistics."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Engine, and_, case, func, or_, select

from rhip.audit.models import audit_events as E
from rhip.audit.schemas import MINOR_FAILURE, SUCCESS, AuditFilter, AuditRecord, ViewStat

_FIELDS = tuple(AuditRecord.__dataclass_fields__)


def _where(flt: AuditFilter) -> list:
    conds = []
    if flt.patient_ids is not None:
        conds.append(E.c.patient_id.in_(flt.patient_ids))
    if flt.agents:
        conds.append(or_(E.c.username.in_(flt.agents), E.c.user_id.in_(flt.agents)))
    if flt.exclude_user_ids:
        conds.append(or_(E.c.user_id.is_(None), E.c.user_id.not_in(flt.exclude_user_ids)))
    for col, values in (
        (E.c.role, flt.roles), (E.c.outcome, flt.outcomes), (E.c.subtype, flt.subtypes),
        (E.c.seq, flt.seqs),
    ):  # fmt: skip
        if values:
            conds.append(col.in_(values))
    if flt.since is not None:
        conds.append(E.c.recorded_at >= flt.since)
    if flt.until is not None:
        conds.append(E.c.recorded_at < flt.until)
    return conds


def search(
    engine: Engine, flt: AuditFilter, offset: int = 0, count: int = 20
) -> tuple[int, list[AuditRecord]]:
    """Events matching ``flt``, newest first, with the total count."""
    conds = _where(flt)
    with engine.connect() as conn:
        total = conn.execute(select(func.count()).select_from(E).where(*conds)).scalar_one()
        rows = conn.execute(
            select(*(E.c[f] for f in _FIELDS))
            .where(*conds)
            .order_by(E.c.recorded_at.desc(), E.c.seq.desc())
            .offset(offset)
            .limit(count)
        ).all()
    return total, [AuditRecord(*r) for r in rows]


def views_of_patient(
    engine: Engine, patient_ids: tuple[str, ...], user_id: str, offset: int = 0, count: int = 50
) -> tuple[int, list[AuditRecord]]:
    """Who else read (or tried to read) these golden records and why: the patient's own
    accesses (``user_id``) left out."""
    flt = AuditFilter(patient_ids=patient_ids, exclude_user_ids=(user_id,))
    return search(engine, flt, offset, count)


def view_stats(
    engine: Engine,
    since: dt.date,
    until: dt.date,
    institution_id: str | None = None,
) -> list[ViewStat]:
    """Reads per viewer institution and CST day in [since, until] (inclusive days)."""
    conds = [E.c.day >= since, E.c.day <= until]
    if institution_id is not None:
        conds.append(E.c.institution_id == institution_id)
    query = (
        select(
            E.c.institution_id,
            E.c.day,
            func.sum(case((E.c.outcome == SUCCESS, 1), else_=0)),
            func.sum(case((E.c.outcome == MINOR_FAILURE, 1), else_=0)),
            func.sum(case((and_(E.c.flagged.is_(True), E.c.outcome == SUCCESS), 1), else_=0)),
        )
        .where(*conds)
        .group_by(E.c.institution_id, E.c.day)
        .order_by(E.c.day, E.c.institution_id)
    )
    with engine.connect() as conn:
        rows = conn.execute(query).all()
    return [ViewStat(r[0], r[1], int(r[2]), int(r[3]), int(r[4])) for r in rows]
