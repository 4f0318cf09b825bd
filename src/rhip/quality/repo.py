"""Queries and writes of the quality tables; the one dialect difference (upsert) is kept here."""

from __future__ import annotations

import datetime as dt
import functools
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, select
from sqlalchemy.dialects import postgresql, sqlite

from rhip.kernel.clock import CST
from rhip.quality.models import quality_daily, quality_findings
from rhip.store import bulk_insert

FINDING_COLUMNS = (
    "institution_id", "report_id", "rule_id", "severity", "field", "message", "day",
    "recorded_at",
)  # fmt: skip
COUNTS = ("checked", "passed", "warnings", "errors")
REJECTED_PREFIX = "quality rules rejected the message:"
_RULE_TAG = re.compile(r"\[([a-z_]+\.[a-z_]+)\]")


def insert_findings(conn: Connection, rows: Sequence[tuple]) -> int:
    return bulk_insert(conn, quality_findings, list(rows), FINDING_COLUMNS, binary=True)


def add_daily(conn: Connection, institution_id: str, day: dt.date, counts: Mapping[str, Any]):
    """Add one message's per-rule counts to the day's row (INSERT … ON CONFLICT DO UPDATE)."""
    add_daily_many(conn, day, {institution_id: counts})


def add_daily_many(conn: Connection, day: dt.date, counts: Mapping[str, Mapping[str, Any]]):
    """Add messages' per-rule counts (institution → rule → counts) to the day's rows in one
    upsert. Rows go in (institution, rule) order so that concurrent transactions lock them in
    the same order (no deadlock).
    """
    rows = [
        {"institution_id": iid, "day": day, "rule_id": rule_id,
         **{c: getattr(count, c) for c in COUNTS}}
        for iid, by_rule in sorted(counts.items())
        for rule_id, count in sorted(by_rule.items())
        if count.checked  # a rule that looked at nothing (silence, at ingest) adds no row
    ]  # fmt: skip
    if not rows:
        return
    conn.execute(_upsert_daily(conn.dialect.name), rows)


@functools.cache
def _upsert_daily(dialect_name: str):
    """One cached statement run with many parameter sets (executemany; psycopg pipelines it),
    not a multi-row VALUES compiled afresh for every call."""
    dialect = postgresql if dialect_name == "postgresql" else sqlite
    stmt = dialect.insert(quality_daily)
    return stmt.on_conflict_do_update(
        index_elements=["institution_id", "day", "rule_id"],
        set_={c: quality_daily.c[c] + stmt.excluded[c] for c in COUNTS},
    )


def daily(conn: Connection, institution_id: str, start: dt.date, end: dt.date) -> list[dict]:
    rows = conn.execute(
        select(quality_daily)
        .where(
            quality_daily.c.institution_id == institution_id,
            quality_daily.c.day >= start,
            quality_daily.c.day <= end,
        )
        .order_by(quality_daily.c.rule_id, quality_daily.c.day)
    )
    return [dict(r._mapping) for r in rows]


def rejected(conn: Connection, institution_id: str, start: dt.date, end: dt.date) -> Counter:
    """(rule id, CST day) → errors, read from the inbox: a rejected message writes nothing else,
    and its inbox row (kept, with the error) counts once however often it is retried. The
    rejection may follow a prefix (a FHIR Bundle's entry, an NDJSON file and line); a batch
    Bundle whose other entries were applied is ``processed`` and still counts its rejections.
    """
    from rhip.exchange.models import inbox_messages as inbox  # at call time: no import cycle

    lo = dt.datetime.combine(start, dt.time(), CST)
    hi = dt.datetime.combine(end + dt.timedelta(days=1), dt.time(), CST)
    rows = conn.execute(
        select(inbox.c.received_at, inbox.c.error).where(
            inbox.c.institution_id == institution_id,
            inbox.c.status.in_(("failed", "processed")),
            inbox.c.received_at >= lo,
            inbox.c.received_at < hi,
            inbox.c.error.contains(REJECTED_PREFIX, autoescape=True),
        )
    )
    out: Counter = Counter()
    for received_at, error in rows:
        day = received_at.astimezone(CST).date()
        for rule_id in _RULE_TAG.findall(error or ""):
            out[(rule_id, day)] += 1
    return out


def findings_of(conn: Connection, report_id: str) -> list[dict]:
    rows = conn.execute(
        select(quality_findings)
        .where(quality_findings.c.report_id == report_id)
        .order_by(quality_findings.c.id)
    )
    return [dict(r._mapping) for r in rows]
