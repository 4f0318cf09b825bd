"""FHIR R4 ``Patient`` over the master patient index (患者主索引): create, read, search, PIX, match.

A Patient resource is a golden record. ``POST /fhir/Patient`` is a registration at an institution
(its MRN identifier, ``managingOrganization``): 201 with a new golden record, or 200 with the one it
was linked to (``Location`` names it either way). Identifiers of every linked registration appear
on the golden record; resident IDs are stored hashed and encrypted and decrypted for the response.
``$ihe-pix`` (IHE PIXm) cross-references an identifier; ``$match`` (IHE PDQm) scores candidates.

Who (issue 4, the policy's ``LOOKUP_PATIENT`` rules, applied in ``patient_access``): read,
search, ``$ihe-pix`` and ``$match`` are for operators (MPI stewardship) and doctors sending
``X-Purpose-Of-Use``; a patient reads only their own record (``GET /fhir/Patient/<own id>`` or
``?_id=``). Create is for operators and for integrators registering with their own institution's
MRN. Every lookup is audited, one event per patient returned. Doctors, patients and integrators
see resident IDs and phone numbers masked (``4403**********1234``, ``138****5678``); ``$ihe-pix``,
which exists to cross-reference identifiers, returns them in full.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from fastapi import APIRouter, Request

from rhip.api.auth import audited_read, lookup_decision
from rhip.api.deps import CurrentUser, EngineDep, PurposeOfUse, VaultDep
from rhip.api.fhir import metadata
from rhip.api.fhir import patient_access as access
from rhip.api.fhir.common import FHIRResponse, parse_search, read_resource, searchset, split_token
from rhip.identity import service
from rhip.identity.schemas import Identifier, MatchCandidate, PersonPublic, RegistrationCreate
from rhip.kernel import systems
from rhip.kernel.errors import Forbidden, InvalidInput, MalformedInput, NotFound
from rhip.kernel.ids import validate_resident_id
from rhip.kernel.regions import SHENZHEN
from rhip.security.policy import Action, Relationship, decide
from rhip.security.schemas import Principal, Role

router = APIRouter(tags=["fhir"])
V2_0203 = "http://terminology.hl7.org/CodeSystem/v2-0203"
MATCH_GRADE = "http://hl7.org/fhir/StructureDefinition/match-grade"
GENDERS = ("male", "female", "other", "unknown")
_DOC = "http://hl7.org/fhir/SearchParameter/"
CAPABILITY: dict[str, Any] = {
    "type": "Patient",
    "profile": "http://hl7.org/fhir/StructureDefinition/Patient",
    "interaction": [{"code": "read"}, {"code": "search-type"}, {"code": "create"}],
    "versioning": "no-version",
    "searchParam": [
        {"name": "_id", "type": "token", "definition": _DOC + "Resource-id"},
        {"name": "identifier", "type": "token", "definition": _DOC + "Patient-identifier",
         "documentation": "system|value or a bare value (any system); resident ID system "
                          "urn:oid:2.16.156.10011.1.3, MRN urn:rhip:id:mrn:<credit code>"},
        {"name": "name", "type": "string", "definition": _DOC + "Patient-name",
         "documentation": "starts with, in characters (traditional folded) or pinyin"},
        {"name": "birthdate", "type": "date", "definition": _DOC + "individual-birthdate"},
        {"name": "gender", "type": "token", "definition": _DOC + "individual-gender"},
    ],
    "operation": [
        {"name": "ihe-pix", "definition": "https://profiles.ihe.net/ITI/PIXm/OperationDefinition/IHE.PIXm.pix"},
        {"name": "match", "definition": "http://hl7.org/fhir/OperationDefinition/Patient-match"},
    ],
}  # fmt: skip
metadata.register(CAPABILITY)
SEARCH_PARAMS = tuple(p["name"] for p in CAPABILITY["searchParam"])


@router.post("/fhir/Patient/$match", response_class=FHIRResponse)
async def match_patient(
    request: Request, engine: EngineDep, vault: VaultDep, user: CurrentUser, purpose: PurposeOfUse
) -> FHIRResponse:
    """Scored candidates for a Patient (PDQm): searchset Bundle with score and match-grade."""
    allowed = access.allow_lookup(request, user, purpose, "search", patients=False)
    params = await read_resource(request, "Parameters")
    resource, count, only_certain = _match_parameters(params)
    found = service.match(engine, vault, from_fhir(resource), count=count)
    if only_certain:
        found = [c for c in found if c.grade == "certain"][:1]
    access.audit(request, user, purpose, allowed, "search", [c.person.id for c in found])
    shown = [_shown(c.person, user) for c in found]
    bundle = searchset(request, shown, len(found), _page(count))
    for entry, cand in zip(bundle["entry"], found, strict=True):
        entry["search"] = _score(cand)
    bundle.pop("link", None)
    return FHIRResponse(bundle)


@router.get("/fhir/Patient/$ihe-pix", response_class=FHIRResponse)
def ihe_pix(
    request: Request, engine: EngineDep, vault: VaultDep, user: CurrentUser, purpose: PurposeOfUse
) -> FHIRResponse:
    """Cross-reference an identifier to all the others of its person (IHE PIXm), unmasked."""
    allowed = access.allow_lookup(request, user, purpose, "search", patients=False)
    params, _ = parse_search(request, ("sourceIdentifier", "targetSystem", "_format"))
    sources = [p.value for p in params if p.name == "sourceIdentifier"]
    if len(sources) != 1 or "|" not in sources[0] or not all(split_token(sources[0])):
        raise InvalidInput("exactly one sourceIdentifier=system|value is required",
                           expression="sourceIdentifier")  # fmt: skip
    system, value = split_token(sources[0])
    targets = {t for p in params if p.name == "targetSystem" for t in p.value.split(",")}
    people = service.cross_reference(engine, vault, system, value)
    if not people:
        access.audit(request, user, purpose, allowed, "search", [], status=404)
        raise NotFound(f"no patient has identifier {system}|***", expression="sourceIdentifier")
    access.audit(request, user, purpose, allowed, "search", [p.id for p in people])
    out: list[dict[str, Any]] = []
    for person in people:
        for ident in person.identifiers:
            if (ident.system, ident.value) == (system, service_value(system, value)):
                continue
            if not targets or ident.system in targets:
                out.append({"name": "targetIdentifier", "valueIdentifier": _identifier(ident)})
        out.append({"name": "targetId", "valueReference": {"reference": f"Patient/{person.id}"}})
    return FHIRResponse({"resourceType": "Parameters", "parameter": out})


@router.get("/fhir/Patient", response_class=FHIRResponse)
def search_patients(
    request: Request, engine: EngineDep, vault: VaultDep, user: CurrentUser, purpose: PurposeOfUse
) -> FHIRResponse:
    allowed = access.allow_lookup(request, user, purpose, "search")
    params, page = parse_search(request, SEARCH_PARAMS)
    criteria = _criteria(params)
    ids = access.own_ids(request, engine, user, purpose, criteria.pop("person_ids", None))
    if ids is not None:
        found = [_read_or_none(engine, vault, i) for i in ids]
        people = [p for p in found if p is not None]
        total = len(people)
    else:
        total, people = service.search_persons(
            engine, vault, offset=page.offset, count=page.count, **criteria
        )
    access.audit(request, user, purpose, allowed, "search", [p.id for p in people])
    return FHIRResponse(searchset(request, [_shown(p, user) for p in people], total, page))


@router.get("/fhir/Patient/{patient_id}", response_class=FHIRResponse)
def read_patient(
    patient_id: str,
    request: Request,
    engine: EngineDep,
    vault: VaultDep,
    user: CurrentUser,
    purpose: PurposeOfUse,
) -> FHIRResponse:
    with audited_read(request, user, purpose, patient_id=patient_id, resource="Patient",
                      judge=lambda rel: lookup_decision(user, purpose, rel)):  # fmt: skip
        person = service.get_person(engine, vault, patient_id)
    return FHIRResponse(_shown(person, user))


@router.post("/fhir/Patient", response_class=FHIRResponse, status_code=201)
async def create_patient(
    request: Request, engine: EngineDep, vault: VaultDep, user: CurrentUser
) -> FHIRResponse:
    """Register a patient at an institution; link it to its golden record or create one.

    Operators register at any institution; an integrator only at its own, with its own MRN
    (``urn:rhip:id:mrn:<its credit code>``) and sees the answer masked and without the
    identifiers other institutions gave (cross-referencing is ``$ihe-pix``'s, not theirs)."""
    if user.role not in (Role.OPERATOR, Role.INTEGRATOR):
        raise Forbidden("patients are registered by integrators and operators")
    resource = await read_resource(request, "Patient")
    reg = from_fhir(resource)
    if user.role is Role.INTEGRATOR:
        reg = access.as_own_institution(engine, user, reg)
    else:
        access.require(decide(user, Action.MANAGE, "Patient", None, Relationship.NONE))
    result = service.register(engine, vault, reg)
    person = service.get_person(engine, vault, result.person_id)
    body = to_fhir(person)
    if user.role is Role.INTEGRATOR:
        body = access.own_view(body, reg.identifiers)
    return FHIRResponse(
        body,
        status_code=201 if result.created_person else 200,
        headers={"Location": f"/fhir/Patient/{person.id}", "X-Rhip-Match-Outcome": result.outcome},
    )


def _shown(p: PersonPublic, user: Principal) -> dict[str, Any]:
    return access.shown(to_fhir(p), user)


def _criteria(params) -> dict[str, Any]:
    criteria: dict[str, Any] = {"identifier": []}
    for p in params:
        if p.modifier:
            raise InvalidInput(f"modifier :{p.modifier} is not supported on {p.name}",
                               expression=f"{p.name}:{p.modifier}")  # fmt: skip
        if p.name == "identifier":
            criteria["identifier"].append(split_token(p.value))
        elif p.name == "_id":
            criteria["person_ids"] = p.value.split(",")
        elif p.name == "birthdate":
            criteria["birthdate"] = _date(p.value.removeprefix("eq"), "birthdate")
        elif p.name == "gender":
            if p.value not in GENDERS:
                raise InvalidInput(
                    f"gender must be one of {', '.join(GENDERS)}", expression="gender"
                )
            criteria["gender"] = p.value
        else:
            criteria["name"] = p.value
    return criteria


def _read_or_none(engine, vault, person_id: str) -> PersonPublic | None:
    try:
        return service.get_person(engine, vault, person_id)
    except NotFound:
        return None


def service_value(system: str | None, value: str) -> str:
    return value.replace(" ", "").upper() if system == systems.RESIDENT_ID else value.strip()


def _page(count: int):
    from rhip.api.fhir.common import Page

    return Page(count, 0)


def _date(value: str, expression: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise InvalidInput(f"{value!r} is not a date (YYYY-MM-DD)", expression=expression) from None


def _match_parameters(params: dict[str, Any]) -> tuple[dict[str, Any], int, bool]:
    resource, count, only_certain = None, 10, False
    for i, p in enumerate(params.get("parameter") or []):
        name = p.get("name") if isinstance(p, dict) else None
        if name == "resource":
            resource = p.get("resource")
        elif name == "count":
            count = p.get("valueInteger")
            if not isinstance(count, int) or count < 1:
                where = f"Parameters.parameter[{i}].valueInteger"
                raise InvalidInput("count must be a positive integer", expression=where)
        elif name == "onlyCertainMatches":
            only_certain = bool(p.get("valueBoolean"))
    if not isinstance(resource, dict) or resource.get("resourceType") != "Patient":
        raise MalformedInput("a 'resource' parameter holding a Patient is required",
                             expression="Parameters.parameter.resource")  # fmt: skip
    return resource, min(count, 100), only_certain


def _score(c: MatchCandidate) -> dict[str, Any]:
    return {
        "mode": "match",
        "score": round(c.probability, 4),
        "extension": [{"url": MATCH_GRADE, "valueCode": c.grade}],
    }


def _identifier(ident: Identifier) -> dict[str, Any]:
    out: dict[str, Any] = {"system": ident.system, "value": ident.value}
    if ident.type_code:
        out["type"] = {"coding": [{"system": V2_0203, "code": ident.type_code}]}
    return out


def to_fhir(p: PersonPublic) -> dict[str, Any]:
    """A golden record as a FHIR Patient (merged records: inactive, ``link`` replaced-by)."""
    res: dict[str, Any] = {"resourceType": "Patient", "id": p.id, "active": p.status != "merged"}
    if p.updated_at:
        res["meta"] = {"lastUpdated": p.updated_at.isoformat()}
    if p.status == "provisional":  # waiting for review (人工审核)
        res.setdefault("meta", {})["tag"] = [{"system": "urn:rhip:mpi", "code": "provisional"}]
    if p.identifiers:
        res["identifier"] = [_identifier(i) for i in p.identifiers]
    if p.name:
        res["name"] = [{"use": "official", "text": p.name}]
    for key, value in (
        ("gender", p.gender),
        ("birthDate", p.birth_date and p.birth_date.isoformat()),
    ):
        if value:
            res[key] = value
    if p.phone:
        res["telecom"] = [{"system": "phone", "value": p.phone}]
    if p.address or p.district_code:
        addr: dict[str, Any] = {"text": p.address} if p.address else {}
        if p.district_code in SHENZHEN:
            addr.update(city="深圳市", district=SHENZHEN[p.district_code])
        res["address"] = [addr]
    if p.merged_into:
        res["link"] = [{"other": {"reference": f"Patient/{p.merged_into}"}, "type": "replaced-by"}]
    return res


def from_fhir(res: dict[str, Any]) -> RegistrationCreate:
    """A registration from a Patient resource; each bad element named by its FHIRPath."""
    idents = []
    for i, item in enumerate(_list(res, "identifier")):
        where = f"Patient.identifier[{i}]"
        system, value = item.get("system"), item.get("value")
        if not isinstance(system, str) or not system:
            raise InvalidInput("identifier.system is required", expression=f"{where}.system")
        if not isinstance(value, str) or not value.strip():
            raise InvalidInput("identifier.value is required", expression=f"{where}.value")
        if system == systems.RESIDENT_ID:
            value = validate_resident_id(value, expression=f"{where}.value").number
        type_code = (
            systems.HL7_RESIDENT_ID
            if system == systems.RESIDENT_ID
            else (systems.HL7_MRN if system.startswith(systems.MRN_PREFIX) else None)
        )
        idents.append(Identifier(system=system, value=value.strip(), type_code=type_code))
    gender = res.get("gender")
    if gender is not None and gender not in GENDERS:
        raise InvalidInput(
            f"gender must be one of {', '.join(GENDERS)}", expression="Patient.gender"
        )
    born = res.get("birthDate")
    if born is not None and not isinstance(born, str):
        raise InvalidInput("birthDate must be a date string", expression="Patient.birthDate")
    address, district = _address(_list(res, "address"))
    org = (res.get("managingOrganization") or {}).get("reference", "")
    return RegistrationCreate(
        identifiers=idents,
        name=_name(_list(res, "name")),
        gender=gender,
        birth_date=_date(born, "Patient.birthDate") if born else None,
        phone=next(
            (t.get("value") for t in _list(res, "telecom") if t.get("system") == "phone"), None
        ),
        address=address,
        district_code=district,
        institution_id=org.removeprefix("Organization/") or None,
    )


def _list(res: dict[str, Any], key: str) -> list[dict[str, Any]]:
    value = res.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise MalformedInput(f"{key} must be an array of objects", expression=f"Patient.{key}")
    return value


def _name(names: list[dict[str, Any]]) -> str | None:
    """The first name's text, else family + given (no space between Chinese characters)."""
    for n in names:
        if n.get("text"):
            return str(n["text"])
        family, given = n.get("family") or "", "".join(n.get("given") or [])
        if family or given:
            sep = "" if any("\u4e00" <= c <= "\u9fff" for c in family + given) else " "
            return f"{family}{sep}{given}".strip()
    return None


def _address(items: list[dict[str, Any]]) -> tuple[str | None, str | None]:
    if not items:
        return None, None
    a = items[0]
    by_name = {name: code for code, name in SHENZHEN.items()}
    district = a.get("district")
    code = district if district in SHENZHEN else by_name.get(district)
    text = a.get("text") or "".join(
        [a.get("state") or "", a.get("city") or "", district or "", *(a.get("line") or [])]
    )
    return text or None, code
