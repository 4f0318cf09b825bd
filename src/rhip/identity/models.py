"""MPI tables (患者主索引): golden records, source registrations, identifiers, review, history.

* ``mpi_persons`` — one golden record (主索引记录) per person; ``status`` active | provisional (a
  registration waiting for review) | merged (``merged_into`` names the survivor).
* ``mpi_registrations`` — one row per registration at an institution (建档), with the normalised
  match columns the matcher compares and blocks on; ``person_id`` is its golden record.
* ``mpi_identifiers`` — every identifier of a registration. Sensitive systems (resident ID,
  passport, permits) keep only ``value_hash`` (keyed HMAC, for matching) and ``value_enc``
  (encrypted); ``value`` is NULL for them.
* ``mpi_reviews`` — the review queue (人工审核队列); ``mpi_history`` — merges and unmerges
  (合并/拆分), with the registrations moved so an unmerge restores them exactly.
* ``mpi_parameters`` — Fellegi–Sunter parameters, newest row wins (``rhip mpi dedupe`` writes them).

No foreign key to ``institutions``: a registration may arrive before its institution is registered
(the inbox re-processes, identity must not reject), and the registry may reshape its table.
"""

from __future__ import annotations

from sqlalchemy import Column, Date, Float, ForeignKey, Index, Integer, String, Table, Text

from rhip.store import UTCDateTime, metadata

ID = 32  # FHIR logical ids: uuid4 hex

persons = Table(
    "mpi_persons",
    metadata,
    Column("id", String(ID), primary_key=True),
    Column("status", String(12), nullable=False),  # active | provisional | merged
    Column("merged_into", String(ID)),
    Column("name", String(100)),
    Column("name_pinyin", String(100)),
    Column("gender", String(8)),
    Column("birth_date", Date),
    Column("phone", String(20)),
    Column("address", String(300)),
    Column("district_code", String(6)),
    Column("rid_hash", String(40)),  # keyed hash of the resident ID, when one is known
    Column("golden_registration_id", String(ID)),  # the registration the fields come from
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Index("ix_mpi_persons_rid_hash", "rid_hash"),
    # a golden record's timeline includes the records merged into it
    Index("ix_mpi_persons_merged_into", "merged_into"),
)

registrations = Table(
    "mpi_registrations",
    metadata,
    Column("id", String(ID), primary_key=True),
    Column("person_id", String(ID), ForeignKey("mpi_persons.id"), nullable=False),
    Column("institution_id", String(64)),
    Column("mrn_system", String(120)),
    Column("mrn", String(64)),
    Column("name", String(100)),  # as given
    Column("gender", String(8)),
    Column("birth_date", Date),
    Column("phone", String(20)),
    Column("address", String(300)),
    Column("district_code", String(6)),
    # normalised match columns (rhip.identity.normalise)
    Column("name_folded", String(100)),
    Column("name_pinyin", String(100)),
    Column("birth_iso", String(10)),
    Column("sex", String(8)),
    Column("phone_key", String(20)),
    Column("address_key", String(300)),
    Column("rid_hash", String(40)),
    Column("outcome", String(16), nullable=False),  # deterministic | auto | review | new | manual
    Column("match_weight", Float),
    Column("registered_at", UTCDateTime, nullable=False),
    Index("ix_mpi_registrations_person_id", "person_id"),
    Index("ix_mpi_registrations_mrn", "mrn_system", "mrn", unique=True),
    Index("ix_mpi_registrations_birth_sex", "birth_iso", "sex"),
    Index("ix_mpi_registrations_pinyin_birth", "name_pinyin", "birth_iso"),
    Index("ix_mpi_registrations_phone_key", "phone_key"),
    Index("ix_mpi_registrations_rid_hash", "rid_hash"),
)

identifiers = Table(
    "mpi_identifiers",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("registration_id", String(ID), ForeignKey("mpi_registrations.id"), nullable=False),
    Column("system", String(120), nullable=False),
    Column("type_code", String(8)),  # HL7 v2 PID-3 type: NNCHN, MR, PPN …
    Column("value", String(64)),  # clear value; NULL for sensitive systems
    Column("value_hash", String(40)),  # keyed hash; set for sensitive systems
    Column("value_enc", Text),  # encrypted value; set for sensitive systems
    Index("ix_mpi_identifiers_registration_id", "registration_id"),
    Index("ix_mpi_identifiers_system_value", "system", "value"),
    Index("ix_mpi_identifiers_value", "value"),
    Index("ix_mpi_identifiers_value_hash", "value_hash"),
)

reviews = Table(
    "mpi_reviews",
    metadata,
    Column("id", String(ID), primary_key=True),
    Column("registration_id", String(ID), ForeignKey("mpi_registrations.id"), nullable=False),
    Column("provisional_person_id", String(ID), nullable=False),
    Column("candidate_person_id", String(ID), nullable=False),
    Column("weight", Float, nullable=False),
    Column("status", String(12), nullable=False),  # open | linked | rejected
    Column("created_at", UTCDateTime, nullable=False),
    Column("decided_at", UTCDateTime),
    Column("decided_by", String(100)),
    Index("ix_mpi_reviews_status", "status"),
)

history = Table(
    "mpi_history",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("action", String(16), nullable=False),  # merge | unmerge
    Column("survivor_id", String(ID), nullable=False),
    Column("subsumed_id", String(ID), nullable=False),
    Column("registration_ids", Text, nullable=False),  # JSON list of the registrations moved
    Column("undone_by", Integer),  # for a merge: the unmerge that reversed it
    Column("reason", String(200)),
    Column("actor", String(100)),
    Column("at", UTCDateTime, nullable=False),
    Index("ix_mpi_history_subsumed_id", "subsumed_id"),
    Index("ix_mpi_history_survivor_id", "survivor_id"),
)

parameters = Table(
    "mpi_parameters",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("source", String(32), nullable=False),  # default | splink
    Column("params", Text, nullable=False),  # MatchParameters.to_json()
    Column("records", Integer),  # registrations the estimate was made on
    Column("created_at", UTCDateTime, nullable=False),
)
