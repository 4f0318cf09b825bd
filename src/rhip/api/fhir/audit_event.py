"""FHIR R4 ``AuditEvent`` over the access log, shaped per IHE BALP (Basic Audit Log Patterns).

Operators only. A read is BALP PatientRead (``action`` R, subtype ``read``), a search BALP
PatientQuery (``action`` E, subtype ``search``, the query in ``entity.query``). Search by
``patient`` (reference), ``patient.identifier`` (resolved through the MPI), ``agent`` (username or
user id), ``date`` (prefixes eq ge gt le lt; a bare date is a CST day), ``outcome``, ``subtype``.
"""

from __future__ import annotations

import base64
import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request

from rhip import audit
from rhip.api.auth import permit
from rhip.api.deps import EngineDep, VaultDep
from rhip.api.fhir import metadata
from rhip.api.fhir.common import FHIRResponse, parse_search, searchset, split_token
from rhip.identity import service as mpi
from rhip.kernel import clock, systems
from rhip.kernel.errors import InvalidInput, NotFound
from rhip.kernel.ids import validate_resident_id
from rhip.security.policy import Action
from rhip.security.purpose import PURPOSES
from rhip.security.purpose import SYSTEM as ACT_REASON
from rhip.security.schemas import Principal

router = APIRouter(tags=["fhir"])
AuditReader = Annotated[Principal, Depends(permit(Action.READ_AUDIT))]
BALP = "https://profiles.ihe.net/ITI/BALP/StructureDefinition/"
_DOC = "http://hl7.org/fhir/SearchParameter/"
CAPABILITY: dict[str, Any] = {
    "type": "AuditEvent",
    "profile": "http://hl7.org/fhir/StructureDefinition/AuditEvent",
    "supportedProfile": [BALP + "IHE.BasicAudit.PatientRead", BALP + "IHE.BasicAudit.PatientQuery"],
    "interaction": [{"code": "read"}, {"code": "search-type"}],
    "versioning": "no-version",
    "searchParam": [
        {"name": "_id", "type": "token", "definition": _DOC + "Resource-id"},
        {"name": "patient", "type": "reference", "definition": _DOC + "AuditEvent-patient"},
        {"name": "patient.identifier", "type": "token",
         "documentation": "the patient's identifier (system|value), resolved through the MPI"},
        {"name": "agent", "type": "reference", "definition": _DOC + "AuditEvent-agent",
         "documentation": "username or user id of the requesting user"},
        {"name": "date", "type": "date", "definition": _DOC + "AuditEvent-date",
         "documentation": "prefixes eq ge gt le lt; a date without time is a day in CST"},
        {"name": "outcome", "type": "token", "definition": _DOC + "AuditEvent-outcome"},
        {"name": "subtype", "type": "token", "definition": _DOC + "AuditEvent-subtype"},
    ],
}  # fmt: skip
metadata.register(CAPABILITY)
SEARCH_PARAMS = tuple(p["name"] for p in CAPABILITY["searchParam"])
OUTCOMES = ("0", "4", "8", "12")
SUBTYPES = ("read", "search")


@router.get("/fhir/AuditEvent", response_class=FHIRResponse)
def search_audit_events(
    request: Request, _user: AuditReader, engine: EngineDep, vault: VaultDep
) -> FHIRResponse:
    params, page = parse_search(request, SEARCH_PARAMS)
    crit: dict[str, Any] = {"agents": [], "outcomes": [], "subtypes": [], "seqs": []}
    patients: set[str] | None = None
    bounds: list[tuple[dt.datetime | None, dt.datetime | None]] = []
    for p in params:
        if p.modifier:
            raise InvalidInput(f"modifier :{p.modifier} is not supported on {p.name}",
                               expression=f"{p.name}:{p.modifier}")  # fmt: skip
        if p.name in ("patient", "patient.identifier"):
            found = _patients(engine, vault, p.name, p.value)
            patients = found if patients is None else patients & found
        elif p.name == "date":
            bounds.append(date_bounds(p.value))
        elif p.name == "agent":
            crit["agents"] += [v.rsplit("/", 1)[-1] for v in p.value.split(",")]
        else:
            crit[_LIST[p.name]] += _tokens(p.name, p.value)
    since, until = _combine(bounds)
    flt = audit.AuditFilter(
        patient_ids=tuple(sorted(patients)) if patients is not None else None,
        agents=tuple(crit["agents"]), outcomes=tuple(crit["outcomes"]),
        subtypes=tuple(crit["subtypes"]), seqs=tuple(crit["seqs"]), since=since, until=until,
    )  # fmt: skip
    total, found = audit.search(engine, flt, page.offset, page.count)
    return FHIRResponse(searchset(request, [to_fhir(e) for e in found], total, page))


@router.get("/fhir/AuditEvent/{event_id}", response_class=FHIRResponse)
def read_audit_event(event_id: str, _user: AuditReader, engine: EngineDep) -> FHIRResponse:
    if not event_id.isdigit():
        raise NotFound("no AuditEvent has this id", expression="id")
    _, found = audit.search(engine, audit.AuditFilter(seqs=(int(event_id),)), 0, 1)
    if not found:
        raise NotFound("no AuditEvent has this id", expression="id")
    return FHIRResponse(to_fhir(found[0]))


_LIST = {"_id": "seqs", "outcome": "outcomes", "subtype": "subtypes"}


def _tokens(name: str, value: str) -> list:
    codes = [split_token(v)[1] for v in value.split(",")]
    allowed = {"outcome": OUTCOMES, "subtype": SUBTYPES}.get(name)
    for code in codes:
        if allowed and code not in allowed:
            raise InvalidInput(f"{name} must be one of {', '.join(allowed)}", expression=name)
        if name == "_id" and not code.isdigit():
            raise InvalidInput("_id of an AuditEvent is a whole number", expression="_id")
    return [int(c) for c in codes] if name == "_id" else codes


