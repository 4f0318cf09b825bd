"""Scorecard and silence shapes of the quality API (质控评分卡)."""

from __future__ import annotations

import datetime as dt

from pydantic import BaseModel


class DayCounts(BaseModel):
    day: dt.date
    checked: int
    passed: int
    warnings: int
    errors: int  # from rejected messages (their inbox rows)
    pass_rate: float | None  # passed / checked; None when nothing was checked


class RuleScore(BaseModel):
    rule_id: str
    dimension: str
    severity: str
    description: str
    checked: int
    passed: int
    warnings: int
    errors: int
    pass_rate: float | None
    days: list[DayCounts]


class FeedPublic(BaseModel):
    institution_id: str
    last_received_at: dt.datetime
    messages: int
    median_gap_s: float | None
    quiet_s: float
    k: float
    silent: bool


class Scorecard(BaseModel):
    institution_id: str
    start: dt.date
    end: dt.date
    checked: int
    passed: int
    pass_rate: float | None
    rules: list[RuleScore]
    feed: FeedPublic | None  # None when the institution has sent nothing yet
