"""What the clinical pages add to the platform's viewing service (调阅), ``rhip.exchange.viewing``:
the number of abnormal results per listed report (the timeline's red column) and the shape of a
trend for the chart. The reads themselves — timeline, report detail, trend — are the service's.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, func, select

from rhip.exchange.models import observations
from rhip.exchange.viewing import FLAGS

# HL7 table 0078 flags the viewing service counts as abnormal
ABNORMAL = tuple(flag for flag, (abnormal, _, _) in FLAGS.items() if abnormal)


def abnormal_counts(conn: Connection, report_ids: list[str]) -> dict[str, int]:
    """Abnormal results per report, for one timeline page (``observations(report_id)``)."""
    if not report_ids:
        return {}
    rows = conn.execute(
        select(observations.c.report_id, func.count())
        .where(
            observations.c.report_id.in_(report_ids),
            func.upper(func.trim(observations.c.abnormal_flag)).in_(ABNORMAL),
        )
        .group_by(observations.c.report_id)
    )
    return {rid: n for rid, n in rows}


def trend_chart(trend: dict[str, Any]) -> dict[str, Any]:
    """``viewing.trend`` as the chart script wants it: one series per institution, the newest
    point's reference range as the normal band."""
    points = [p for p in trend["points"] if p["value"] is not None]
    low, high = reference_bounds(points[-1]["reference_range"] if points else None)
    series: dict[str, list] = {}
    for p in points:
        point = [p["observed_at"].isoformat(), p["value"]]
        series.setdefault(p["institution_name"], []).append(point)
    return {
        "unit": trend["unit"] or (points[-1]["unit"] if points else "") or "",
        "low": low,
        "high": high,
        "series": [{"name": k, "points": v} for k, v in series.items()],
    }


def reference_bounds(text: str | None) -> tuple[float | None, float | None]:
    """``3.9-6.1`` → (3.9, 6.1); ``<5.2`` → (None, 5.2); anything else → (None, None).

    >>> reference_bounds("3.9-6.1"), reference_bounds("<5.2"), reference_bounds("阴性")
    ((3.9, 6.1), (None, 5.2), (None, None))
    """
    text = (text or "").strip()
    try:
        if text.startswith(("<", "≤")):
            return None, float(text.lstrip("<≤="))
        if text.startswith((">", "≥")):
            return float(text.lstrip(">≥=")), None
        low, sep, high = text.partition("-")
        return (float(low), float(high)) if sep else (None, None)
    except ValueError:
        return None, None
