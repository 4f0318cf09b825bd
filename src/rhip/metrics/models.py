"""Metrics tables: daily summaries (日汇总) kept up to date incrementally, and their watermarks.

* ``metrics_daily`` — one count per CST day, institution, kind and measure (``reports_received``,
  ``views``, ``recognised``, ``refused``); the figures read these instead of the raw tables.
* ``metrics_watermarks`` — per source, how far it has been folded in: the last ``recorded_at``
  (reports) or the last id/seq (audit events, recognition decisions).

``ix_reports_recorded_at`` is declared here, on the exchange table, because only the metrics
fold reads reports by arrival time; without it each refresh would scan every report.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Date, Index, String, Table

from rhip.exchange.models import reports
from rhip.store import UTCDateTime, metadata

metrics_daily = Table(
    "metrics_daily",
    metadata,
    Column("day", Date, primary_key=True),  # China Standard Time calendar day
    Column("institution_id", String(64), primary_key=True),  # "" when the source has none
    Column("kind", String(8), primary_key=True),  # lab | exam for reports, "" otherwise
    Column("measure", String(32), primary_key=True),  # reports_received | views | recognised …
    Column("count", BigInteger, nullable=False),
    Index("ix_metrics_daily_measure_day", "measure", "day"),
)

metrics_watermarks = Table(
    "metrics_watermarks",
    metadata,
    Column("source", String(32), primary_key=True),  # reports | views | recognition
    Column("last_id", BigInteger),  # id/seq sources: the highest id folded in
    Column("last_at", UTCDateTime),  # time sources: every row at or before this is folded in
    Column("refreshed_at", UTCDateTime, nullable=False),
)

Index("ix_reports_recorded_at", reports.c.recorded_at)
