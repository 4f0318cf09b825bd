"""Quality tables (质控): stored warnings and the daily scorecard aggregate.

Errors are not stored here: a rejected message writes nothing, and its error stays in the inbox
(``inbox_messages.error`` starts with ``[rule.id]``), which is where the scorecard counts it.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Date, Index, Integer, String, Table, Text

from rhip.store import UTCDateTime, metadata

BigId = BigInteger().with_variant(Integer(), "sqlite")

DIMENSIONS = ("completeness", "validity", "consistency", "timeliness", "uniqueness", "silence")
SEVERITIES = ("error", "warning")

# one row per warning of an accepted report (质控问题)
quality_findings = Table(
    "quality_findings",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("institution_id", String(64), nullable=False),
    Column("report_id", String(64)),  # reports.id of the version it was found in
    Column("rule_id", String(64), nullable=False),
    Column("severity", String(8), nullable=False),
    Column("field", String(100), nullable=False),  # HL7 path (OBX[2].6) or FHIR element path
    Column("message", Text, nullable=False),
    Column("day", Date, nullable=False),  # CST day of receipt
    Column("recorded_at", UTCDateTime, nullable=False),
    Index("ix_quality_findings_institution_day", "institution_id", "day"),
    Index("ix_quality_findings_report", "report_id"),
)

# institution × rule × day counts, upserted in the message's transaction so a scorecard is a
# range scan of a few hundred rows rather than a pass over observations
quality_daily = Table(
    "quality_daily",
    metadata,
    Column("institution_id", String(64), primary_key=True),
    Column("day", Date, primary_key=True),
    Column("rule_id", String(64), primary_key=True),
    Column("checked", Integer, nullable=False, default=0),  # subjects the rule looked at
    Column("passed", Integer, nullable=False, default=0),  # subjects without a finding
    Column("warnings", Integer, nullable=False, default=0),
    Column("errors", Integer, nullable=False, default=0),
)
