"""Mutual recognition tables (检查检验结果互认): doctors' decisions and labs' EQA qualifications.

* ``recognition_decisions`` — one row per decision a doctor records for an item of a patient:
  ``recognised`` (an earlier result is used, a repeat test avoided) or ``refused`` with one of the
  national exception reasons (``rhip.exchange.recognition.EXCEPTION_REASONS``). The stats of
  repeat tests avoided per institution and item are counted from here.
* ``lab_qualifications`` — external quality assessment (室间质评, EQA) results of an institution:
  passed for one item code (or ``*`` for all), valid for a period. The recognition rules say
  which items need a passed EQA of the issuing lab at the time of the test.

The registry has no EQA field yet; this table lives here until it does.
"""

from __future__ import annotations

from sqlalchemy import Boolean, Column, ForeignKey, Index, String, Table, Text

from rhip.exchange.models import BigId
from rhip.store import UTCDateTime, metadata

DECISIONS = ("recognised", "refused")

recognition_decisions = Table(
    "recognition_decisions",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("patient_id", String(64), nullable=False),  # golden patient
    Column("item_code", String(64), nullable=False),  # the rule's item code
    Column("decision", String(12), nullable=False),  # recognised | refused
    Column("reason_code", String(32)),  # refused: a national exception reason
    Column("note", Text),
    # the earlier result recognised (or the candidate refused); None when refused without one
    Column("report_id", String(64), ForeignKey("reports.id")),
    Column("source_institution_id", String(64)),  # issuer of report_id, kept for the stats
    # the institution where the repeat test was avoided (or done): the doctor's
    Column("institution_id", String(64), ForeignKey("institutions.id"), nullable=False),
    Column("decided_by", String(100), nullable=False),
    Column("decided_at", UTCDateTime, nullable=False),
    Index("ix_recognition_decisions_inst_item_at", "institution_id", "item_code", "decided_at"),
    Index("ix_recognition_decisions_patient_at", "patient_id", "decided_at"),
)

lab_qualifications = Table(
    "lab_qualifications",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("institution_id", String(64), ForeignKey("institutions.id"), nullable=False),
    Column("item_code", String(64), nullable=False),  # a rule's item code, or * for all
    Column("scheme", String(64), nullable=False),  # e.g. NCCL (国家卫健委临检中心), GDCCL
    Column("passed", Boolean, nullable=False),
    Column("valid_from", UTCDateTime, nullable=False),
    Column("valid_until", UTCDateTime, nullable=False),  # exclusive
    Column("recorded_at", UTCDateTime, nullable=False),
    Index("ix_lab_qualifications_inst_item", "institution_id", "item_code", "valid_from"),
)
