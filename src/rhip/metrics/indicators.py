"""The platform's own city measured live (平台实测指标), beside the index's survey indicators.
Report, view and recognition counts come from the daily summaries (``rhip.metrics.summary``).

Definitions (each a ratio of two counts from the database):

- coverage rate 接入覆盖率: connected ÷ active institutions, % (index indicator BAS3);
- sharing rate 数据共享率: connected institutions that sent at least one report in the window ÷
  connected institutions, %;
- QC pass rate 质控合格率: subjects passing every rule ÷ subjects checked, from the daily
  scorecard, % (index indicator DAT1);
- views per capita 人均调阅: record views in the window ÷ resident population;
- repeat tests avoided 避免重复检查: recognition checks decided as recognised.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import Connection, Engine, func, select

from rhip.kernel.clock import today_cst
from rhip.metrics import figures, summary
from rhip.registry.models import districts, institutions

# the framework indicator each live figure stands beside (None: no matching survey indicator)
INDEX_CODES = {
    "coverage_rate": "BAS3",
    "sharing_rate": None,
    "qc_pass_rate": "DAT1",
    "views_per_capita": None,
    "repeat_avoided": None,
}


@dataclass(frozen=True, slots=True)
class PlatformIndicators:
    start: dt.date
    end: dt.date
    population: int
    coverage_rate: float | None
    sharing_rate: float | None
    qc_pass_rate: float | None
    views_per_capita: float | None
    repeat_avoided: int | None

    def items(self) -> list[tuple[str, float | int | None, str | None]]:
        """(name, value, index code) in display order."""
        return [(k, getattr(self, k), code) for k, code in INDEX_CODES.items()]


def platform_indicators(engine: Engine, days: int = 365, end: dt.date | None = None):
    """The live indicators over the ``days`` days up to ``end`` (default today, CST)."""
    end = end or today_cst()
    start = end - dt.timedelta(days=days - 1)
    summary.maybe_refresh(engine)
    with engine.connect() as conn:
        types = figures.by_type(conn)
        total = sum(r.total for r in types)
        connected = sum(r.connected for r in types)
        sharing = _sharing_institutions(conn, start, end)
        quality = figures.quality_by_institution(conn, start, end)
        checked = sum(q.checked for q in quality)
        population = conn.execute(
            select(func.coalesce(func.sum(districts.c.population), 0))
        ).scalar_one()
        views = _views(conn, start, end)
        return PlatformIndicators(
            start=start,
            end=end,
            population=int(population),
            coverage_rate=_pct(connected, total),
            sharing_rate=_pct(sharing, connected),
            qc_pass_rate=_pct(sum(q.passed for q in quality), checked),
            views_per_capita=None if views is None or not population else views / population,
            repeat_avoided=figures.repeat_avoided(conn),
        )


def _pct(part: int, whole: int) -> float | None:
    return 100.0 * part / whole if whole else None


def _sharing_institutions(conn: Connection, start: dt.date, end: dt.date) -> int:
    senders = {
        i for (i,) in summary.totals(conn, ["reports_received"], start, end, ("institution_id",))
    }
    connected = conn.execute(
        select(institutions.c.id).where(
            institutions.c.connection_status == "connected", institutions.c.active.is_(True)
        )
    ).scalars()
    return sum(1 for i in connected if i in senders)


def _views(conn: Connection, start: dt.date, end: dt.date) -> int | None:
    if not summary.has_source(conn, "views"):
        return None
    return summary.totals(conn, ["views"], start, end).get((), 0)
