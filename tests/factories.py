"""Shared test factories: who is calling (principals, accounts, bearer headers).

Tokens are self-contained (role and binding are claims), so most HTTP tests need no account row:
``token_headers(Role.OPERATOR)`` signs one for a made-up principal with the test settings. Tests
of sign-in itself make real accounts with ``make_user``.

    client.get("/fhir/Organization", headers=token_headers(Role.DOCTOR, institution_id="org-1"))
"""

from __future__ import annotations

import uuid

import pytest
from argon2 import PasswordHasher
from sqlalchemy import Engine

from rhip.kernel.settings import Settings
from rhip.security import passwords, service, tokens
from rhip.security.purpose import HEADER as PURPOSE_HEADER
from rhip.security.schemas import Principal, Role, UserCreate

SETTINGS = Settings(env="test")  # the settings of every app the HTTP tests build
PASSWORD = "test-pass-word"


def principal(
    role: Role | str,
    *,
    institution_id: str | None = None,
    patient_id: str | None = None,
    username: str | None = None,
) -> Principal:
    """A principal as a verified token would give it (no account row needed)."""
    role = Role(role)
    name = username or f"{role.value}-{uuid.uuid4().hex[:6]}"
    return Principal(f"u-{name}", name, role, institution_id, patient_id, display_name=name)


def token_headers(
    who: Principal | Role | str,
    *,
    purpose: str | None = None,
    settings: Settings = SETTINGS,
    **binding: str | None,
) -> dict[str, str]:
    """``Authorization: Bearer`` for ``who`` (a principal, or a role and its binding), with
    ``X-Purpose-Of-Use`` when ``purpose`` is given."""
    if not isinstance(who, Principal):
        who = principal(who, **binding)
    headers = {"Authorization": f"Bearer {tokens.issue(settings, who)}"}
    if purpose:
        headers[PURPOSE_HEADER] = purpose
    return headers


def make_user(
    engine: Engine,
    role: Role | str,
    institution_id: str | None = None,
    patient_id: str | None = None,
    *,
    username: str | None = None,
    password: str = PASSWORD,
) -> Principal:
    """A real account (argon2-hashed password), for tests that sign in."""
    role = Role(role)
    made = service.create_user(
        engine,
        UserCreate(
            username=username or f"{role.value}-{uuid.uuid4().hex[:6]}",
            password=password,
            role=role,
            institution_id=institution_id,
            patient_id=patient_id,
        ),
    )
    return Principal(made.id, made.username, role, institution_id, patient_id, made.display_name)


@pytest.fixture
def fast_password_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Cheap argon2 parameters: the real ones (64 MiB, 3 passes) cost ~50 ms a hash, and some
    suites make and sign in many accounts. What is tested, the argon2id scheme and the
    verification logic, is the same. A suite's conftest turns it on for all its tests."""
    cheap = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    monkeypatch.setattr(passwords, "_hasher", cheap)
    monkeypatch.setattr(passwords, "_DUMMY", cheap.hash("rhip: no such user"))