def _patients(engine, vault, name: str, value: str) -> set[str]:
    if name == "patient":
        return {v.rsplit("/", 1)[-1] for v in value.split(",")}
    system, code = split_token(value)
    if not code:
        raise InvalidInput("patient.identifier needs a value (system|value)", expression=name)
    if system == systems.RESIDENT_ID:
        validate_resident_id(code, expression=name)  # a malformed ID says why, masked
    return {p.id for p in mpi.cross_reference(engine, vault, system, code)}


def date_bounds(value: str) -> tuple[dt.datetime | None, dt.datetime | None]:
    """[since, until) of one ``date`` parameter; a bare date is a whole CST day."""
    prefix = value[:2] if value[:2] in ("eq", "ge", "gt", "le", "lt") else "eq"
    raw = value[2:] if value[:2] == prefix else value
    try:
        if len(raw) == 10:
            day = dt.date.fromisoformat(raw)
            start = dt.datetime.combine(day, dt.time(), clock.CST)
            end = start + dt.timedelta(days=1)
        else:
            start = dt.datetime.fromisoformat(raw.replace("Z", "+00:00"))
            start = start if start.tzinfo else start.replace(tzinfo=clock.CST)
            end = start + dt.timedelta(microseconds=1)
    except ValueError:
        raise InvalidInput(
            "date must be YYYY-MM-DD or an ISO 8601 date-time, with an optional prefix "
            "eq ge gt le lt",
            expression="date",
        ) from None
    return {"eq": (start, end), "ge": (start, None), "gt": (end, None),
            "le": (None, end), "lt": (None, start)}[prefix]  # fmt: skip


def _combine(bounds) -> tuple[dt.datetime | None, dt.datetime | None]:
    sinces = [s for s, _ in bounds if s is not None]
    untils = [u for _, u in bounds if u is not None]
    since, until = (max(sinces) if sinces else None), (min(untils) if untils else None)
    if since is not None and until is not None and since >= until:
        raise InvalidInput(
            "date range is empty: its lower bound is not before its upper bound",
            expression="date",
        )
    return since, until


def to_fhir(e: audit.AuditRecord) -> dict[str, Any]:
    """The BALP-shaped AuditEvent of a stored event."""
    query = e.subtype == "search"
    res: dict[str, Any] = {
        "resourceType": "AuditEvent",
        "id": str(e.seq),
        "meta": {"profile": [BALP + ("IHE.BasicAudit.PatientQuery" if query
                                     else "IHE.BasicAudit.PatientRead")]},
        "type": {"system": "http://terminology.hl7.org/CodeSystem/audit-event-type",
                 "code": "rest", "display": "RESTful Operation"},
        "subtype": [{"system": "http://hl7.org/fhir/restful-interaction", "code": e.subtype}],
        "action": e.action,
        "recorded": e.recorded_at.isoformat(),
        "outcome": e.outcome,
        "agent": [_agent(e)],
        "source": {"site": "rhip", "observer": {"display": "rhip"},
                   "type": [{"system": "http://terminology.hl7.org/CodeSystem/security-source-type",
                             "code": "4", "display": "Application Server"}]},
        "entity": _entities(e, query),
    }  # fmt: skip
    if e.outcome != audit.SUCCESS and e.reason:
        res["outcomeDesc"] = e.reason
    if e.purpose:
        res["purposeOfEvent"] = [{"coding": [
            {"system": ACT_REASON, "code": e.purpose, "display": PURPOSES.get(e.purpose, "")}
        ]}]  # fmt: skip
    if e.flagged:
        res["extension"] = [{"url": "urn:rhip:audit:break-glass", "valueBoolean": True}]
    return res


def _agent(e: audit.AuditRecord) -> dict[str, Any]:
    agent: dict[str, Any] = {
        "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType",
                             "code": "IRCP", "display": "information recipient"}]},
        "role": [{"coding": [{"system": "urn:rhip:role", "code": e.role}]}],
        "who": {"identifier": {"system": "urn:rhip:user", "value": e.username},
                "display": e.agent_name or e.username},
        "requestor": True,
    }  # fmt: skip
    if e.institution_id:
        agent["who"]["extension"] = [
            {"url": "urn:rhip:institution", "valueReference": {
                "reference": f"Organization/{e.institution_id}"}}
        ]  # fmt: skip
    if e.client_address:
        agent["network"] = {"address": e.client_address, "type": "2"}  # 2: IP address
    return agent


def _entities(e: audit.AuditRecord, query: bool) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    if e.patient_id:
        out.append({
            "what": {"reference": f"Patient/{e.patient_id}"},
            "type": {"system": "http://terminology.hl7.org/CodeSystem/audit-entity-type",
                     "code": "1", "display": "Person"},
            "role": {"system": "http://terminology.hl7.org/CodeSystem/object-role",
                     "code": "1", "display": "Patient"},
        })  # fmt: skip
    item: dict[str, Any] = {
        "type": {"system": "http://terminology.hl7.org/CodeSystem/audit-entity-type",
                 "code": "2", "display": "System Object"},
        "description": e.resource,
    }  # fmt: skip
    if query:
        item["role"] = {"system": "http://terminology.hl7.org/CodeSystem/object-role",
                        "code": "24", "display": "Query"}  # fmt: skip
        item["query"] = base64.b64encode((e.query or "").encode()).decode()
    elif e.query:
        item["what"] = {"display": e.query}
    out.append(item)
    return out
