"""Daily summaries (日汇总), folded in incrementally so a page reads a few thousand rows, not
every report ever received.

``refresh(engine)`` folds, per source, only the rows past its watermark into ``metrics_daily``
(one ``INSERT … SELECT … GROUP BY … ON CONFLICT DO UPDATE`` each) and moves the watermark, in one
transaction per source. The figures read the summary *plus* the rows not yet folded (the tail
past the watermark, found by index) in a single statement, so they are exact at any moment and
one snapshot is read; ``maybe_refresh`` keeps that tail short, at most one fold per
``THROTTLE_SECONDS`` per engine in this process.

What is counted (measure):

- ``reports_received`` — report *messages* received: every stored version of a report, by its
  ``recorded_at`` day and issuing institution. A correction or a cancellation is a message
  received and counts on the day it arrived; the superseded version keeps its own count. It is
  not the number of current reports.
- ``views`` — audit events with action R (record read), by the viewer's institution.
- ``recognised`` / ``refused`` — recognition decisions, by the deciding institution.

Reports are folded by arrival time, up to ``SETTLE`` before now so a transaction still open
when the fold runs is not passed over. A row stored later with an older ``recorded_at`` (a
backfill of history) is not seen by the fold: run ``rebuild(engine)`` after such a load.
Audit events carry a gapless ``seq`` taken under a lock, so they are folded by ``seq``;
recognition decisions by id.
"""

from __future__ import annotations

import datetime as dt
import time
import weakref
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy import (
    Column,
    Connection,
    Engine,
    delete,
    func,
    literal,
    literal_column,
    select,
    union_all,
    update,
)
from sqlalchemy.sql.elements import ColumnElement

from rhip.exchange.models import reports
from rhip.metrics import sources
from rhip.metrics.models import metrics_daily, metrics_watermarks
from rhip.store import UTCDateTime

SETTLE = dt.timedelta(
    seconds=5
)  # longer than a report-writing transaction is expected to stay open
THROTTLE_SECONDS = 15.0
_EPOCH = dt.datetime(1900, 1, 1, tzinfo=dt.UTC)
_last_refresh: weakref.WeakKeyDictionary[Engine, float] = weakref.WeakKeyDictionary()

DIMENSIONS = ("day", "institution_id", "kind", "measure")


@dataclass(frozen=True)
class Source:
    """One raw table folded into the summary: which rows, keyed how, counted under what."""

    name: str  # the watermark's key
    by_time: bool  # watermark on a time column (True) or an increasing id (False)
    key: Column
    time: Column  # its CST day is the summary's day
    institution: ColumnElement
    kind: ColumnElement
    measure: ColumnElement
    measures: frozenset[str]
    where: ColumnElement | None = None


def present_sources(conn: Connection) -> list[Source]:
    """The sources whose tables exist in this database."""
    empty = literal_column("''")
    out = [
        Source(
            "reports", True, reports.c.recorded_at, reports.c.recorded_at,
            reports.c.institution_id, reports.c.kind, literal_column("'reports_received'"),
            frozenset({"reports_received"}),
        )
    ]  # fmt: skip
    audit = sources.table(conn, "audit_events")
    if audit is not None:
        out.append(
            Source(
                "views", False, audit.c.seq, audit.c.recorded_at,
                func.coalesce(audit.c.institution_id, empty), empty, literal_column("'views'"),
                frozenset({"views"}), audit.c.action == "R",
            )
        )  # fmt: skip
    rec = sources.table(conn, "recognition_decisions")
    if rec is not None:
        out.append(
            Source(
                "recognition", False, rec.c.id, rec.c.decided_at, rec.c.institution_id, empty,
                rec.c.decision, frozenset({"recognised", "refused"}),
            )
        )  # fmt: skip
    return out


def has_source(conn: Connection, name: str) -> bool:
    return any(s.name == name for s in present_sources(conn))


def _aggregate(conn: Connection, s: Source, lo, hi=None, measures: Iterable[str] = ()):
    """Counts per (day, institution, kind, measure) of the rows with lo < key (<= hi)."""
    day = sources.cst_day(conn, s.time)
    dims = (day, s.institution, s.kind, s.measure)
    q = select(*(d.label(n) for d, n in zip(dims, DIMENSIONS, strict=True)), func.count())
    q = q.where(s.key > lo)
    if hi is not None:
        q = q.where(s.key <= hi)
    if s.where is not None:
        q = q.where(s.where)
    if measures and not getattr(s.measure, "is_literal", False):
        q = q.where(s.measure.in_(list(measures)))
    # PostgreSQL refuses a constant in GROUP BY
    return q.group_by(*(d for d in dims if not getattr(d, "is_literal", False)))


