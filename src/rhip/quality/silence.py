"""Silent feeds (数据断流): an institution quiet for longer than k × its usual gap.

The usual gap is the median time between an institution's messages in the inbox over the
lookback window (rule ``silence.feed_gap``: k, lookback_days, min_gaps), so a lab sending every
minute is flagged after minutes and a clinic sending twice a day only after a day or more.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import pandas as pd
from sqlalchemy import Connection, Engine, func, select

from rhip.quality.rules import Rule, rule

SILENCE_RULE = "silence.feed_gap"


@dataclass(frozen=True, slots=True)
class FeedGap:
    """One institution's feed: when it last sent, its usual gap and how long it has been quiet."""

    institution_id: str
    last_received_at: dt.datetime
    messages: int  # in the lookback window
    median_gap_s: float | None  # None when there are fewer than min_gaps gaps to judge by
    quiet_s: float
    k: float

    @property
    def silent(self) -> bool:
        return self.median_gap_s is not None and self.quiet_s > self.k * self.median_gap_s


def feed_gaps(
    conn: Connection, now: dt.datetime, institution_id: str | None = None, rules=None
) -> list[FeedGap]:
    """Every institution's feed (or one's), from two set-based inbox queries."""
    from rhip.exchange.models import inbox_messages as inbox  # at call time: no import cycle

    params = _params(rules)
    since = now - dt.timedelta(days=params["lookback_days"])
    scope = [inbox.c.institution_id.is_not(None), inbox.c.status != "duplicate"]
    if institution_id is not None:
        scope.append(inbox.c.institution_id == institution_id)
    last = dict(
        conn.execute(
            select(inbox.c.institution_id, func.max(inbox.c.received_at))
            .where(*scope)
            .group_by(inbox.c.institution_id)
        ).all()
    )
    rows = conn.execute(
        select(inbox.c.institution_id, inbox.c.received_at).where(
            *scope, inbox.c.received_at >= since
        )
    ).all()
    frame = pd.DataFrame(rows, columns=["institution_id", "received_at"])
    medians, counts = _medians(frame, params["min_gaps"])
    return [
        FeedGap(
            iid,
            _aware(at),
            int(counts.get(iid, 0)),
            medians.get(iid),
            max((now - _aware(at)).total_seconds(), 0.0),
            float(params["k"]),
        )
        for iid, at in sorted(last.items())
    ]


def silent_feeds(engine: Engine, now: dt.datetime, rules=None) -> list[FeedGap]:
    """Institutions whose last message is older than k × their median inter-arrival gap."""
    with engine.connect() as conn:
        return [f for f in feed_gaps(conn, now, rules=rules) if f.silent]


def _medians(frame: pd.DataFrame, min_gaps: int) -> tuple[dict[str, float], dict[str, int]]:
    if frame.empty:
        return {}, {}
    frame = frame.assign(received_at=pd.to_datetime(frame["received_at"], utc=True))
    frame = frame.sort_values(["institution_id", "received_at"])
    gaps = frame.groupby("institution_id")["received_at"].diff().dt.total_seconds()
    stats = gaps.groupby(frame["institution_id"]).agg(["median", "count"])
    judged = stats[stats["count"] >= min_gaps]
    counts = frame.groupby("institution_id").size()
    return judged["median"].astype(float).to_dict(), counts.to_dict()


def _params(rules) -> dict:
    found: Rule = rule(SILENCE_RULE, rules)
    return {"k": 3.0, "lookback_days": 30, "min_gaps": 5, **found.params}


def _aware(at: dt.datetime) -> dt.datetime:
    return at if at.tzinfo else at.replace(tzinfo=dt.UTC)
