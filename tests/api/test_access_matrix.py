"""The access matrix over HTTP (issue 4): every endpoint family × every kind of caller, one table.

Two hospitals, patient A registered at hospital A (with a lab report), patient B at hospital B.
Each cell is the status the caller gets; for clinical and personal-data reads every answer,
allowed or refused, must append exactly one audit event about patient A. 401s carry the Bearer
challenge; refusals are OperationOutcomes that name no one (no patient name, id or resident ID,
no institution id).
"""

from __future__ import annotations

import datetime as dt
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select

sys.path.insert(0, str(Path(__file__).parents[1]))  # tests/ for the shared helpers

from exchange.test_viewing import add_report
from factories import SETTINGS, token_headers
from rhip.api import create_app
from rhip.audit.models import audit_events
from rhip.kernel import systems
from rhip.kernel.ids import make_credit_code
from rhip.registry.models import institutions
from security.support import RID_A, City, make_city

# callers: role, binding (a = hospital/patient A, b = B), purpose of use
CALLERS: dict[str, tuple[str | None, str | None, str | None]] = {
    "anonymous": (None, None, None),
    "operator": ("operator", None, "TREAT"),  # a purpose changes nothing for an operator
    "doctor care TREAT": ("doctor", "a", "TREAT"),
    "doctor no-care TREAT": ("doctor", "b", "TREAT"),
    "doctor no purpose": ("doctor", "a", None),
    "doctor no-care ETREAT": ("doctor", "b", "ETREAT"),
    "patient self": ("patient", "a", None),
    "patient other": ("patient", "b", None),
    "integrator own": ("integrator", "a", None),
    "integrator other": ("integrator", "b", None),
}
COLUMNS = tuple(CALLERS)


@dataclass(frozen=True)
class Row:
    method: str
    path: str  # {org}, {pa}, {report}, {rid} are filled in from the city
    statuses: tuple[int, ...]  # one per COLUMNS entry
    audited: bool = False  # a read of patient A's clinical or personal data
    body: str | None = None  # {code} is hospital A's credit code


def _row(method: str, path: str, statuses: str, **kw) -> Row:
    return Row(method, path, tuple(int(s) for s in statuses.split()), **kw)


NEW_INSTITUTION = json.dumps({
    "credit_code": make_credit_code("12440300MB2F99999"), "name": "新医院",
    "type": "clinic", "district_code": "440304",
})  # fmt: skip
BUNDLE = json.dumps({"resourceType": "Bundle", "type": "batch", "entry": []})
#          anon  op  care nocare nopurp glass self other int-own int-other
MATRIX: dict[str, Row] = {
    "Organization read": _row("GET", "/fhir/Organization/{org}",
                              "401 200 200 200 200 200 200 200 200 200"),
    "Organization search": _row("GET", "/fhir/Organization?name=测试",
                                "401 200 200 200 200 200 200 200 200 200"),
    "registry list": _row("GET", "/api/registry/institutions",
                          "401 200 200 200 200 200 200 200 200 200"),
    "registry coverage": _row("GET", "/api/registry/coverage",
                              "401 200 403 403 403 403 403 403 403 403"),
    "registry create": _row("POST", "/api/registry/institutions",
                            "401 201 403 403 403 403 403 403 403 403", body=NEW_INSTITUTION),
    "inbox": _row("GET", "/api/inbox", "401 200 403 403 403 403 403 403 403 403"),
    "quality scorecard": _row("GET", "/api/quality/institutions/{org}",
                              "401 200 403 403 403 403 403 403 403 403"),
    "quality silence": _row("GET", "/api/quality/silence",
                            "401 200 403 403 403 403 403 403 403 403"),
    "AuditEvent": _row("GET", "/fhir/AuditEvent", "401 200 403 403 403 403 403 403 403 403"),
    "Patient read": _row("GET", "/fhir/Patient/{pa}",
                         "401 200 200 200 403 200 200 404 403 403", audited=True),
    "Patient search": _row("GET", "/fhir/Patient?identifier={rid}",
                           "401 200 200 200 403 200 403 403 403 403"),
    "Patient $ihe-pix": _row("GET", "/fhir/Patient/$ihe-pix?sourceIdentifier={rid}",
                             "401 200 200 200 403 200 403 403 403 403"),
    "DiagnosticReport search": _row("GET", "/fhir/DiagnosticReport?patient={pa}",
                                    "401 403 200 403 403 200 200 404 403 403", audited=True),
    "DiagnosticReport read": _row("GET", "/fhir/DiagnosticReport/{report}",
                                  "401 403 200 403 403 200 200 404 403 403", audited=True),
    "Observation search": _row("GET", "/fhir/Observation?subject=Patient/{pa}",
                               "401 403 200 403 403 200 200 404 403 403", audited=True),
    "timeline": _row("GET", "/api/patients/{pa}/timeline",
                     "401 403 200 403 403 200 200 404 403 403", audited=True),
    "submit Bundle as A": _row("POST", "/fhir", "401 403 403 403 403 403 403 403 200 403",
                               body=BUNDLE),
    "$import as A": _row("POST", "/fhir/$import", "401 403 403 403 403 403 403 403 200 403",
                         body=""),
}  # fmt: skip
CELLS = [(family, caller) for family in MATRIX for caller in COLUMNS]


