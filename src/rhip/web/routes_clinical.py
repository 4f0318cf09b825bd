"""Doctor workspace (医生调阅工作台) and the patient's own reports (居民查看本人报告).

Every clinical page asks the security policy (``rhip.security.policy.decide``) with the viewer's
relationship to the patient and the purpose of access they chose, and records the access —
granted or refused — through ``rhip.web.access``.
"""

from __future__ import annotations

import datetime as dt
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response

from rhip.identity import service as identity
from rhip.kernel.errors import InvalidInput
from rhip.kernel.systems import RESIDENT_ID
from rhip.security import service as security
from rhip.security.policy import Action, decide
from rhip.web import access, clinical
from rhip.web.render import PREFIX, PageError, render, view

router = APIRouter(include_in_schema=False)
PURPOSES = ("TREAT", "COC", "ETREAT")


def _allow(request: Request, action: str, patient_id: str, purpose: str | None) -> None:
    """Refuse (403/404, audited) unless the policy lets the viewer read this patient's data."""
    viewer = request.state.viewer
    with request.app.state.engine.connect() as conn:
        relation = security.care_relationship(conn, viewer.principal, patient_id)
    decision = decide(viewer.principal, Action.READ_CLINICAL, action, purpose, relation)
    outcome = "granted" if decision.allowed else "denied"
    access.record(request, viewer, action, patient_id, outcome=outcome, purpose=purpose,
                  status=decision.status, flagged=decision.flagged)  # fmt: skip
    if not decision.allowed:
        raise PageError(decision.status)


@router.get(f"{PREFIX}/doctor")
@view(["doctor"])
def doctor_home(request: Request) -> Response:
    return render(request, "doctor.html", people=None, error=None, rid="", name="", birth_date="")


@router.post(f"{PREFIX}/doctor")
@view(["doctor"])
def doctor_search(
    request: Request, rid: str = Form(""), name: str = Form(""), birth_date: str = Form("")
) -> Response:
    """Find a patient by resident ID, or by name and birth date (a POST: no ID in any URL)."""
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
        access.record(request, request.state.viewer, "Patient", None, subtype="search")
    else:
        error = True
    return render(request, "doctor.html", people=people, error=error, rid=rid, name=name,
                  birth_date=birth_date)  # fmt: skip


@router.get(f"{PREFIX}/doctor/patients/{{patient_id}}")
@view(["doctor"])
def doctor_timeline(request: Request, patient_id: str, purpose: str = "") -> Response:
    if purpose not in PURPOSES:
        return render(request, "purpose.html", patient_id=patient_id, purposes=PURPOSES)
    _allow(request, "timeline", patient_id, purpose)
    person = identity.get_person(request.app.state.engine, request.app.state.vault, patient_id)
    items = clinical.timeline(request.app.state.engine, patient_id)
    return render(request, "timeline.html", person=person, items=items,
                  link=_doctor_link(purpose), purpose=purpose)  # fmt: skip


@router.get(f"{PREFIX}/doctor/reports/{{report_id}}")
@view(["doctor"])
def doctor_report(request: Request, report_id: str, purpose: str = "") -> Response:
    rep = clinical.report(request.app.state.engine, report_id)
    if rep is None:
        raise PageError(404)
    if purpose not in PURPOSES:
        return render(request, "purpose.html", patient_id=rep["patient_id"], purposes=PURPOSES,
                      target=f"{PREFIX}/doctor/reports/{report_id}")  # fmt: skip
    _allow(request, "DiagnosticReport", rep["patient_id"], purpose)
    back = f"{PREFIX}/doctor/patients/{rep['patient_id']}?purpose={purpose}"
    return render(request, "report.html", rep=rep, link=_doctor_link(purpose), back=back)


@router.get(f"{PREFIX}/doctor/patients/{{patient_id}}/trend")
@view(["doctor"])
def doctor_trend(request: Request, patient_id: str, code: str, purpose: str = "") -> Response:
    if purpose not in PURPOSES:
        return render(request, "purpose.html", patient_id=patient_id, purposes=PURPOSES)
    _allow(request, "trend", patient_id, purpose)
    return _trend_page(request, patient_id, code, _doctor_link(purpose))


@router.get(f"{PREFIX}/me")
@view(["patient"])
def my_reports(request: Request) -> Response:
    me = request.state.viewer.patient_id
    _allow(request, "timeline", me, "PATRQT")
    items = clinical.timeline(request.app.state.engine, me)
    return render(request, "timeline.html", person=None, items=items, link=_patient_link())


@router.get(f"{PREFIX}/me/reports/{{report_id}}")
@view(["patient"])
def my_report(request: Request, report_id: str) -> Response:
    rep = clinical.report(request.app.state.engine, report_id)
    if rep is None:
        raise PageError(404)
    _allow(request, "DiagnosticReport", rep["patient_id"], "PATRQT")
    return render(request, "report.html", rep=rep, link=_patient_link(), back=f"{PREFIX}/me")


@router.get(f"{PREFIX}/me/trend")
@view(["patient"])
def my_trend(request: Request, code: str) -> Response:
    me = request.state.viewer.patient_id
    _allow(request, "trend", me, "PATRQT")
    return _trend_page(request, me, code, _patient_link())


def _trend_page(request: Request, patient_id: str, code: str, link: dict) -> Response:
    points = clinical.trend(request.app.state.engine, patient_id, code)
    low, high = clinical.reference_bounds(points[-1]["reference_range"] if points else None)
    series: dict[str, list] = {}
    for p in points:
        series.setdefault(p["institution"], []).append(
            [p["observed_at"].isoformat(), p["value_num"]]
        )
    chart = {
        "unit": points[-1]["unit"] if points else "",
        "low": low,
        "high": high,
        "series": [{"name": k, "points": v} for k, v in series.items()],
    }
    return render(request, "trend.html", points=points, code=code, charts={"trend": chart},
                  link=link)  # fmt: skip


def _doctor_link(purpose: str) -> dict:
    q = urlencode({"purpose": purpose})
    return {
        "report": f"{PREFIX}/doctor/reports/{{id}}?{q}",
        "trend": f"{PREFIX}/doctor/patients/{{patient}}/trend?{q}&code={{code}}",
    }


def _patient_link() -> dict:
    return {"report": f"{PREFIX}/me/reports/{{id}}", "trend": f"{PREFIX}/me/trend?code={{code}}"}
