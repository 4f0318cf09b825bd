"""Security and audit test helpers: two institutions, a patient registered at each, accounts,
and an app with the auth routers and the gate installed."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from fastapi.testclient import TestClient
from sqlalchemy import Engine, insert

from rhip.api import create_app
from rhip.identity import service as mpi
from rhip.identity.schemas import Identifier, RegistrationCreate
from rhip.kernel import systems
from rhip.kernel.crypto import IdentifierVault
from rhip.kernel.ids import make_credit_code
from rhip.kernel.settings import Settings
from rhip.registry.models import districts, institutions
from rhip.security import service
from rhip.security.schemas import Role, UserCreate

SETTINGS = Settings(env="test")
RID_A = "11010519491231002X"  # valid resident IDs (GB 11643 checksum)
RID_B = "440304199001011233"
PASSWORD = "s3cret-pass-word"


@dataclass(frozen=True)
class City:
    inst_a: str
    inst_b: str
    patient_a: str  # registered at inst_a
    patient_b: str  # registered at inst_b only


def _institution(conn, n: int) -> str:
    now = dt.datetime.now(dt.UTC)
    code = make_credit_code(f"12440300MB2F{n:04d}")
    conn.execute(
        insert(institutions).values(
            id=f"org-{n}", credit_code=code, name=f"测试医院{n}", type="public_hospital",
            district_code="440304", connection_status="connected", feeds="{}", functions="{}",
            allow_cidrs="", created_at=now, updated_at=now,
        )
    )  # fmt: skip
    return f"org-{n}"


def _patient(engine: Engine, inst: str, n: int, rid: str) -> str:
    reg = RegistrationCreate(
        identifiers=[
            Identifier(system=systems.RESIDENT_ID, value=rid),
            Identifier(system=systems.mrn_system(f"X{inst}"), value=f"MRN{n}"),
        ],
        name=f"患者{n}",
        gender="female",
        birth_date=dt.date(1949, 12, 31) if n == 1 else dt.date(1990, 1, 1),
        institution_id=inst,
    )
    return mpi.register(engine, IdentifierVault(SETTINGS.secret_key), reg).person_id


def make_city(engine: Engine) -> City:
    with engine.begin() as conn:
        conn.execute(insert(districts).values(code="440304", name="福田区"))
        a, b = _institution(conn, 1), _institution(conn, 2)
    return City(a, b, _patient(engine, a, 1, RID_A), _patient(engine, b, 2, RID_B))


def add_user(engine: Engine, username: str, role: Role, **binding) -> None:
    service.create_user(
        engine, UserCreate(username=username, password=PASSWORD, role=role, **binding)
    )


def add_accounts(engine: Engine, city: City) -> None:
    """Operator ``op``, doctors ``dr.a``/``dr.b``, patients ``pt.a``/``pt.b``, integrator
    ``int.a`` (the ``a`` ones at or of ``inst_a``)."""
    add_user(engine, "op", Role.OPERATOR)
    add_user(engine, "dr.a", Role.DOCTOR, institution_id=city.inst_a)
    add_user(engine, "dr.b", Role.DOCTOR, institution_id=city.inst_b)
    add_user(engine, "pt.a", Role.PATIENT, patient_id=city.patient_a)
    add_user(engine, "pt.b", Role.PATIENT, patient_id=city.patient_b)
    add_user(engine, "int.a", Role.INTEGRATOR, institution_id=city.inst_a)


def app_client(engine: Engine, *extra_routers) -> TestClient:
    """The real app (every router, the login gate) plus any test-only routers."""
    app = create_app(SETTINGS, engine=engine)
    for router in extra_routers:
        app.include_router(router)
    return TestClient(app)


MINE = ("rhip.api.routers.auth", "rhip.api.routers.audit", "rhip.api.fhir.audit_event")


def login(client: TestClient, username: str, password: str = PASSWORD) -> dict[str, str]:
    r = client.post("/api/auth/token", data={"username": username, "password": password})
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['access_token']}"}
