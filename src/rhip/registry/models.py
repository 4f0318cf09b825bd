"""Registry tables: districts (GB/T 2260) and institutions (医疗卫生机构)."""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    Column,
    Date,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    text,
)

from rhip.store import UTCDateTime, metadata

districts = Table(
    "districts",
    metadata,
    Column("code", String(6), primary_key=True),  # GB/T 2260
    Column("name", String(64), nullable=False),
    Column("parent_code", String(6)),
    Column("population", Integer),  # residents, for per-capita figures
)

institutions = Table(
    "institutions",
    metadata,
    Column("id", String(64), primary_key=True),  # FHIR logical id
    Column("credit_code", String(18), nullable=False, unique=True),  # GB 32100 USCC
    Column("name", String(200), nullable=False),
    # public_hospital | private_hospital | clinic | lab | chc | public_health | maternal_child
    Column("type", String(32), nullable=False),
    Column("grade", String(16)),  # 三级甲等 … (NHC hospital grading), None for non-hospitals
    Column("district_code", String(6), ForeignKey("districts.code"), nullable=False),
    Column("address", String(300)),
    Column("phone", String(32)),
    # FHIR Organization.active: False once deregistered (注销); rows are never deleted
    Column("active", Boolean, nullable=False, default=True, server_default=text("true")),
    # FHIR Organization.partOf: e.g. a 社康 run by its district hospital (院办院管)
    Column("part_of", String(64), ForeignKey("institutions.id")),
    # connected | testing | not_connected
    Column("connection_status", String(16), nullable=False, default="not_connected"),
    Column("connected_on", Date),
    # JSON text: {"lab": true, "exam": true, "adt": true}, {"referral": true, "recognition": true}
    Column("feeds", Text, nullable=False, default="{}"),
    Column("functions", Text, nullable=False, default="{}"),
    Column("allow_cidrs", Text, nullable=False, default=""),  # comma-separated, for MLLP peers
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Index("ix_institutions_type_district", "type", "district_code"),
    Index("ix_institutions_name", "name"),
)
