"""Per-institution scorecard (机构质控评分卡) by rule and day, from the daily aggregate table.

checked/passed/warnings come from ``quality_daily`` (accepted messages, upserted at ingest);
errors come from rejected messages' inbox rows. A rejected finding counts as checked and not
passed, so pass_rate = passed / (checked + errors) over everything the rule looked at.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict

from sqlalchemy import Engine, select

from rhip.kernel.errors import NotFound
from rhip.quality import repo
from rhip.quality.rules import default_rules
from rhip.quality.schemas import DayCounts, FeedPublic, RuleScore, Scorecard
from rhip.quality.silence import FeedGap, feed_gaps
from rhip.registry.models import institutions


def scorecard(
    engine: Engine, institution_id: str, start: dt.date, end: dt.date, now: dt.datetime
) -> Scorecard:
    """The institution's scorecard for CST days ``start``…``end`` and its feed's silence."""
    with engine.connect() as conn:
        known = conn.execute(
            select(institutions.c.id).where(institutions.c.id == institution_id)
        ).first()
        if known is None:
            raise NotFound(f"no institution {institution_id!r}", expression="id")
        days = repo.daily(conn, institution_id, start, end)
        rejected = repo.rejected(conn, institution_id, start, end)
        feeds = feed_gaps(conn, now, institution_id)
    by_rule: dict[str, dict[dt.date, dict]] = defaultdict(dict)
    for row in days:
        by_rule[row["rule_id"]][row["day"]] = row
    for (rule_id, day), errors in rejected.items():
        row = by_rule[rule_id].setdefault(
            day, {"checked": 0, "passed": 0, "warnings": 0, "errors": 0}
        )
        row["errors"] += errors
        row["checked"] += errors
    rules = [_rule_score(r, by_rule.get(r.id, {})) for r in default_rules()]
    checked = sum(r.checked for r in rules)
    passed = sum(r.passed for r in rules)
    return Scorecard(
        institution_id=institution_id, start=start, end=end, checked=checked, passed=passed,
        pass_rate=_rate(passed, checked), rules=rules,
        feed=feed_public(feeds[0]) if feeds else None,
    )  # fmt: skip


def _rule_score(rule, days: dict[dt.date, dict]) -> RuleScore:
    items = [
        DayCounts(
            day=day,
            checked=d["checked"],
            passed=d["passed"],
            warnings=d["warnings"],
            errors=d["errors"],
            pass_rate=_rate(d["passed"], d["checked"]),
        )
        for day, d in sorted(days.items())
    ]
    total = {k: sum(getattr(d, k) for d in items) for k in repo.COUNTS}
    return RuleScore(
        rule_id=rule.id, dimension=rule.dimension, severity=rule.severity,
        description=rule.description, pass_rate=_rate(total["passed"], total["checked"]),
        days=items, **total,
    )  # fmt: skip


def _rate(passed: int, checked: int) -> float | None:
    return round(passed / checked, 4) if checked else None


def feed_public(gap: FeedGap) -> FeedPublic:
    return FeedPublic(
        institution_id=gap.institution_id, last_received_at=gap.last_received_at,
        messages=gap.messages, median_gap_s=gap.median_gap_s, quiet_s=gap.quiet_s, k=gap.k,
        silent=gap.silent,
    )  # fmt: skip
