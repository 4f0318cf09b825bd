"""Platform REST for the access log: a patient's viewers (谁看了我的报告) and view statistics."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query

from rhip import audit
from rhip.api.auth import CurrentUser, permit, refusal
from rhip.api.deps import EngineDep
from rhip.kernel import clock
from rhip.kernel.errors import InvalidInput
from rhip.security.policy import Action, Relationship, decide
from rhip.security.purpose import PURPOSES
from rhip.security.schemas import Principal

router = APIRouter(prefix="/api/audit", tags=["audit"])
StatsUser = Annotated[Principal, Depends(permit(Action.READ_STATS))]


@router.get("/my-views")
def my_views(
    principal: CurrentUser,
    engine: EngineDep,
    limit: int = Query(50, ge=1, le=500),
    offset: int = Query(0, ge=0),
) -> dict[str, Any]:
    """For a patient: who read (or tried to read) their records, when and why, newest first."""
    relationship = Relationship.SELF if principal.patient_id else Relationship.NONE
    decision = decide(principal, Action.READ_OWN_AUDIT, "AuditEvent", None, relationship)
    if not decision.allowed:
        raise refusal(decision)
    assert principal.patient_id is not None
    total, found = audit.views_of_patient(
        engine, (principal.patient_id,), principal.user_id, offset, limit
    )
    return {"total": total, "limit": limit, "offset": offset, "items": [_view(e) for e in found]}


def _view(e: audit.AuditRecord) -> dict[str, Any]:
    return {
        "at": e.recorded_at.isoformat(),
        "who": e.agent_name or e.username,
        "role": e.role,
        "institution_id": e.institution_id,
        "purpose": e.purpose,
        "purpose_display": PURPOSES.get(e.purpose or "", None),
        "what": e.resource,
        "allowed": e.outcome == audit.SUCCESS,
        "emergency": e.flagged,
    }


@router.get("/stats")
def stats(
    _user: StatsUser,
    engine: EngineDep,
    since: dt.date | None = Query(None, description="first day (CST), default 30 days ago"),
    until: dt.date | None = Query(None, description="last day (CST), default today"),
    institution: str | None = Query(None, description="the viewers' institution id"),
) -> dict[str, Any]:
    """Reads of clinical data per viewer institution and day: allowed, refused, break-glass."""
    until = until or clock.today_cst()
    since = since or until - dt.timedelta(days=29)
    if since > until:
        raise InvalidInput(
            f"since ({since.isoformat()}) is after until ({until.isoformat()})",
            expression="since",
        )
    rows = audit.view_stats(engine, since, until, institution)
    return {
        "since": since.isoformat(),
        "until": until.isoformat(),
        "items": [
            {"institution_id": r.institution_id, "day": r.day.isoformat(), "views": r.views,
             "refused": r.refused, "flagged": r.flagged}
            for r in rows
        ],
    }  # fmt: skip
