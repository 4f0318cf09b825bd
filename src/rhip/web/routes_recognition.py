"""Mutual recognition check in the doctor workspace (检查检验结果互认核查).

The doctor picks an item of the recognition list; the page shows every earlier result of it for
the patient, recognisable or not and why (``rhip.exchange.recognition.check``), and records the
doctor's decision — recognised (互认, a repeat test avoided) or refused with a national exception
reason (不予互认) — with ``recognition.record_decision``, at the doctor's own institution. Both
are clinical reads of the patient: decided by the policy and audited like the other pages.
"""

from __future__ import annotations

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response

from rhip.exchange import recognition
from rhip.kernel.errors import Conflict, InvalidInput, NotFound
from rhip.web import access
from rhip.web.render import PREFIX, render, view
from rhip.web.routes_clinical import PURPOSES, allow

router = APIRouter(include_in_schema=False)
PATH = f"{PREFIX}/doctor/patients/{{patient_id}}/recognition"
RESOURCE = "recognition"  # the audit event's resource: a check, or a decision (subtype create)


@router.get(PATH)
@view(["doctor"])
def recognition_page(
    request: Request, patient_id: str, purpose: str = "", item: str = "", recorded: str = ""
) -> Response:
    if purpose not in PURPOSES:
        return render(request, "purpose.html", patient_id=patient_id, purposes=PURPOSES,
                      target=PATH.format(patient_id=patient_id))  # fmt: skip
    return _page(request, patient_id, purpose, item, recorded=recorded)


@router.post(PATH)
@view(["doctor"])
def record_decision(
    request: Request,
    patient_id: str,
    purpose: str = Form(""),
    item: str = Form(...),
    decision: str = Form(...),
    report_id: str = Form(""),
    reason_code: str = Form(""),
    note: str = Form(""),
) -> Response:
    """Record the decision (a POST from the page itself: SameSite=Lax keeps other sites out)."""
    viewer = request.state.viewer
    if purpose not in PURPOSES:
        purpose = ""  # the policy refuses a clinical read without a purpose
    allow(request, RESOURCE, patient_id, purpose or None, subtype="create")
    try:
        with request.app.state.engine.begin() as conn:
            made = recognition.record_decision(
                conn, patient_id=patient_id, item=item, decision=decision,
                institution_id=viewer.institution_id or "", decided_by=viewer.username,
                report_id=report_id or None, reason_code=reason_code or None,
                note=note.strip() or None,
            )  # fmt: skip
    except (InvalidInput, Conflict, NotFound) as exc:
        access.record(request, viewer, RESOURCE, patient_id, outcome="failed", purpose=purpose,
                      status=exc.status, subtype="create")  # fmt: skip
        return _page(request, patient_id, purpose, item, failed=exc.message, status=exc.status)
    target = PATH.format(patient_id=patient_id)
    query = f"purpose={purpose}&item={item}&recorded={made['decision']}"
    return RedirectResponse(f"{target}?{query}", status_code=303)


def _page(request: Request, patient_id: str, purpose: str, item: str, *, recorded: str = "",
          failed: str | None = None, status: int = 200) -> Response:  # fmt: skip
    """The check for ``item`` (none chosen: the item list only), audited as a clinical read."""
    rules = recognition.load_rules()
    found = None
    if item in rules:
        allow(request, RESOURCE, patient_id, purpose, subtype="search")
        with request.app.state.engine.connect() as conn:
            found = recognition.check(conn, patient_id, item,
                                      requester=request.state.viewer.institution_id)  # fmt: skip
    return render(
        request, "recognition.html", status=status, patient_id=patient_id, purpose=purpose,
        rules=rules.values(), item=item, found=found, exceptions=recognition.EXCEPTION_REASONS,
        recorded=recorded if recorded in ("recognised", "refused") else "", failed=failed,
        back=f"{PREFIX}/doctor/patients/{patient_id}?purpose={purpose}",
    )  # fmt: skip
