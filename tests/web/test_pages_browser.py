"""The pages in a real browser (Debian Chromium via Playwright) over a synthesized small city:
each role signs in, charts render, figures match the database, access control holds."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from sqlalchemy import func, select

from exchange.test_viewing import add_report
from rhip.exchange import recognition
from rhip.exchange.models import observations, reports
from rhip.exchange.recognition_models import recognition_decisions
from rhip.kernel.clock import now
from rhip.metrics import overview
from rhip.registry.models import institutions
from web.conftest import CANVAS_PAINTED, DOCS_IMG, shot


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
    page.click(f"a[href='/web/doctor/patients/{city.patient}?purpose=TREAT']")
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
    assert {e.resource for e in granted} >= {"Patient", "timeline", "DiagnosticReport"}
    assert all(e.purpose == "TREAT" and e.outcome == "0" for e in granted)
    page.click("[data-testid=trend-link] >> nth=0")
    page.wait_for_selector("body[data-charts-ready='1']")
    assert page.eval_on_selector("[data-testid=chart-trend]", CANVAS_PAINTED) > 100
    shot(page, "doctor-trend")


def _recognisable_item(city) -> str:
    """HbA1c (糖化血红蛋白, 30 days) with a result from yesterday, once the issuing labs hold a
    passed EQA (室间质评: the synthetic city records none, and every lab item requires one)."""
    at, item = now(), "4548-4"
    with city.engine.begin() as conn:
        add_report(conn, city.patient, city.doctor_institution, at - dt.timedelta(days=1),
                   code=item, obs=[dict(code=item, display="糖化血红蛋白", value_num=5.2, unit="%",
                                        reference_range="4-6", abnormal_flag="N")])  # fmt: skip
        issuers = conn.execute(
            select(reports.c.institution_id).where(reports.c.patient_id == city.patient).distinct()
        ).scalars()
        for inst in issuers:
            recognition.add_qualification(conn, inst, "*", passed=True, valid_from=at.replace(
                year=at.year - 1), valid_until=at.replace(year=at.year + 1))  # fmt: skip
        found = recognition.check(conn, city.patient, item, requester=city.doctor_institution)
    assert found["recognisable"]
    return item


def _decisions(city) -> list:
    with city.engine.connect() as conn:
        d = recognition_decisions.c
        query = select(recognition_decisions).where(d.patient_id == city.patient).order_by(d.id)
        return conn.execute(query).all()


def test_doctor_runs_a_recognition_check_and_records_decisions(login, city, access_log):
    item = _recognisable_item(city)
    avoided = overview(city.engine).repeat_avoided or 0
    page = login("dr")
    page.goto(page.url + f"/patients/{city.patient}?purpose=TREAT")
    page.click("[data-testid=recognition-link]")
    page.select_option("[data-testid=rec-item]", item)
    page.click("[data-testid=rec-form] button")
    assert page.get_attribute("[data-testid=rec-result]", "data-recognisable") == "true"
    rows = page.locator("[data-testid=candidate]")
    assert rows.count() >= 1
    for i in range(rows.count()):  # every result says yes, or no with the specific reason
        row = rows.nth(i)
        if row.get_attribute("data-recognisable") == "false":
            assert row.locator("[data-reason]").count() >= 1
            assert row.locator("[data-reason]").first.inner_text().strip()
    shot(page, "doctor-recognition", DOCS_IMG / "web-recognition.png")
    page.click("[data-testid=lang-switch]")
    assert "Mutual recognition check" in page.inner_text("h1")  # the item and purpose are kept
    assert page.locator("[data-testid=candidate]").count() == rows.count()
    page.click("[data-testid=lang-switch]")

    used = page.locator("[data-testid=candidate][data-recognisable=true]").first
    report_id = used.get_attribute("data-report")
    used.locator("[data-testid=recognise] button").click()
    page.wait_for_selector("[data-testid=rec-recorded]")
    page.select_option("[data-testid=refuse] select[name=reason_code]", "patient_request")
    page.click("[data-testid=refuse] button")
    page.wait_for_selector("[data-testid=rec-recorded]")
    assert "不予互认" in page.inner_text("[data-testid=rec-recorded]")
    made = [(d.item_code, d.decision, d.reason_code, d.institution_id, d.decided_by)
            for d in _decisions(city)][-2:]  # fmt: skip
    assert made == [
        (item, "recognised", None, city.doctor_institution, "dr"),
        (item, "refused", "patient_request", city.doctor_institution, "dr"),
    ]
    assert _decisions(city)[-2].report_id == report_id
    assert overview(city.engine).repeat_avoided == avoided + 1  # 避免重复检查 on the overview
    checks = [e for e in access_log.events if e.resource == "recognition" and e.username == "dr"]
    assert {e.subtype for e in checks} == {"search", "create"}
    assert all(e.patient_id == city.patient and e.purpose == "TREAT" for e in checks)


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


def test_integrator_sees_only_its_own_institution(login, city, server):
    page = login("ig")
    # an integrator's home is its own institution's page: status, feeds, volumes, scorecard
    assert page.url.endswith(f"/web/institutions/{city.doctor_institution}")
    assert page.locator("[data-testid=inst-status]").count() == 1
    page.wait_for_selector("body[data-charts-ready='1']")
    shot(page, "integrator-institution")
    with city.engine.connect() as conn:
        other = conn.execute(
            select(institutions.c.id).where(institutions.c.id != city.doctor_institution).limit(1)
        ).scalar_one()
    assert page.goto(f"{server}/web/institutions/{other}").status == 403
    assert page.goto(f"{server}/web/overview").status == 403
    assert page.goto(f"{server}/web/doctor").status == 403


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
