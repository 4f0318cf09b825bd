"""Access records (调阅审计) of clinical pages: who opened which patient's data, why, and with
what outcome — refusals too, so URL tampering leaves a trace.

Appended to the hash-chained audit log (``rhip.audit.record``), like the API's reads; every
event also goes to the ``rhip.audit.web`` logger as one structured record (never an identifier).
"""

from __future__ import annotations

import logging

from fastapi import Request

from rhip import audit
from rhip.audit.schemas import MINOR_FAILURE, SUCCESS, AuditEventIn
from rhip.web.session import Viewer

log = logging.getLogger("rhip.audit.web")


def record(
    request: Request,
    viewer: Viewer,
    resource: str,
    patient_id: str | None,
    *,
    outcome: str = "granted",
    purpose: str | None = None,
    status: int = 200,
    flagged: bool = False,
    subtype: str = "read",
) -> AuditEventIn:
    """Record one access to ``resource`` (timeline, DiagnosticReport, trend, search)."""
    p = viewer.principal
    event = AuditEventIn(
        username=p.username,
        role=p.role.value,
        resource=resource,
        subtype=subtype,
        user_id=p.user_id,
        institution_id=p.institution_id,
        patient_id=patient_id,
        purpose=purpose,
        query=request.url.path,  # paths carry golden ids only, never a resident ID
        outcome=SUCCESS if outcome == "granted" else MINOR_FAILURE,
        status=status,
        flagged=flagged,
        client_address=request.client.host if request.client else None,
    )
    state = request.app.state
    if getattr(state, "audit_key", None) is None:  # as rhip.api.auth.audit_key: one per app
        state.audit_key = audit.chain_key(state.settings.secret_key)
    audit.record(state.engine, state.audit_key, [event])
    log.info("access %s %s %s", resource, outcome, status, extra={"access": event})
    return event
