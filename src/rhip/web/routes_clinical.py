"""Doctor workspace (医生调阅工作台) and the patient's own reports (居民查看本人报告).

Every clinical page asks the security policy (``rhip.security.policy.decide``) with the viewer's
relationship to the patient and the purpose of access they chose, and records the access —
granted or refused — through ``rhip.web.access``; the reads are the platform's viewing service
(``rhip.exchange.viewing``: timeline, report detail, trend), as the API's.
"""

from __future__ import annotations

import datetime as dt
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response

from rhip.exchange import viewing
from rhip.identity import service as identity
from rhip.kernel.errors import InvalidInput
from rhip.kernel.systems import RESIDENT_ID
from rhip.security import service as security
from rhip.security.policy import Action, Relationship, decide
from rhip.web import access, clinical
from rhip.web.render import PREFIX, PageError, render, view

router = APIRouter(include_in_schema=False)
PURPOSES = ("TREAT", "COC", "ETREAT")
PAGE = viewing.MAX_LIMIT  # reports per timeline page


def allow(request: Request, resource: str, patient_id: str, purpose: str | None, **kw) -> None:
    """Refuse (403/404, audited) unless the policy lets the viewer read this patient's data;
    ``kw`` go to the audit event (``subtype``)."""
    viewer = request.state.viewer
    with request.app.state.engine.connect() as conn:
        relation = security.care_relationship(conn, viewer.principal, patient_id)
    decision = decide(viewer.principal, Action.READ_CLINICAL, resource, purpose, relation)
    outcome = "granted" if decision.allowed else "denied"
    access.record(request, viewer, resource, patient_id, outcome=outcome, purpose=purpose,
                  status=decision.status, flagged=decision.flagged, **kw)  # fmt: skip
    if not decision.allowed:
        raise PageError(decision.status)


@router.get(f"{PREFIX}/doctor")
@view(["doctor"])
def doctor_home(request: Request) -> Response:
    return render(request, "doctor.html", people=None, error=None, rid="", name="",
                  birth_date="", purpose="TREAT", purposes=PURPOSES)  # fmt: skip


@router.post(f"{PREFIX}/doctor")
@view(["doctor"])
def doctor_search(
    request: Request,
    rid: str = Form(""),
    name: str = Form(""),
    birth_date: str = Form(""),
    purpose: str = Form("TREAT"),
) -> Response:
    """Find a patient by resident ID, or by name and birth date (a POST: no ID in any URL); a
    Patient lookup, so the policy's ``LOOKUP_PATIENT`` rules with the purpose chosen."""
    viewer = request.state.viewer
    purpose = purpose if purpose in PURPOSES else "TREAT"
    decision = decide(viewer.principal, Action.LOOKUP_PATIENT, "Patient", purpose,
                      Relationship.NONE)  # fmt: skip
    if not decision.allowed:
        access.record(request, viewer, "Patient", None, outcome="denied", purpose=purpose,
                      status=decision.status, subtype="search")  # fmt: skip
        raise PageError(decision.status)
    people, error = None, False
    rid, name = rid.strip().upper(), name.strip()
    if rid or (name and birth_date):
        try:
            born = dt.date.fromisoformat(birth_date) if birth_date and not rid else None
            ident = [(RESIDENT_ID, rid)] if rid else []
            _, people = identity.search_persons(
                request.app.state.engine, request.app.state.vault,
                identifier=ident, name=None if rid else name, birthdate=born, count=20,
            )  # fmt: skip
        except (ValueError, InvalidInput):
            error = True
        for pid in [p.id for p in people or []] or [None]:  # as the API: one event per patient
            access.record(request, viewer, "Patient", pid, purpose=purpose, subtype="search")
    else:
        error = True
    return render(request, "doctor.html", people=people, error=error, rid=rid, name=name,
                  birth_date=birth_date, purpose=purpose, purposes=PURPOSES)  # fmt: skip


@router.get(f"{PREFIX}/doctor/patients/{{patient_id}}")
@view(["doctor"])
def doctor_timeline(
    request: Request, patient_id: str, purpose: str = "", before: str | None = None
) -> Response:
    if purpose not in PURPOSES:
        return render(request, "purpose.html", patient_id=patient_id, purposes=PURPOSES)
    allow(request, "timeline", patient_id, purpose)
    person = identity.get_person(request.app.state.engine, request.app.state.vault, patient_id)
    return _timeline_page(request, patient_id, before, _doctor_link(purpose), person=person,
                          purpose=purpose)  # fmt: skip


