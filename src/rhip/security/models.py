"""Security tables: platform accounts (用户账号) with their role and binding.

* ``users`` — one row per account: an argon2 password hash (never the password), a role
  (operator | doctor | patient | integrator) and the binding the role needs: a doctor or an
  integrator to an institution (``institution_id``), a patient to a golden patient
  (``patient_id``).

No foreign keys to ``institutions`` or ``mpi_persons``: the service checks the binding when an
account is made, and identity may merge a golden record later (the policy follows the merge).
"""

from __future__ import annotations

from sqlalchemy import Boolean, Column, Index, String, Table, text

from rhip.store import UTCDateTime, metadata

users = Table(
    "users",
    metadata,
    Column("id", String(32), primary_key=True),  # uuid4 hex
    Column("username", String(64), nullable=False, unique=True),
    Column("password_hash", String(200), nullable=False),  # argon2id, PHC string format
    Column("role", String(16), nullable=False),  # operator | doctor | patient | integrator
    Column("institution_id", String(64)),  # doctor, integrator
    Column("patient_id", String(32)),  # patient: the golden record (mpi_persons.id)
    Column("display_name", String(100), nullable=False, default=""),
    Column("active", Boolean, nullable=False, default=True, server_default=text("true")),
    Column("created_at", UTCDateTime, nullable=False),
    Column("last_login_at", UTCDateTime),
    Index("ix_users_institution_id", "institution_id"),
    Index("ix_users_patient_id", "patient_id"),
)
