"""FHIR reports (检验/检查报告): ``POST /fhir`` Bundles, ``POST /fhir/$import`` NDJSON, and search /
read of DiagnosticReport and Observation.

Submission is for integrators, as their own institution: the sender is the institution their
account is bound to. ``X-Rhip-Sender`` (institution id or credit code) is optional; when sent it
must name that same institution (a hospital system configured for several sites gets a clear 403
rather than silently filing under another sender). Operators do not submit over HTTP; back-loading
on behalf of an institution is ``rhip ingest ndjson --sender``.

Reads are 调阅 and go through ``audited_search``/``audited_read``: a doctor needs a purpose of use
and, for TREAT, a care relationship with every patient searched; a patient reads their own (a
search without ``patient`` is scoped to them); operators and integrators are refused — never
report contents. A doctor's search must name its patient (``patient``, ``patient.identifier`` or
``subject``): 400 otherwise. Every read, allowed or refused, is an audit event.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Request
from sqlalchemy import Engine, select
from starlette.concurrency import run_in_threadpool

from rhip.api.auth import audited_read, audited_search, record_access, refusal
from rhip.api.deps import CurrentUser, EngineDep, PurposeOfUse, VaultDep
from rhip.api.fhir import metadata
from rhip.api.fhir.common import FHIRResponse, parse_search, searchset
from rhip.exchange import fhir_search, ndjson
from rhip.exchange.fhir_bundle import FhirIngest, find_sender
from rhip.exchange.fhir_refs import MpiLookup
from rhip.exchange.fhir_search import Criterion
from rhip.exchange.fhir_validate import SenderUnknown
from rhip.exchange.models import observations, reports
from rhip.kernel.crypto import IdentifierVault
from rhip.kernel.errors import MalformedInput, NotFound, operation_outcome
from rhip.security.policy import Action, Decision, decide
from rhip.security.schemas import Principal, Role
from rhip.security.service import submitter_relationship

router = APIRouter(tags=["fhir"])
SenderHeader = Annotated[str | None, Header(alias="X-Rhip-Sender")]

_SP = "http://hl7.org/fhir/SearchParameter/"
_COMMON = [
    {"name": "_id", "type": "token", "definition": _SP + "Resource-id"},
    {"name": "patient", "type": "reference", "documentation": "Patient/<golden id> or <id>"},
    {
        "name": "patient.identifier",
        "type": "token",
        "documentation": "chained: system|value of any identifier of the patient in the MPI "
        "(resident IDs matched by keyed hash); also written patient:identifier",
    },
    {"name": "category", "type": "token",
     "documentation": "LAB/laboratory → lab (检验); RAD, CT, US, EC, imaging … → exam (检查)"},
    {"name": "code", "type": "token", "documentation": "system|code or code; comma: any of"},
    {"name": "date", "type": "date", "documentation": "prefixes eq ge gt le lt; CST dates"},
    {"name": "performer", "type": "reference", "documentation": "Organization/<institution id>"},
    {"name": "status", "type": "token", "documentation": "preliminary | final | corrected"},
]  # fmt: skip


def _capability(kind: str, extra: list[dict[str, str]]) -> dict[str, Any]:
    return {
        "type": kind,
        "profile": f"http://hl7.org/fhir/StructureDefinition/{kind}",
        "interaction": [{"code": "read"}, {"code": "search-type"}],
        "versioning": "versioned",
        "searchInclude": [],
        "searchParam": [*_COMMON, *extra],
        "documentation": "search returns current versions only; create through POST /fhir "
        "(transaction or batch Bundle) or POST /fhir/$import (NDJSON)",
    }


DR_CAPABILITY = _capability(
    "DiagnosticReport",
    [{"name": "issued", "type": "date", "documentation": "prefixes eq ge gt le lt"}],
)
OBS_CAPABILITY = _capability("Observation", [])
DR_PARAMS = (*(p["name"] for p in DR_CAPABILITY["searchParam"]), "subject")
OBS_PARAMS = (*(p["name"] for p in OBS_CAPABILITY["searchParam"]), "subject")
metadata.register(
    DR_CAPABILITY,
    [{"name": "import", "definition": "urn:rhip:operation:import",
      "documentation": "POST /fhir/$import: NDJSON body, one resource or Bundle a line"}],
    system_interactions=("transaction", "batch"),
)  # fmt: skip
metadata.register(OBS_CAPABILITY)


def _ingest(request: Request) -> FhirIngest:
    state = request.app.state
    if getattr(state, "fhir_ingest", None) is None:
        state.fhir_ingest = FhirIngest(state.engine, vault=state.vault)
    return state.fhir_ingest


def _criteria(request: Request, allowed: tuple[str, ...]):
    params, page = parse_search(request, allowed)
    return [Criterion(p.name, p.modifier, p.value) for p in params], page


@router.post("/fhir", response_class=FHIRResponse)
async def transaction(
    request: Request, user: CurrentUser, sender: SenderHeader = None
) -> FHIRResponse:
    """A transaction (all or nothing) or batch Bundle of reports and patients."""
    institution = _submitter(request, user, sender)
    body = await request.body()
    peer = request.client.host if request.client else ""
    answer = await run_in_threadpool(_ingest(request).receive_bundle, body, institution, peer)
    return FHIRResponse(answer.body, status_code=answer.status)


@router.post("/fhir/$import", response_class=FHIRResponse)
async def bulk_import(
    request: Request, user: CurrentUser, sender: SenderHeader = None
) -> FHIRResponse:
    """NDJSON body (``application/fhir+ndjson``): one resource or Bundle a line, in chunks."""
    institution = _submitter(request, user, sender)
    body = await request.body()
    result = await run_in_threadpool(ndjson.import_body, _ingest(request), body, institution)
    issues = [{
        "severity": "information", "code": "informational",
        "diagnostics": f"{result.lines} lines, {result.reports} reports, {result.patients} "
        f"patients; {result.duplicate_chunks} of {result.chunks} chunks were already imported",
    }]  # fmt: skip
    issues += [
        {"severity": "error", "code": "invalid", "diagnostics": str(e),
         "expression": [f"line {e.line}"]}
        for e in result.errors
    ]  # fmt: skip
    return FHIRResponse(operation_outcome(issues), status_code=200)


@router.get("/fhir/DiagnosticReport", response_class=FHIRResponse)
def search_reports(
    request: Request, engine: EngineDep, vault: VaultDep, user: CurrentUser, purpose: PurposeOfUse
) -> FHIRResponse:
    criteria, page = _criteria(request, DR_PARAMS)
    criteria, patients = _scope(engine, vault, user, criteria, "DiagnosticReport")
    with audited_search(request, user, purpose, patient_ids=patients, resource="DiagnosticReport"):
        total, found = fhir_search.search_reports(engine, vault, criteria, page.count, page.offset)
    return FHIRResponse(searchset(request, found, total, page))


@router.get("/fhir/DiagnosticReport/{report_id}", response_class=FHIRResponse)
def read_report(
    report_id: str, request: Request, engine: EngineDep, vault: VaultDep, user: CurrentUser,
    purpose: PurposeOfUse,
) -> FHIRResponse:  # fmt: skip
    found = select(reports.c.patient_id).where(reports.c.id == report_id)
    pid = _owner(request, engine, vault, user, purpose, found, "DiagnosticReport")
    with audited_read(request, user, purpose, patient_id=pid, resource="DiagnosticReport"):
        body = fhir_search.read_report(engine, report_id)
    return FHIRResponse(body)


@router.get("/fhir/Observation", response_class=FHIRResponse)
def search_observations(
    request: Request, engine: EngineDep, vault: VaultDep, user: CurrentUser, purpose: PurposeOfUse
) -> FHIRResponse:
    criteria, page = _criteria(request, OBS_PARAMS)
    criteria, patients = _scope(engine, vault, user, criteria, "Observation")
    with audited_search(request, user, purpose, patient_ids=patients, resource="Observation"):
        total, found = fhir_search.search_observations(
            engine, vault, criteria, page.count, page.offset
        )
    return FHIRResponse(searchset(request, found, total, page))


@router.get("/fhir/Observation/{observation_id}", response_class=FHIRResponse)
def read_observation(
    observation_id: str, request: Request, engine: EngineDep, vault: VaultDep, user: CurrentUser,
    purpose: PurposeOfUse,
) -> FHIRResponse:  # fmt: skip
    number = int(observation_id) if observation_id.isdigit() else -1
    found = (
        select(reports.c.patient_id)
        .select_from(observations.join(reports, reports.c.id == observations.c.report_id))
        .where(observations.c.id == number)
    )
    pid = _owner(request, engine, vault, user, purpose, found, "Observation")
    with audited_read(request, user, purpose, patient_id=pid, resource="Observation"):
        body = fhir_search.read_observation(engine, observation_id)
    return FHIRResponse(body)


# ---- who submits, whose records are read ---------------------------------------------------

PATIENT_PARAMS = ("patient", "patient.identifier", "subject")


def _submitter(request: Request, user: Principal, claimed: str | None) -> str:
    """The institution a submission is filed under: the integrator's own (policy ``submit``);
    ``X-Rhip-Sender``, when sent, must name it. 403 otherwise, saying nothing about others."""
    institution = user.institution_id
    if claimed and claimed.strip():
        try:
            with request.app.state.engine.connect() as conn:
                institution = find_sender(conn, claimed).institution_id
        except SenderUnknown:
            institution = None
    relationship = submitter_relationship(user, institution)
    decision = decide(user, Action.SUBMIT, "Bundle", None, relationship)
    if not decision.allowed:
        raise refusal(decision)
    assert institution is not None
    return institution


def _scope(
    engine: Engine, vault: IdentifierVault, user: Principal, criteria: list[Criterion], kind: str
) -> tuple[list[Criterion], list[str]]:
    """The search's patients (golden ids, through the MPI for ``patient.identifier``). A patient's
    search without one is scoped to themselves; a doctor's is a 400 naming the parameter."""
    named = [c for c in criteria if c.name in PATIENT_PARAMS or c.modifier == "identifier"]
    if not named:
        if user.role is Role.PATIENT and user.patient_id:
            return [*criteria, Criterion("patient", None, user.patient_id)], [user.patient_id]
        if user.role is Role.DOCTOR:
            raise MalformedInput(
                f"a {kind} search needs the patient: add patient, patient.identifier or subject",
                expression="patient",
            )
        return criteria, []  # operators and integrators: refused by the policy, audited
    lookup, ids = MpiLookup(vault), set()
    with engine.connect() as conn:
        for c in named:
            for value in c.value.split(","):
                if c.name == "patient.identifier" or c.modifier == "identifier":
                    system, _, code = value.rpartition("|")
                    ids.update(lookup.by_identifier(conn, system or None, code) if code else ())
                else:
                    ref = value.removeprefix("Patient/")
                    ids.add(lookup.by_id(conn, ref) or ref)
    return criteria, sorted(ids)


def _owner(request, engine, vault, user, purpose, query, kind: str) -> str:
    """The golden patient of the record ``query`` finds; a miss is a 404 (audited)."""
    with engine.connect() as conn:
        raw = conn.execute(query).scalar()
        golden = MpiLookup(vault).by_id(conn, raw) if raw else None
    if raw is None:
        missing = Decision(False, 404, "no such record")
        record_access(request, user, purpose, missing, resource=kind, subtype="read",
                      patient_ids=[])  # fmt: skip
        raise NotFound(f"no such {kind}", expression="id")
    return golden or raw
