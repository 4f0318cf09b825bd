"""Exchange tables: the durable inbox (收件箱), reports (检验/检查报告) and their observations.

The large tables carry the golden patient key and a time column (``received_at``, ``issued_at``,
``observed_at``) so PostgreSQL can partition them by time or hash of patient, and Citus can shard
them by patient, without a schema change.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from rhip.store import UTCDateTime, metadata

# 64-bit keys on PostgreSQL; SQLite only auto-increments a column declared INTEGER PRIMARY KEY
BigId = BigInteger().with_variant(Integer(), "sqlite")

# inbox status: received → processed | failed; a resend of a known message is stored as duplicate
INBOX_STATUSES = ("received", "processed", "failed", "duplicate")
CHANNELS = ("mllp", "fhir", "ndjson")

inbox_messages = Table(
    "inbox_messages",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("channel", String(8), nullable=False),  # mllp | fhir | ndjson
    # the sender as claimed (MSH-4 credit code); institution_id once the sender is verified
    Column("sender", String(64), nullable=False, default=""),
    Column("institution_id", String(64), ForeignKey("institutions.id")),
    Column("peer", String(64), nullable=False, default=""),  # the network address it came from
    Column("control_id", String(200)),  # MSH-10, Bundle.identifier, NDJSON line id
    Column("message_type", String(32)),  # ORU^R01, ADT^A04, Bundle, …
    # channel|sender|control id of a message from a verified sender: the idempotency key
    Column("dedup_key", String(320), unique=True),
    Column("duplicate_of", BigId, ForeignKey("inbox_messages.id")),
    Column("status", String(12), nullable=False),
    Column("error", Text),
    Column("ack_code", String(2)),  # AA | AE | AR (HTTP paths: the status class)
    Column("ack", LargeBinary),  # the exact acknowledgement sent, so a duplicate gets the same
    Column("raw", LargeBinary, nullable=False),  # the bytes as received (a prefix if truncated)
    Column("size", Integer, nullable=False),  # bytes received, also when not all were kept
    Column("truncated", Boolean, nullable=False, default=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("patient_id", String(64)),  # golden patient, once resolved
    Column("received_at", UTCDateTime, nullable=False),
    Column("processed_at", UTCDateTime),
    Index("ix_inbox_messages_status_received", "status", "received_at"),
    # per-institution arrivals: feed silence (quality) and the scorecard's rejected messages
    Index("ix_inbox_messages_institution_received", "institution_id", "received_at"),
)

# report kinds: 检验 laboratory, 检查 examination (imaging, ECG, endoscopy, pathology …)
REPORT_KINDS = ("lab", "exam")
# OBR-25 result status (HL7 table 0123) → FHIR DiagnosticReport.status
RESULT_STATUS = {"P": "preliminary", "F": "final", "C": "corrected", "X": "cancelled"}

reports = Table(
    "reports",
    metadata,
    Column("id", String(64), primary_key=True),  # FHIR logical id of this version
    # stable across versions within the issuing institution: filler (OBR-3) or placer (OBR-2)
    Column("report_key", String(200), nullable=False),
    Column("version", Integer, nullable=False),
    # False for superseded, stale and cancelled versions: at most one current row per report
    Column("current", Boolean, nullable=False, default=True),
    Column("patient_id", String(64), nullable=False),  # golden patient (MPI)
    Column("institution_id", String(64), ForeignKey("institutions.id"), nullable=False),
    Column("kind", String(8), nullable=False),  # lab | exam
    Column("code_system", String(200)),
    Column("code", String(64), nullable=False),  # OBR-4 universal service id
    Column("display", String(300)),
    Column("status", String(16), nullable=False),  # preliminary | final | corrected | cancelled
    Column("placer_number", String(100)),  # OBR-2
    Column("filler_number", String(100)),  # OBR-3
    Column("specimen", String(200)),  # SPM-4 or OBR-15
    Column("findings", Text),  # exam: 检查所见
    Column("conclusion", Text),  # exam: 诊断意见/印象
    Column("collected_at", UTCDateTime),  # OBR-7
    Column("issued_at", UTCDateTime, nullable=False),  # OBR-22, else MSH-7
    Column("inbox_id", BigId, ForeignKey("inbox_messages.id")),
    Column("recorded_at", UTCDateTime, nullable=False),
    UniqueConstraint("institution_id", "report_key", "version", name="uq_reports_key_version"),
    Index("ix_reports_patient_issued", "patient_id", "issued_at"),
)

observations = Table(
    "observations",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("report_id", String(64), ForeignKey("reports.id"), nullable=False),
    Column("patient_id", String(64), nullable=False),
    Column("seq", Integer, nullable=False),  # OBX-1 (or position)
    Column("code_system", String(200)),
    Column("code", String(64), nullable=False),  # OBX-3
    Column("display", String(300)),
    Column("value_type", String(4), nullable=False),  # OBX-2: NM SN ST CWE CE TX FT …
    Column("value_num", Float),
    Column("comparator", String(2)),  # SN: < > <= >= <>
    Column("value_text", Text),
    Column("value_code", String(64)),  # CWE/CE coded answer
    Column("unit", String(64)),  # OBX-6
    Column("reference_range", String(100)),  # OBX-7
    Column("abnormal_flag", String(8)),  # OBX-8, HL7 table 0078
    Column("status", String(1)),  # OBX-11
    Column("observed_at", UTCDateTime, nullable=False),  # OBX-14, else OBR-7, else issued
    # standardised (标准化) through code_maps and UCUM, so one test compares across institutions;
    # the columns above keep what the institution sent
    Column("std_system", String(200)),  # http://loinc.org, or the national recognition list
    Column("std_code", String(64)),
    Column("std_display", String(300)),
    Column("std_value", Float),  # value_num in std_unit (UCUM or the map's analyte factor)
    Column("std_unit", String(64)),  # UCUM
    Index("ix_observations_patient_code_time", "patient_id", "code", "observed_at"),
    Index("ix_observations_patient_std_time", "patient_id", "std_code", "observed_at"),
    Index("ix_observations_report", "report_id"),
)

# 项目对照表 item code map: an institution's local item code → a standard code and unit.
# institution_id "" is the platform default (the shipped starter list), used for every sender
# without a row of its own; not a foreign key for that reason. A code has one row with an empty
# from_unit (its mapping, converted by UCUM) and optionally rows with an analyte factor for a
# unit UCUM cannot convert (mass ↔ substance: glucose mg/dL × 0.0555 → mmol/L).
code_maps = Table(
    "code_maps",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("institution_id", String(64), nullable=False, default=""),
    Column("local_code", String(64), nullable=False),  # OBX-3.1 as the institution sends it
    Column("local_display", String(300)),
    Column("std_system", String(200), nullable=False),
    Column("std_code", String(64), nullable=False),
    Column("std_display", String(300), nullable=False),
    Column("unit", String(64)),  # target UCUM unit; None for a coded or text result
    Column("from_unit", String(64), nullable=False, default=""),  # "" or the factor's unit
    Column("factor", Float),  # value in from_unit × factor = value in unit
    Column("loaded_at", UTCDateTime, nullable=False),
    UniqueConstraint(
        "institution_id", "local_code", "from_unit", name="uq_code_maps_institution_code_unit"
    ),
    Index("ix_code_maps_std_code", "std_code"),
)