@router.get(f"{PREFIX}/doctor/reports/{{report_id}}")
@view(["doctor"])
def doctor_report(request: Request, report_id: str, purpose: str = "") -> Response:
    patient_id = _report_patient(request, report_id)
    if purpose not in PURPOSES:
        return render(request, "purpose.html", patient_id=patient_id, purposes=PURPOSES,
                      target=f"{PREFIX}/doctor/reports/{report_id}")  # fmt: skip
    allow(request, "DiagnosticReport", patient_id, purpose)
    link = _doctor_link(purpose)
    back = f"{PREFIX}/doctor/patients/{patient_id}?purpose={purpose}"
    return _report_page(request, report_id, patient_id, link, back)


@router.get(f"{PREFIX}/doctor/patients/{{patient_id}}/trend")
@view(["doctor"])
def doctor_trend(request: Request, patient_id: str, code: str, purpose: str = "") -> Response:
    if purpose not in PURPOSES:
        return render(request, "purpose.html", patient_id=patient_id, purposes=PURPOSES)
    allow(request, "trend", patient_id, purpose)
    return _trend_page(request, patient_id, code, _doctor_link(purpose))


@router.get(f"{PREFIX}/me")
@view(["patient"])
def my_reports(request: Request, before: str | None = None) -> Response:
    me = request.state.viewer.patient_id
    allow(request, "timeline", me, "PATRQT")
    return _timeline_page(request, me, before, _patient_link(), person=None)


@router.get(f"{PREFIX}/me/reports/{{report_id}}")
@view(["patient"])
def my_report(request: Request, report_id: str) -> Response:
    patient_id = _report_patient(request, report_id)
    allow(request, "DiagnosticReport", patient_id, "PATRQT")
    return _report_page(request, report_id, patient_id, _patient_link(), f"{PREFIX}/me")


@router.get(f"{PREFIX}/me/trend")
@view(["patient"])
def my_trend(request: Request, code: str) -> Response:
    me = request.state.viewer.patient_id
    allow(request, "trend", me, "PATRQT")
    return _trend_page(request, me, code, _patient_link())


def _report_patient(request: Request, report_id: str) -> str:
    """The golden patient the report belongs to (the survivor of a merge), for the decision;
    an unknown or malformed id is the 404 page (``render.view``)."""
    with request.app.state.engine.connect() as conn:
        return viewing.report_patient(conn, report_id)


def _timeline_page(request, patient_id: str, before, link: dict, **ctx) -> Response:
    with request.app.state.engine.connect() as conn:
        page = viewing.timeline(conn, patient_id, limit=PAGE, before=before)
        counts = clinical.abnormal_counts(conn, [r["id"] for r in page["items"]])
    items = [r | {"abnormal": counts.get(r["id"], 0)} for r in page["items"]]
    more = f"?{urlencode(dict(request.query_params) | {'before': page['next']})}"
    return render(request, "timeline.html", items=items, link=link,
                  more=more if page["next"] else None, **ctx)  # fmt: skip


def _report_page(request, report_id: str, patient_id: str, link: dict, back: str) -> Response:
    with request.app.state.engine.connect() as conn:
        rep = viewing.report_detail(conn, report_id)
    return render(request, "report.html", rep=rep, patient_id=patient_id, link=link, back=back)


def _trend_page(request: Request, patient_id: str, code: str, link: dict) -> Response:
    with request.app.state.engine.connect() as conn:
        trend = viewing.trend(conn, patient_id, code)
    return render(request, "trend.html", trend=trend, code=code,
                  charts={"trend": clinical.trend_chart(trend)}, link=link)  # fmt: skip


def _doctor_link(purpose: str) -> dict:
    q = urlencode({"purpose": purpose})
    return {
        "report": f"{PREFIX}/doctor/reports/{{id}}?{q}",
        "trend": f"{PREFIX}/doctor/patients/{{patient}}/trend?{q}&code={{code}}",
        "recognition": f"{PREFIX}/doctor/patients/{{patient}}/recognition?{q}",
    }


def _patient_link() -> dict:
    return {"report": f"{PREFIX}/me/reports/{{id}}", "trend": f"{PREFIX}/me/trend?code={{code}}"}
