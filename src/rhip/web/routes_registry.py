"""Institutions (接入机构): a searchable list and a detail page with connection status, feeds,
volumes and the quality scorecard (质控评分卡). Operators see all; an integrator its own."""

from __future__ import annotations

import datetime as dt

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from rhip.kernel import clock
from rhip.metrics import institution_daily
from rhip.registry import service as registry
from rhip.registry import vocabulary as v
from rhip.registry.schemas import InstitutionFilter
from rhip.web import i18n
from rhip.web.render import PREFIX, PageError, render, view

router = APIRouter(include_in_schema=False)
PAGE = 50


@router.get(f"{PREFIX}/institutions")
@view(["operator", "integrator"])
def institutions_page(
    request: Request, q: str = "", type: str = "", district: str = "", status: str = "",
    page: int = 1,
) -> Response:  # fmt: skip
    viewer = request.state.viewer
    if viewer.role == "integrator":
        return RedirectResponse(f"{PREFIX}/institutions/{viewer.institution_id}", 303)
    flt = InstitutionFilter(
        name_contains=(q.strip(),) if q.strip() else (),
        types=(type,) if type in v.TYPES else (),
        district_codes=(district,) if district else (),
        connection_statuses=(status,) if status in v.CONNECTION_STATUSES else (),
    )
    page = max(page, 1)
    total, rows = registry.search(request.app.state.engine, flt, PAGE, (page - 1) * PAGE)
    with request.app.state.engine.connect() as conn:
        from rhip.registry import repo

        districts = repo.district_table(conn)
    return render(
        request, "institutions.html", rows=rows, total=total, page=page, pages=-(-total // PAGE),
        q=q, type=type, district=district, state=status, types=list(v.TYPES),
        statuses=list(v.CONNECTION_STATUSES), districts=districts,
    )  # fmt: skip


@router.get(f"{PREFIX}/institutions/{{institution_id}}")
@view(["operator", "integrator"])
def institution_page(request: Request, institution_id: str) -> Response:
    viewer = request.state.viewer
    if viewer.role == "integrator" and viewer.institution_id != institution_id:
        raise PageError(403)
    engine = request.app.state.engine
    inst = registry.get(engine, institution_id)  # NotFound → 404 page
    daily = institution_daily(engine, institution_id, days=30)
    card = _scorecard(engine, institution_id, daily[0].day, daily[-1].day)
    t = i18n.translator(i18n.pick_lang(request))
    charts = {
        "daily": {
            "days": [d.day.strftime("%m-%d") for d in daily],
            "lab": [d.lab for d in daily],
            "exam": [d.exam for d in daily],
            "views": None,
            "labels": {"lab": t("ov.lab"), "exam": t("ov.exam"), "views": t("ov.views")},
        }
    }
    return render(
        request, "institution.html", inst=inst, daily=daily, card=card, charts=charts,
        feeds=v.FEEDS,
    )  # fmt: skip


def _scorecard(engine, institution_id: str, start: dt.date, end: dt.date):
    """The quality context's scorecard, or None while its tables are not in this database."""
    from sqlalchemy import inspect

    if not inspect(engine).has_table("quality_daily"):
        return None
    from rhip.quality import scorecard

    return scorecard(engine, institution_id, start, end, clock.now())
