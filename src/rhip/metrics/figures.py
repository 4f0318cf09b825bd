"""The operator's overview (运行总览): institutions connected, reports and views per day, data
quality by institution and repeat tests avoided. Institutions are counted from the registry; the
report, view and recognition figures read the daily summaries (``rhip.metrics.summary``), never
the raw tables, so a page costs the same at a thousand reports as at hundreds of millions.

>>> from rhip.store import make_engine, upgrade
>>> engine = make_engine("sqlite://"); upgrade(engine)
>>> overview(engine).institutions_total
0
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from sqlalchemy import Connection, Engine, case, func, select

from rhip.kernel.clock import today_cst
from rhip.metrics import sources, summary
from rhip.registry.models import districts, institutions
from rhip.registry.vocabulary import TYPES


@dataclass(frozen=True, slots=True)
class TypeRow:
    type: str
    label: str  # 机构类别 in Chinese, from the registry vocabulary
    total: int
    connected: int


@dataclass(frozen=True, slots=True)
class DistrictRow:
    code: str  # GB/T 2260
    name: str
    population: int | None
    total: int
    connected: int


@dataclass(frozen=True, slots=True)
class DailyCount:
    day: dt.date
    lab: int
    exam: int
    views: int | None  # None while no audit log exists


@dataclass(frozen=True, slots=True)
class QualityRow:
    institution_id: str
    name: str
    checked: int
    passed: int

    @property
    def rate(self) -> float:
        return 100.0 * self.passed / self.checked if self.checked else 0.0


@dataclass
class Overview:
    """Everything on the big screen, for one window of days ending today (CST)."""

    start: dt.date
    end: dt.date
    by_type: list[TypeRow] = field(default_factory=list)
    by_district: list[DistrictRow] = field(default_factory=list)
    daily: list[DailyCount] = field(default_factory=list)
    reports_total: int = 0
    quality: list[QualityRow] = field(default_factory=list)
    repeat_avoided: int | None = None

    @property
    def institutions_total(self) -> int:
        return sum(r.total for r in self.by_type)

    @property
    def institutions_connected(self) -> int:
        return sum(r.connected for r in self.by_type)

    @property
    def quality_rate(self) -> float | None:
        checked = sum(q.checked for q in self.quality)
        return 100.0 * sum(q.passed for q in self.quality) / checked if checked else None

    @property
    def views_available(self) -> bool:
        return any(d.views is not None for d in self.daily)


def overview(engine: Engine, days: int = 30, end: dt.date | None = None) -> Overview:
    """The overview for the ``days`` days up to ``end`` (default today, CST)."""
    end = end or today_cst()
    start = end - dt.timedelta(days=days - 1)
    summary.maybe_refresh(engine)
    with engine.connect() as conn:
        out = Overview(start=start, end=end)
        out.by_type = by_type(conn)
        out.by_district = by_district(conn)
        out.daily = daily(conn, start, end)
        out.reports_total = summary.totals(conn, ["reports_received"]).get((), 0)
        out.quality = quality_by_institution(conn, start, end)
        out.repeat_avoided = repeat_avoided(conn)
    return out


def _connected_sum():
    return func.sum(case((institutions.c.connection_status == "connected", 1), else_=0))


def by_type(conn: Connection) -> list[TypeRow]:
    """Active institutions and those connected, per type, in the registry's order of types."""
    rows = conn.execute(
        select(institutions.c.type, func.count(), _connected_sum())
        .where(institutions.c.active.is_(True))
        .group_by(institutions.c.type)
    ).all()
    found = {t: (int(n), int(c or 0)) for t, n, c in rows}
    order = [t for t in TYPES if t in found] + sorted(set(found) - set(TYPES))
    return [TypeRow(t, TYPES.get(t, t), *found[t]) for t in order]


def by_district(conn: Connection) -> list[DistrictRow]:
    """Per district (with its population): active institutions and those connected."""
    i = institutions
    rows = conn.execute(
        select(
            districts.c.code,
            districts.c.name,
            districts.c.population,
            func.count(i.c.id),
            func.coalesce(_connected_sum(), 0),
        )
        .select_from(districts.outerjoin(i, (i.c.district_code == districts.c.code) & i.c.active))
        .group_by(districts.c.code, districts.c.name, districts.c.population)
        .order_by(districts.c.code)
    ).all()
    return [DistrictRow(c, n, p, int(t), int(k)) for c, n, p, t, k in rows if t or p]


def daily(conn: Connection, start: dt.date, end: dt.date) -> list[DailyCount]:
    """Reports received (lab vs exam) and record views per CST day, zero-filled."""
    counts = summary.totals(conn, ["reports_received", "views"], start, end, ("day", "kind"))
    views = summary.has_source(conn, "views")
    out = []
    for k in range((end - start).days + 1):
        d = start + dt.timedelta(days=k)
        v = counts.get((d, ""), 0) if views else None
        out.append(DailyCount(d, counts.get((d, "lab"), 0), counts.get((d, "exam"), 0), v))
    return out


def quality_by_institution(conn: Connection, start: dt.date, end: dt.date) -> list[QualityRow]:
    """QC pass rate (质控合格率) per institution from the daily scorecard, worst first."""
    qd = sources.table(conn, "quality_daily")
    if qd is None:
        return []
    rows = conn.execute(
        select(
            qd.c.institution_id, institutions.c.name, func.sum(qd.c.checked), func.sum(qd.c.passed)
        )
        .join(institutions, institutions.c.id == qd.c.institution_id)
        .where(qd.c.day >= start, qd.c.day <= end)
        .group_by(qd.c.institution_id, institutions.c.name)
    ).all()
    out = [QualityRow(i, n, int(c or 0), int(p or 0)) for i, n, c, p in rows]
    return sorted(out, key=lambda q: (q.rate, -q.checked, q.institution_id))


def repeat_avoided(conn: Connection) -> int | None:
    """Repeat tests avoided (重复检查避免): recognition checks decided as recognised."""
    if not summary.has_source(conn, "recognition"):
        return None
    return summary.totals(conn, ["recognised"]).get((), 0)


def institution_daily(
    engine: Engine, institution_id: str, days: int = 30, end: dt.date | None = None
) -> list[DailyCount]:
    """Reports received from one institution per CST day (lab vs exam), zero-filled."""
    end = end or today_cst()
    start = end - dt.timedelta(days=days - 1)
    summary.maybe_refresh(engine)
    with engine.connect() as conn:
        counts = summary.totals(
            conn, ["reports_received"], start, end, ("day", "kind"), institution_id=institution_id
        )
    return [
        DailyCount(d, counts.get((d, "lab"), 0), counts.get((d, "exam"), 0), None)
        for d in (start + dt.timedelta(days=k) for k in range(days))
    ]
