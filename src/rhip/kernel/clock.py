"""Time: every stored instant is timezone-aware; local times without an offset are CST (UTC+8)."""

from __future__ import annotations

import datetime as dt

CST = dt.timezone(dt.timedelta(hours=8), "CST")  # China Standard Time, no daylight saving


def now() -> dt.datetime:
    """The current instant in UTC."""
    return dt.datetime.now(dt.UTC)


def today_cst() -> dt.date:
    return dt.datetime.now(CST).date()
