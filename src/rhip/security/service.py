"""Accounts (用户账号), sign-in and the care relationship the policy needs. No FastAPI here."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import Connection, Engine, exists, select, update
from sqlalchemy.exc import IntegrityError

from rhip.identity.models import persons, registrations
from rhip.kernel import clock
from rhip.kernel.errors import Conflict, Forbidden, InvalidInput, Unauthorized
from rhip.registry.models import institutions
from rhip.security.models import users
from rhip.security.passwords import burn_time, hash_password, needs_rehash, verify_password
from rhip.security.policy import Relationship
from rhip.security.schemas import Principal, Role, UserCreate, UserPublic

BAD_LOGIN = "incorrect username or password"  # one message: never says which was wrong


def create_user(engine: Engine, data: UserCreate) -> UserPublic:
    """Make an account after checking its institution or golden patient exists."""
    with engine.begin() as conn:
        _check_binding(conn, data)
        row = {
            "id": uuid.uuid4().hex,
            "username": data.username,
            "password_hash": hash_password(data.password),
            "role": data.role.value,
            "institution_id": data.institution_id,
            "patient_id": data.patient_id,
            "display_name": data.display_name or data.username,
            "active": True,
            "created_at": clock.now(),
        }
        try:
            conn.execute(users.insert().values(row))
        except IntegrityError:
            raise Conflict(f"username {data.username!r} is taken", expression="username") from None
    return UserPublic(**{k: v for k, v in row.items() if k != "password_hash"}, last_login_at=None)


def _check_binding(conn: Connection, data: UserCreate) -> None:
    if data.institution_id is not None:
        found = conn.execute(
            select(institutions.c.id).where(institutions.c.id == data.institution_id)
        ).first()
        if found is None:
            raise InvalidInput("no institution has this id", expression="institution_id")
    if data.patient_id is not None:
        found = conn.execute(
            select(persons.c.status).where(persons.c.id == data.patient_id)
        ).first()
        if found is None or found.status == "merged":
            raise InvalidInput("no live golden patient has this id", expression="patient_id")


def authenticate(engine: Engine, username: str, password: str) -> Principal:
    """The principal for a correct username and password; Unauthorized otherwise."""
    with engine.begin() as conn:
        row = conn.execute(
            select(users).where(users.c.username == username, users.c.active.is_(True))
        ).first()
        if row is None:
            burn_time(password)
            raise Unauthorized(BAD_LOGIN)
        if not verify_password(row.password_hash, password):
            raise Unauthorized(BAD_LOGIN)
        changes = {"last_login_at": clock.now()}
        if needs_rehash(row.password_hash):
            changes["password_hash"] = hash_password(password)
        conn.execute(update(users).where(users.c.id == row.id).values(changes))
    return principal_of(row)


def principal_of(row) -> Principal:
    return Principal(
        user_id=row.id,
        username=row.username,
        role=Role(row.role),
        institution_id=row.institution_id,
        patient_id=row.patient_id,
        display_name=row.display_name or row.username,
    )


def list_users(engine: Engine, role: Role | None = None) -> list[UserPublic]:
    query = select(users).order_by(users.c.role, users.c.username)
    if role is not None:
        query = query.where(users.c.role == role.value)
    with engine.connect() as conn:
        rows = conn.execute(query).all()
    return [
        UserPublic(**{k: v for k, v in r._mapping.items() if k != "password_hash"}) for r in rows
    ]


def care_relationship(conn: Connection, principal: Principal, patient_id: str) -> Relationship:
    """How ``principal`` relates to golden patient ``patient_id`` (one indexed lookup at most).

    A patient: SELF for their own record, also after it was merged into ``patient_id``.
    A doctor: CARE when the patient has a registration at the doctor's institution (建档);
    referrals will add another kind. Everyone else: NONE.
    """
    if principal.role is Role.PATIENT and principal.patient_id:
        if principal.patient_id == patient_id:
            return Relationship.SELF
        merged = conn.execute(
            select(persons.c.id).where(
                persons.c.id == principal.patient_id, persons.c.merged_into == patient_id
            )
        ).first()
        return Relationship.SELF if merged else Relationship.NONE
    if principal.role is Role.DOCTOR and principal.institution_id:
        registered = conn.execute(
            select(
                exists().where(
                    registrations.c.person_id == patient_id,
                    registrations.c.institution_id == principal.institution_id,
                )
            )
        ).scalar()
        return Relationship.CARE if registered else Relationship.NONE
    return Relationship.NONE


def submitter_relationship(principal: Principal, institution_id: str | None) -> Relationship:
    """OWN_INSTITUTION when a submission claims the principal's own institution."""
    if principal.institution_id and institution_id == principal.institution_id:
        return Relationship.OWN_INSTITUTION
    return Relationship.NONE


@dataclass(frozen=True, slots=True)
class DemoAccount:
    username: str
    password: str
    role: Role


# Fixed demo credentials (dev and demo databases only; listed in the README and docs/security.md)
DEMO_ACCOUNTS = (
    DemoAccount("demo-operator", "rhip-demo-operator", Role.OPERATOR),
    DemoAccount("demo-doctor", "rhip-demo-doctor", Role.DOCTOR),
    DemoAccount("demo-patient", "rhip-demo-patient", Role.PATIENT),
    DemoAccount("demo-integrator", "rhip-demo-integrator", Role.INTEGRATOR),
)


def create_demo_users(
    engine: Engine, institution_id: str, patient_id: str, *, env: str = "dev"
) -> list[DemoAccount]:
    """One demo account per role (the doctor and integrator at ``institution_id``, the patient
    bound to ``patient_id``); existing ones are kept. Refused when ``env`` is prod."""
    if env == "prod":
        raise Forbidden("demo accounts with published passwords are refused when RHIP_ENV=prod")
    with engine.connect() as conn:
        taken = set(conn.execute(select(users.c.username)).scalars())
    names = {Role.OPERATOR: "演示运维", Role.DOCTOR: "演示医生", Role.PATIENT: "演示患者",
             Role.INTEGRATOR: "演示接入"}  # fmt: skip
    bound = (Role.DOCTOR, Role.INTEGRATOR)
    for acc in DEMO_ACCOUNTS:
        if acc.username in taken:
            continue
        create_user(
            engine,
            UserCreate(
                username=acc.username,
                password=acc.password,
                role=acc.role,
                institution_id=institution_id if acc.role in bound else None,
                patient_id=patient_id if acc.role is Role.PATIENT else None,
                display_name=names[acc.role],
            ),
        )
    return list(DEMO_ACCOUNTS)
