"""Audit tables (访问审计日志): the append-only, hash-chained access log and its head.

* ``audit_events`` — one row per read of clinical data, allowed or refused; ``seq`` runs 1, 2, 3 …
  without gaps and every row carries the HMAC of its content chained to the previous row's hash.
  Rows are never updated or deleted (the application has no code path that does).
* ``audit_head`` — one row (``id`` 1): the count of events and the newest hash, kept apart so that
  deleting the newest events (truncation) is detected too. Writers lock it to take the next seq.

``recorded_at`` and ``day`` (China Standard Time) let PostgreSQL partition the log by time; the
patient key lets Citus co-locate it with the patient's reports.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Date,
    Index,
    Integer,
    String,
    Table,
    Text,
)

from rhip.store import UTCDateTime, metadata

audit_events = Table(
    "audit_events",
    metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=False),  # from audit_head
    Column("recorded_at", UTCDateTime, nullable=False),
    Column("day", Date, nullable=False),  # recorded_at's date in CST, for daily statistics
    Column("action", String(1), nullable=False),  # FHIR AuditEvent.action: R read, E search
    Column("subtype", String(16), nullable=False),  # restful interaction: read | search
    Column("user_id", String(32)),
    Column("username", String(64), nullable=False),
    Column("agent_name", String(100)),  # display name, so a patient sees who without a join
    Column("role", String(16), nullable=False),
    Column("institution_id", String(64)),  # the agent's institution (doctor, integrator)
    Column("patient_id", String(64)),  # golden patient whose data was asked for
    Column("purpose", String(16)),  # HL7 v3 PurposeOfUse code
    Column("resource", String(64), nullable=False),  # what: DiagnosticReport, timeline …
    Column("query", Text),  # the request path and query, identifiers masked
    Column("outcome", String(2), nullable=False),  # 0 success, 4 minor (refused), 8 serious
    Column("status", Integer, nullable=False),  # HTTP status given
    Column("reason", String(300)),  # the policy's reason
    Column("flagged", Boolean, nullable=False),  # break-glass: to be reviewed
    Column("client_address", String(64)),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
    Index("ix_audit_events_patient_recorded", "patient_id", "recorded_at"),
    Index("ix_audit_events_user_recorded", "user_id", "recorded_at"),
    Index("ix_audit_events_institution_day", "institution_id", "day"),
    Index("ix_audit_events_recorded_at", "recorded_at"),
)

audit_head = Table(
    "audit_head",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),  # always 1
    Column("count", BigInteger, nullable=False),  # events in the log = the newest seq
    Column("last_hash", String(64), nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
)
