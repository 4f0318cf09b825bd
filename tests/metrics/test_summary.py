"""The daily summaries equal direct counts of the raw tables, however the rows arrive."""

from __future__ import annotations

import datetime as dt
import itertools

import pytest
from sqlalchemy import Engine, func, insert, literal_column, select, update

from metrics.test_figures import _institution
from rhip.audit.models import audit_events
from rhip.exchange.models import reports
from rhip.exchange.recognition_models import recognition_decisions
from rhip.metrics import summary
from rhip.metrics.figures import institution_daily, overview
from rhip.metrics.models import metrics_daily, metrics_watermarks
from rhip.metrics.sources import cst_day
from rhip.registry.models import districts

_ids = itertools.count(1)


def _report(conn, iid: str, kind: str, at: dt.datetime, key: str | None = None, v: int = 1):
    rid = f"r{next(_ids)}"
    conn.execute(
        insert(reports).values(
            id=rid, report_key=key or rid, version=v, current=True, patient_id="p1",
            institution_id=iid, kind=kind, code="X", status="final" if v == 1 else "corrected",
            issued_at=at, recorded_at=at,
        )
    )  # fmt: skip
    return rid


def _view(conn, seq: int, iid: str | None, at: dt.datetime, action: str = "R") -> None:
    conn.execute(
        insert(audit_events).values(
            seq=seq, recorded_at=at, day=(at + dt.timedelta(hours=8)).date(), action=action,
            subtype="read", username="u", role="doctor", institution_id=iid, patient_id="p1",
            resource="DiagnosticReport", outcome="0", status=200, flagged=False,
            prev_hash="0", hash="0",
        )
    )  # fmt: skip


def _decision(conn, iid: str, decision: str, at: dt.datetime) -> None:
    conn.execute(
        insert(recognition_decisions).values(
            patient_id="p1", item_code="GLU", decision=decision, institution_id=iid,
            decided_by="dr", decided_at=at,
        )
    )  # fmt: skip


def _raw(conn) -> dict[tuple, int]:
    """Direct COUNTs over the raw tables, keyed like the summary."""
    out: dict[tuple, int] = {}
    r, a, d = reports, audit_events, recognition_decisions
    viewer = func.coalesce(a.c.institution_id, literal_column("''"))
    for q in (
        select(cst_day(conn, r.c.recorded_at), r.c.institution_id, r.c.kind, func.count()).group_by(
            cst_day(conn, r.c.recorded_at), r.c.institution_id, r.c.kind
        ),
        select(
            cst_day(conn, a.c.recorded_at),
            viewer,
            func.count(),
        )
        .where(a.c.action == "R")
        .group_by(cst_day(conn, a.c.recorded_at), viewer),
        select(
            cst_day(conn, d.c.decided_at), d.c.institution_id, d.c.decision, func.count()
        ).group_by(cst_day(conn, d.c.decided_at), d.c.institution_id, d.c.decision),
    ):
        for row in conn.execute(q).all():
            day, inst, *rest, n = row
            day = day if isinstance(day, dt.date) else dt.date.fromisoformat(day)
            out[(day, inst, *rest)] = n
    return out


def _as_raw_keys(counts: dict[tuple, int]) -> dict[tuple, int]:
    out = {}
    for (day, inst, kind, measure), n in counts.items():
        key = (day, inst, kind) if measure == "reports_received" else (day, inst)
        if measure in ("recognised", "refused"):
            key = (day, inst, measure)
        out[key] = n
    return out


def _stored(conn) -> dict[tuple, int]:
    m = metrics_daily
    rows = conn.execute(select(m.c.day, m.c.institution_id, m.c.kind, m.c.measure, m.c.count))
    return _as_raw_keys({tuple(r[:4]): r[4] for r in rows})


ALL = ["reports_received", "views", "recognised", "refused"]


@pytest.mark.postgres
def test_summary_equals_raw_counts_over_rounds(engine: Engine, monkeypatch) -> None:
    monkeypatch.setattr(summary, "SETTLE", dt.timedelta(0))
    now = dt.datetime.now(dt.UTC)
    seq = itertools.count(1)
    with engine.begin() as conn:
        conn.execute(insert(districts).values(code="440304", name="福田区", population=1000))
        _institution(conn, "A", "public_hospital", "connected")
        _institution(conn, "B", "lab", "connected")
        # history before the first fold, across CST midnight (15:30 UTC is 23:30 CST)
        for days_ago in (0, 1, 2, 40):
            t = now.replace(hour=15, minute=30) - dt.timedelta(days=days_ago + 1)
            _report(conn, "A", "lab", t)
            _report(conn, "B", "exam", t + dt.timedelta(hours=1))
            _view(conn, next(seq), "A", t)
            _view(conn, next(seq), None, t, action="E")  # a search: not a view
            _decision(conn, "A", "recognised", t)
    for rnd in range(3):
        with engine.connect() as conn:  # before the fold: the tail is counted all the same
            assert _as_raw_keys(summary.totals(conn, ALL, by=summary.DIMENSIONS)) == _raw(conn)
        summary.refresh(engine)
        with engine.connect() as conn:
            assert _stored(conn) == _raw(conn) != {}
            assert _as_raw_keys(summary.totals(conn, ALL, by=summary.DIMENSIONS)) == _raw(conn)
        at = dt.datetime.now(dt.UTC) - dt.timedelta(milliseconds=1)
        with engine.begin() as conn:  # the next round arrives
            old = _report(conn, "A", "lab", at, key=f"k{rnd}")
            # a correction: a second message about the same report, counted as received
            conn.execute(update(reports).where(reports.c.id == old).values(current=False))
            _report(conn, "A", "lab", at, key=f"k{rnd}", v=2)
            _report(conn, "B", "exam", at)
            for _ in range(rnd + 1):
                _view(conn, next(seq), "B", at)
            _decision(conn, "B", "refused", at)
    summary.refresh(engine)
    with engine.connect() as conn:
        assert _stored(conn) == _raw(conn)
        n = conn.execute(select(func.count()).select_from(reports)).scalar_one()
    ov = overview(engine, days=30)
    assert ov.reports_total == n == 8 + 3 * 3
    assert ov.repeat_avoided == 4
    assert sum(d.views or 0 for d in ov.daily) == 3 + 1 + 2 + 3  # the 40-day-old view is outside
    assert sum(d.lab for d in institution_daily(engine, "A", days=30)) == 3 + 3 * 2


@pytest.mark.postgres
def test_unsettled_rows_counted_from_the_tail_and_fold_is_throttled(engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(insert(districts).values(code="440304", name="福田区", population=1000))
        _institution(conn, "A", "public_hospital", "connected")
        _report(conn, "A", "lab", dt.datetime.now(dt.UTC))  # younger than SETTLE: not folded
    assert summary.maybe_refresh(engine) is True
    assert summary.maybe_refresh(engine) is False  # throttled
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(metrics_daily)).scalar_one() == 0
        assert conn.execute(select(metrics_watermarks.c.source)).scalars().all()
    assert overview(engine).reports_total == 1
    summary.rebuild(engine)
    assert overview(engine).reports_total == 1
