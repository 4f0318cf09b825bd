"""The pages in a real browser (Debian Chromium via Playwright) over a synthesized small city:
each role signs in, charts render, figures match the database, access control holds."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import func, select

from rhip.exchange.models import observations, reports
from rhip.metrics import overview
from rhip.registry.models import institutions
from web.conftest import CANVAS_PAINTED, shot


def _int(text: str) -> int:
    return int(re.sub(r"[^\d]", "", text))


def test_operator_overview_charts_render_with_database_figures(login, city):
    page = login("op")
    assert page.url.endswith("/web/overview")
    page.wait_for_selector("body[data-charts-ready='3']")
    for chart in ("chart-daily", "chart-types", "chart-quality"):
        painted = page.eval_on_selector(f"[data-testid={chart}]", CANVAS_PAINTED)
        assert painted > 500, f"{chart} has an empty canvas"
    with city.engine.connect() as conn:
        active = institutions.c.active.is_(True)
        total = conn.execute(select(func.count()).where(active)).scalar_one()
        connected = conn.execute(
            select(func.count()).where(active, institutions.c.connection_status == "connected")
        ).scalar_one()
        labs = conn.execute(
            select(func.count()).where(
                active,
                institutions.c.type == "lab",
                institutions.c.connection_status == "connected",
            )
        ).scalar_one()
        n_reports = conn.execute(select(func.count()).select_from(reports)).scalar_one()
    text = lambda tid: page.inner_text(f"[data-testid={tid}]")  # noqa: E731
    assert _int(text("kpi-total")) == total
    assert _int(text("kpi-connected")) == connected
    assert _int(text("kpi-type-lab")) == labs
    assert _int(text("kpi-reports")) == n_reports
    ov = overview(city.engine)
    assert text("kpi-qc") == f"{ov.quality_rate:,.1f}%"
    assert page.locator("[data-testid^=district-]").count() == len(ov.by_district) > 5
    assert "区域全民健康信息平台" in page.inner_text("header")
    shot(page, "overview")
    page.set_viewport_size({"width": 1920, "height": 1080})
    page.goto(page.url + "?wall=1")
    page.wait_for_selector("body[data-charts-ready='3']")
    shot(page, "overview-wall")


def test_english_switch_and_institutions(login, city):
    page = login("op")
    page.click("[data-testid=lang-switch]")
    assert "Platform overview" in page.inner_text("h1")
    page.goto(page.url.split("?")[0].replace("/overview", "/institutions") + "?lang=zh&type=lab")
    total = _int(page.inner_text("[data-testid=inst-total]"))
    with city.engine.connect() as conn:
        labs = conn.execute(select(func.count()).where(institutions.c.type == "lab")).scalar_one()
    assert total == labs
    shot(page, "institutions")
    page.click("[data-testid=inst-table] a >> nth=0")
    assert page.locator("[data-testid=inst-status]").count() == 1
    page.wait_for_selector("body[data-charts-ready='1']")
    shot(page, "institution")


def test_doctor_finds_patient_and_sees_abnormal_value(login, city, access_log):
    from rhip.identity.models import persons

    with city.engine.connect() as conn:
        name, born = conn.execute(
            select(persons.c.name, persons.c.birth_date).where(persons.c.id == city.patient)
        ).one()
    page = login("dr")
    assert page.url.endswith("/web/doctor")
    page.fill("[data-testid=search-name] input[name=name]", name)
    page.fill("[data-testid=search-name] input[name=birth_date]", born.isoformat())
    page.click("[data-testid=search-name] button")
    shot(page, "doctor-search")
    page.click(f"a[href='/web/doctor/patients/{city.patient}']")
    page.wait_for_selector("[data-testid=purpose-form]")
    page.click("[data-testid=purpose-form] button")
    n = _int(page.inner_text("[data-testid=report-count]"))
    with city.engine.connect() as conn:
        expected = conn.execute(
            select(func.count()).where(reports.c.patient_id == city.patient, reports.c.current)
        ).scalar_one()
    assert n == expected > 0
    shot(page, "doctor-timeline")
    page.click("[data-testid=open-report][data-abnormal]:not([data-abnormal='0']) >> nth=0")
    row = page.locator("[data-testid=obs][data-abnormal=true]").first
    assert row.count() == 1
    color = row.locator(".value").evaluate("e => getComputedStyle(e).color")
    assert color == "rgb(192, 38, 45)"  # --bad: abnormal values stand out
    shot(page, "doctor-report")
    granted = [e for e in access_log.events if e.patient_id == city.patient and e.username == "dr"]
    assert {e.resource for e in granted} >= {"timeline", "DiagnosticReport"}
    assert all(e.purpose == "TREAT" and e.outcome == "0" for e in granted)
    page.click("[data-testid=trend-link] >> nth=0")
    page.wait_for_selector("body[data-charts-ready='1']")
    assert page.eval_on_selector("[data-testid=chart-trend]", CANVAS_PAINTED) > 100
    shot(page, "doctor-trend")


def test_patient_sees_own_reports_and_tampering_is_refused_and_audited(
    login, city, server, access_log
):
    page = login("pt")
    assert page.url.endswith("/web/me")
    n = _int(page.inner_text("[data-testid=report-count]"))
    with city.engine.connect() as conn:
        mine = conn.execute(
            select(func.count()).where(reports.c.patient_id == city.patient, reports.c.current)
        ).scalar_one()
        theirs = conn.execute(
            select(observations.c.report_id).where(observations.c.patient_id == city.other)
        ).scalar()
    assert n == mine
    shot(page, "patient")
    response = page.goto(f"{server}/web/me/reports/{theirs}")
    assert response.status in (403, 404)
    assert page.locator("[data-testid=error]").count() == 1
    refused = [e for e in access_log.events if e.patient_id == city.other and e.username == "pt"]
    assert refused and refused[-1].outcome != "0" and refused[-1].status in (403, 404)
    assert page.goto(f"{server}/web/overview").status == 403
    assert page.goto(f"{server}/web/doctor/patients/{city.other}?purpose=TREAT").status == 403


@pytest.mark.parametrize("who", ["op", "dr"])
def test_index_page(login, server, who):
    page = login(who)
    page.goto(f"{server}/web/index")
    page.wait_for_selector("body[data-charts-ready='3']")
    for chart in ("chart-radar", "chart-bar", "chart-intervals"):
        assert page.eval_on_selector(f"[data-testid={chart}]", CANVAS_PAINTED) > 500
    assert page.locator("[data-testid=ranking] tr").count() == 37  # header + 36 cities
    assert page.inner_text("[data-testid=live-coverage_rate]") != "—"
    with page.expect_download() as dl:
        page.click("[data-testid=workbook]")
    assert dl.value.suggested_filename.endswith(".xlsx")
    if who == "op":
        shot(page, "index")
