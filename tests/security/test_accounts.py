"""Accounts, sign-in, care relationships, demo accounts and the ``rhip user`` commands."""

from __future__ import annotations

import pytest
from pydantic import ValidationError
from sqlalchemy import Engine, select, update
from typer.testing import CliRunner

from rhip.identity.models import persons
from rhip.kernel.errors import Conflict, Forbidden, InvalidInput, Unauthorized
from rhip.security import service
from rhip.security.cli import app as user_app
from rhip.security.models import users
from rhip.security.policy import Relationship
from rhip.security.schemas import Principal, Role, UserCreate
from security.support import PASSWORD, add_accounts, add_user, make_city


@pytest.mark.postgres
def test_create_and_authenticate(engine: Engine) -> None:
    city = make_city(engine)
    add_user(engine, "dr.a", Role.DOCTOR, institution_id=city.inst_a)
    p = service.authenticate(engine, "dr.a", PASSWORD)
    assert (p.username, p.role, p.institution_id, p.patient_id) == (
        "dr.a", Role.DOCTOR, city.inst_a, None
    )  # fmt: skip
    with engine.connect() as conn:
        stored = conn.execute(select(users.c.password_hash, users.c.last_login_at)).one()
    assert stored.password_hash.startswith("$argon2id$") and stored.last_login_at is not None


def test_wrong_password_unknown_user_and_disabled_user_get_one_message(engine: Engine) -> None:
    city = make_city(engine)
    add_user(engine, "dr.a", Role.DOCTOR, institution_id=city.inst_a)
    add_user(engine, "dr.off", Role.DOCTOR, institution_id=city.inst_a)
    with engine.begin() as conn:
        conn.execute(update(users).where(users.c.username == "dr.off").values(active=False))
    messages = set()
    for username, password in (("dr.a", "wrong-password"), ("nobody", PASSWORD),
                               ("dr.off", PASSWORD)):  # fmt: skip
        with pytest.raises(Unauthorized) as err:
            service.authenticate(engine, username, password)
        messages.add(err.value.message)
    assert messages == {"incorrect username or password"}


def test_bindings_are_checked(engine: Engine) -> None:
    city = make_city(engine)
    with pytest.raises(InvalidInput, match="no institution"):
        add_user(engine, "dr.x", Role.DOCTOR, institution_id="org-missing")
    with pytest.raises(InvalidInput, match="golden patient"):
        add_user(engine, "pt.x", Role.PATIENT, patient_id="p-missing")
    add_user(engine, "dr.a", Role.DOCTOR, institution_id=city.inst_a)
    with pytest.raises(Conflict, match="taken"):
        add_user(engine, "dr.a", Role.DOCTOR, institution_id=city.inst_b)


@pytest.mark.parametrize(
    ("role", "binding", "message"),
    [
        (Role.DOCTOR, {}, "institution_id is required"),
        (Role.INTEGRATOR, {"patient_id": "p"}, "institution_id is required"),
        (Role.PATIENT, {"institution_id": "org-1"}, "institution_id is not allowed"),
        (Role.PATIENT, {}, "patient_id is required"),
        (Role.OPERATOR, {"patient_id": "p"}, "patient_id is not allowed"),
    ],
)
def test_role_needs_its_binding(role: Role, binding: dict, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        UserCreate(username="someone", password=PASSWORD, role=role, **binding)
    with pytest.raises(ValidationError, match="at least 8"):
        UserCreate(username="someone", password="short", role=Role.OPERATOR)


@pytest.mark.postgres
def test_care_relationship(engine: Engine) -> None:
    city = make_city(engine)
    dr_a = Principal("u", "dr.a", Role.DOCTOR, institution_id=city.inst_a)
    pt_a = Principal("u", "pt.a", Role.PATIENT, patient_id=city.patient_a)
    op = Principal("u", "op", Role.OPERATOR)
    with engine.connect() as conn:
        assert service.care_relationship(conn, dr_a, city.patient_a) is Relationship.CARE
        assert service.care_relationship(conn, dr_a, city.patient_b) is Relationship.NONE
        assert service.care_relationship(conn, dr_a, "p-unknown") is Relationship.NONE
        assert service.care_relationship(conn, pt_a, city.patient_a) is Relationship.SELF
        assert service.care_relationship(conn, pt_a, city.patient_b) is Relationship.NONE
        assert service.care_relationship(conn, op, city.patient_a) is Relationship.NONE
    with engine.begin() as conn:  # the patient's record merged into another: still theirs
        conn.execute(
            update(persons)
            .where(persons.c.id == city.patient_a)
            .values(status="merged", merged_into=city.patient_b)
        )
    with engine.connect() as conn:
        assert service.care_relationship(conn, pt_a, city.patient_b) is Relationship.SELF


def test_submitter_relationship() -> None:
    integ = Principal("u", "i", Role.INTEGRATOR, institution_id="org-1")
    assert service.submitter_relationship(integ, "org-1") is Relationship.OWN_INSTITUTION
    assert service.submitter_relationship(integ, "org-2") is Relationship.NONE
    assert service.submitter_relationship(integ, None) is Relationship.NONE


def test_demo_accounts_one_per_role_idempotent_and_refused_in_prod(engine: Engine) -> None:
    city = make_city(engine)
    made = service.create_demo_users(engine, city.inst_a, city.patient_a)
    assert {a.role for a in made} == set(Role)
    again = service.create_demo_users(engine, city.inst_a, city.patient_a)
    assert again == made
    for acc in made:
        assert service.authenticate(engine, acc.username, acc.password).role is acc.role
    assert len(service.list_users(engine)) == 4
    with pytest.raises(Forbidden):
        service.create_demo_users(engine, city.inst_a, city.patient_a, env="prod")


def test_user_cli_add_and_list(engine: Engine, database_url: str, monkeypatch) -> None:
    city = make_city(engine)
    add_accounts(engine, city)
    monkeypatch.setenv("RHIP_DATABASE_URL", database_url)
    runner = CliRunner()
    args = ["add", "--username", "dr.new", "--password", PASSWORD, "--role", "doctor",
            "--institution", city.inst_b, "--name", "王医生"]  # fmt: skip
    r = runner.invoke(user_app, args)
    assert r.exit_code == 0, r.output
    assert "dr.new" in r.output
    assert service.authenticate(engine, "dr.new", PASSWORD).institution_id == city.inst_b
    r = runner.invoke(user_app, ["add", "--username", "dr.bad", "--password", PASSWORD,
                                 "--role", "doctor"])  # fmt: skip
    assert r.exit_code == 2 and "institution_id is required" in r.output
    r = runner.invoke(user_app, ["list", "--role", "doctor"])
    assert r.exit_code == 0 and "dr.new" in r.output and "dr.a" in r.output
    assert "argon2" not in r.output and "pt.a" not in r.output