def _fold(engine: Engine, name: str, now: dt.datetime) -> int:
    w = metrics_watermarks
    with engine.begin() as conn:
        s = next((x for x in present_sources(conn) if x.name == name), None)
        if s is None:
            return 0
        # write first: takes the row lock (PostgreSQL) or the write lock (SQLite), so two
        # processes folding at once take turns instead of counting the same rows twice
        sources.upsert(conn, w, {"source": name, "refreshed_at": now}, ["source"], ["refreshed_at"])
        last_id, last_at = conn.execute(
            select(w.c.last_id, w.c.last_at).where(w.c.source == name)
        ).one()
        if s.by_time:
            lo, hi = last_at or _EPOCH, now - SETTLE
        else:
            lo = -1 if last_id is None else last_id
            hi = conn.execute(select(func.max(s.key))).scalar()
        if hi is None or hi <= lo:
            return 0
        n = sources.upsert_add(
            conn, metrics_daily, _aggregate(conn, s, lo, hi), DIMENSIONS, "count"
        )
        mark = {"last_at": hi} if s.by_time else {"last_id": hi}
        conn.execute(update(w).where(w.c.source == name).values(**mark))
        return n


def refresh(engine: Engine) -> dict[str, int]:
    """Fold every source's new rows into the summary now; groups touched per source."""
    now = dt.datetime.now(dt.UTC)
    with engine.connect() as conn:
        names = [s.name for s in present_sources(conn)]
    out = {name: _fold(engine, name, now) for name in names}
    _last_refresh[engine] = time.monotonic()
    return out


def maybe_refresh(engine: Engine, every: float = THROTTLE_SECONDS) -> bool:
    """``refresh`` unless this process did so for this engine less than ``every`` seconds ago."""
    last = _last_refresh.get(engine)
    if last is not None and time.monotonic() - last < every:
        return False
    refresh(engine)
    return True


def rebuild(engine: Engine) -> dict[str, int]:
    """Forget the summary and fold everything again (after a backfill of old rows)."""
    with engine.begin() as conn:
        conn.execute(delete(metrics_daily))
        conn.execute(delete(metrics_watermarks))
    return refresh(engine)


def totals(
    conn: Connection,
    measures: Sequence[str],
    start: dt.date | None = None,
    end: dt.date | None = None,
    by: Sequence[str] = (),
    institution_id: str | None = None,
) -> dict[tuple, int]:
    """Counts of ``measures`` between CST days ``start`` and ``end`` grouped ``by`` some of
    (day, institution_id, kind, measure): summary plus unfolded tail, in one statement."""
    m = metrics_daily
    w = metrics_watermarks

    def keep(q, cols):
        if start is not None:
            q = q.where(cols["day"] >= start)
        if end is not None:
            q = q.where(cols["day"] <= end)
        if institution_id is not None:
            q = q.where(cols["institution_id"] == institution_id)
        return q

    parts = [
        keep(select(*(m.c[d] for d in DIMENSIONS), m.c.count), m.c).where(
            m.c.measure.in_(list(measures))
        )
    ]
    for s in present_sources(conn):
        if not s.measures & set(measures):
            continue
        col = w.c.last_at if s.by_time else w.c.last_id
        mark = select(col).where(w.c.source == s.name).scalar_subquery()
        floor = literal(_EPOCH, UTCDateTime) if s.by_time else literal(-1)
        parts.append(_aggregate(conn, s, func.coalesce(mark, floor), measures=measures))
    u = union_all(*parts).subquery()
    cols = [u.c[d] for d in by]
    q = keep(select(*cols, func.sum(u.c.count)), u.c).where(u.c.measure.in_(list(measures)))
    rows = conn.execute(q.group_by(*cols) if cols else q).all()
    out: dict[tuple, int] = {}
    for row in rows:
        key = tuple(sources.as_date(v) if d == "day" else v for d, v in zip(by, row, strict=False))
        if row[-1] is not None:
            out[key] = out.get(key, 0) + int(row[-1])
    return out


__all__ = ["SETTLE", "THROTTLE_SECONDS", "maybe_refresh", "rebuild", "refresh", "totals"]