@pytest.fixture(scope="module")
def world(tmp_path_factory, sqlite_template: Path):
    """One city for the whole matrix (cells that write change nothing the others read)."""
    import shutil

    from rhip.store import make_engine

    path = tmp_path_factory.mktemp("matrix") / "rhip.db"
    shutil.copyfile(sqlite_template, path)
    engine = make_engine(f"sqlite:///{path}")
    city = make_city(engine)
    with engine.begin() as conn:
        at = dt.datetime(2024, 3, 1, tzinfo=dt.UTC)
        report = add_report(conn, city.patient_a, city.inst_a, at,
                            obs=[dict(code="HGB", value_num=95, unit="g/L")])  # fmt: skip
        code = conn.execute(
            select(institutions.c.credit_code).where(institutions.c.id == city.inst_a)
        ).scalar_one()
    yield engine, city, report, code
    engine.dispose()


def _headers(caller: str, city: City, code: str) -> dict[str, str]:
    role, side, purpose = CALLERS[caller]
    if role is None:
        return {}
    binding = {}
    if role in ("doctor", "integrator") and side:
        binding["institution_id"] = city.inst_a if side == "a" else city.inst_b
    if role == "patient":
        binding["patient_id"] = city.patient_a if side == "a" else city.patient_b
    headers = token_headers(role, purpose=purpose, username=caller.replace(" ", "."), **binding)
    return headers | {"X-Rhip-Sender": code}  # submissions name hospital A


def _events(engine: Engine) -> list:
    with engine.connect() as conn:
        return conn.execute(select(audit_events).order_by(audit_events.c.seq)).all()


@pytest.mark.parametrize(("family", "caller"), CELLS, ids=[f"{f} | {c}" for f, c in CELLS])
def test_access_matrix(world, family: str, caller: str) -> None:
    engine, city, report, code = world
    row = MATRIX[family]
    expected = row.statuses[COLUMNS.index(caller)]
    client = TestClient(create_app(SETTINGS, engine=engine))
    path = row.path.format(org=city.inst_a, pa=city.patient_a, report=report,
                           rid=f"{systems.RESIDENT_ID}|{RID_A}")  # fmt: skip
    before = len(_events(engine))
    headers = _headers(caller, city, code) | {"Content-Type": "application/json"}
    r = client.request(row.method, path, headers=headers,
                       content=row.body.encode() if row.body is not None else None)  # fmt: skip
    assert r.status_code == expected, r.text

    if expected == 401:
        assert r.headers["www-authenticate"].startswith('Bearer realm="rhip"')
        assert r.json()["resourceType"] == "OperationOutcome"
    if expected in (403, 404):
        outcome = r.json()
        assert outcome["resourceType"] == "OperationOutcome"
        for secret in (city.patient_a, city.patient_b, RID_A, "患者", city.inst_a, city.inst_b,
                       code, report):  # fmt: skip
            assert secret not in r.text, secret
    if row.audited and expected != 401:
        new = _events(engine)[before:]
        assert [(e.patient_id, e.status) for e in new] == [(city.patient_a, expected)]
        assert new[0].outcome == ("0" if expected == 200 else "4")
        assert new[0].username == caller.replace(" ", ".")
        break_glass = caller == "doctor no-care ETREAT" and not family.startswith("Patient")
        assert new[0].flagged == break_glass  # a lookup is no break-glass; a clinical read is


def test_every_refused_or_allowed_mpi_lookup_is_audited(world) -> None:
    engine, city, _, code = world
    client = TestClient(create_app(SETTINGS, engine=engine))
    before = len(_events(engine))
    for caller in ("doctor no purpose", "integrator own", "operator", "doctor care TREAT"):
        client.get("/fhir/Patient", params={"identifier": f"{systems.RESIDENT_ID}|{RID_A}"},
                   headers=_headers(caller, city, code))  # fmt: skip
    new = [(e.username, e.resource, e.patient_id, e.status) for e in _events(engine)[before:]]
    assert new == [
        ("doctor.no.purpose", "Patient", None, 403),
        ("integrator.own", "Patient", None, 403),
        ("operator", "Patient", city.patient_a, 200),
        ("doctor.care.TREAT", "Patient", city.patient_a, 200),
    ]


def test_the_matrix_covers_every_caller_in_every_row() -> None:
    assert all(len(row.statuses) == len(COLUMNS) for row in MATRIX.values())
