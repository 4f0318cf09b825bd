"""Platform figures against hand counts on a small, fully known database."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import Engine, insert

from rhip.exchange.models import reports
from rhip.kernel.clock import today_cst
from rhip.metrics import overview, platform_indicators
from rhip.metrics.figures import institution_daily
from rhip.registry.models import districts, institutions


def _institution(conn, iid: str, kind: str, status: str, active: bool = True) -> None:
    now = dt.datetime.now(dt.UTC)
    conn.execute(
        insert(institutions).values(
            id=iid, credit_code=iid.ljust(18, "0"), name=f"机构{iid}", type=kind,
            district_code="440304", connection_status=status, active=active, feeds="{}",
            functions="{}", allow_cidrs="", created_at=now, updated_at=now,
        )
    )  # fmt: skip


def _report(conn, rid: str, iid: str, kind: str, at: dt.datetime) -> None:
    conn.execute(
        insert(reports).values(
            id=rid, report_key=rid, version=1, current=True, patient_id="p1", institution_id=iid,
            kind=kind, code="X", status="final", issued_at=at, recorded_at=at,
        )
    )  # fmt: skip


@pytest.fixture
def small(engine: Engine) -> Engine:
    # 23:30 CST yesterday is 15:30 UTC: it must count on yesterday's CST day, not today's
    today = today_cst()
    late = dt.datetime.combine(today, dt.time(15, 30), tzinfo=dt.UTC) - dt.timedelta(days=1)
    with engine.begin() as conn:
        conn.execute(insert(districts).values(code="440304", name="福田区", population=1000))
        _institution(conn, "A", "public_hospital", "connected")
        _institution(conn, "B", "lab", "connected")
        _institution(conn, "C", "lab", "testing")
        _institution(conn, "D", "clinic", "connected", active=False)  # deregistered: not counted
        _report(conn, "r1", "A", "lab", late)
        _report(conn, "r2", "A", "exam", late)
        _report(conn, "r3", "A", "lab", late - dt.timedelta(days=40))  # outside the window
    return engine


@pytest.mark.postgres
def test_overview_counts(small: Engine) -> None:
    ov = overview(small, days=30)
    assert (ov.institutions_total, ov.institutions_connected) == (3, 2)
    by_type = {r.type: (r.total, r.connected) for r in ov.by_type}
    assert by_type == {"public_hospital": (1, 1), "lab": (2, 1)}
    assert [(d.code, d.total, d.connected, d.population) for d in ov.by_district] == [
        ("440304", 3, 2, 1000)
    ]
    assert ov.reports_total == 3
    yesterday = today_cst() - dt.timedelta(days=1)
    day = {d.day: (d.lab, d.exam) for d in ov.daily}
    assert day[yesterday] == (1, 1) and day[today_cst()] == (0, 0)
    assert len(ov.daily) == 30 and sum(d.lab + d.exam for d in ov.daily) == 2
    assert institution_daily(small, "A", days=30)[-2].lab == 1


@pytest.mark.postgres
def test_platform_indicators(small: Engine) -> None:
    live = platform_indicators(small, days=30)
    assert live.coverage_rate == pytest.approx(200 / 3)
    assert live.sharing_rate == pytest.approx(50.0)  # A sent reports, B did not
    assert live.population == 1000
