"""FHIR R4 ``Organization``: the institution registry (机构注册): read, search, create, update.

Mapping: ``identifier`` carries the credit code (system ``urn:rhip:id:uscc``), ``type`` a code of
rhip's institution-type system, ``address`` the district (names, and its GB/T 2260 code in an
extension), ``partOf`` the operating institution; the hospital grade and the connection status with
its live feeds and collaboration functions are extensions. Search parameters: see ``CAPABILITY``.

Reads are for anyone signed in (the institution directory); create and update for operators.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from rhip.api.deps import Administrator, DirectoryReader, EngineDep
from rhip.api.fhir import metadata
from rhip.api.fhir.common import (
    FHIRResponse,
    SearchParam,
    parse_search,
    read_resource,
    searchset,
    split_token,
)
from rhip.kernel import systems
from rhip.kernel.errors import InvalidInput, MalformedInput, NotSupported
from rhip.registry import (
    Institution,
    InstitutionCreate,
    InstitutionFilter,
    InstitutionUpdate,
    get,
    register,
    search,
    update,
)
from rhip.registry import vocabulary as v
from rhip.registry.validation import district_names

router = APIRouter(tags=["fhir"])

_DOC = "http://hl7.org/fhir/SearchParameter/"
CAPABILITY: dict[str, Any] = {
    "type": "Organization",
    "profile": "http://hl7.org/fhir/StructureDefinition/Organization",
    "interaction": [
        {"code": "read"},
        {"code": "search-type"},
        {"code": "create"},
        {"code": "update"},
    ],
    "versioning": "no-version",
    "updateCreate": False,
    "searchParam": [
        {"name": "_id", "type": "token", "definition": _DOC + "Resource-id"},
        {
            "name": "identifier",
            "type": "token",
            "definition": _DOC + "Organization-identifier",
            "documentation": "system|value or a bare value; credit codes (统一社会信用代码) "
            "have system urn:rhip:id:uscc",
        },
        {
            "name": "name",
            "type": "string",
            "definition": _DOC + "Organization-name",
            "documentation": "starts with, case-insensitive; name:contains and name:exact",
        },
        {
            "name": "type",
            "type": "token",
            "definition": _DOC + "Organization-type",
            "documentation": "code of urn:rhip:cs:institution-type (public_hospital, "
            "private_hospital, clinic, lab, chc, public_health, maternal_child); comma: any of",
        },
        {
            "name": "district",
            "type": "token",
            "documentation": "rhip search parameter: GB/T 2260 code of the institution's "
            "district (440305); a city code (440300) matches all its districts; comma: any of",
        },
        {"name": "active", "type": "token", "definition": _DOC + "Organization-active"},
        {
            "name": "connection-status",
            "type": "token",
            "documentation": "rhip search parameter: connected | testing | not_connected",
        },
    ],
}
SEARCH_PARAMS = tuple(p["name"] for p in CAPABILITY["searchParam"])
metadata.register(CAPABILITY)


@router.get("/fhir/Organization", response_class=FHIRResponse)
def search_organizations(
    request: Request, engine: EngineDep, _user: DirectoryReader
) -> FHIRResponse:
    """Search institutions; a searchset Bundle with paging links."""
    params, page = parse_search(request, SEARCH_PARAMS)
    total, found = search(engine, search_filter(params), page.count, page.offset)
    return FHIRResponse(searchset(request, [to_fhir(i) for i in found], total, page))


@router.get("/fhir/Organization/{institution_id}", response_class=FHIRResponse)
def read_organization(
    institution_id: str, engine: EngineDep, _user: DirectoryReader
) -> FHIRResponse:
    return FHIRResponse(to_fhir(get(engine, institution_id)))


@router.post("/fhir/Organization", response_class=FHIRResponse, status_code=201)
async def create_organization(
    request: Request, engine: EngineDep, _user: Administrator
) -> FHIRResponse:
    """Register an institution from an Organization resource (the server assigns the id)."""
    resource = await read_resource(request, "Organization")
    made = register(engine, from_fhir(resource))
    return FHIRResponse(
        to_fhir(made), status_code=201, headers={"Location": f"/fhir/Organization/{made.id}"}
    )


@router.put("/fhir/Organization/{institution_id}", response_class=FHIRResponse)
async def update_organization(
    institution_id: str, request: Request, engine: EngineDep, _user: Administrator
) -> FHIRResponse:
    """Replace what FHIR represents of an institution (the MLLP allow-list is kept)."""
    resource = await read_resource(request, "Organization")
    if resource.get("id") not in (None, institution_id):
        raise MalformedInput(
            f"resource id {resource.get('id')!r} differs from the URL's {institution_id!r}",
            expression="Organization.id",
        )
    data = from_fhir(resource).model_dump(exclude={"id", "allow_cidrs"})
    changed = update(engine, institution_id, InstitutionUpdate(**data))
    return FHIRResponse(to_fhir(changed))


# ---- mapping: Institution <-> Organization -------------------------------------------------

GRADE_EXT = "urn:rhip:ext:hospital-grade"  # valueCoding of urn:rhip:cs:hospital-grade
CONNECTION_EXT = "urn:rhip:ext:connection"  # status, since, feed*, function*
DISTRICT_EXT = "urn:rhip:ext:district-code"  # on address: GB/T 2260 valueCode


def to_fhir(inst: Institution) -> dict[str, Any]:
    """The Organization resource for an institution."""
    district, city, province = district_names(inst.district_code)
    address: dict[str, Any] = {
        "extension": [{"url": DISTRICT_EXT, "valueCode": inst.district_code}],
        "use": "work",
        "district": inst.district_name or district,
        "city": city,
        "state": province,
        "country": "CN",
    }
    if inst.address:
        address["text"] = inst.address
    res: dict[str, Any] = {
        "resourceType": "Organization",
        "id": inst.id,
        "meta": {"lastUpdated": inst.updated_at.isoformat()},
        "extension": _extensions(inst),
        "identifier": [
            {"use": "official", "system": systems.USCC, "value": inst.credit_code},
        ],
        "active": inst.active,
        "type": [{"coding": [_coding(v.TYPE_SYSTEM, inst.type, v.TYPES)]}],
        "name": inst.name,
        "address": [{k: val for k, val in address.items() if val is not None}],
    }
    if inst.phone:
        res["telecom"] = [{"system": "phone", "value": inst.phone, "use": "work"}]
    if inst.part_of:
        res["partOf"] = {"reference": f"Organization/{inst.part_of}"}
    return res


def _coding(system: str, code: str, labels: dict[str, str]) -> dict[str, str]:
    return {"system": system, "code": code, "display": labels.get(code, code)}


def _extensions(inst: Institution) -> list[dict[str, Any]]:
    parts: list[dict[str, Any]] = [{"url": "status", "valueCode": inst.connection_status}]
    if inst.connected_on:
        parts.append({"url": "since", "valueDate": inst.connected_on.isoformat()})
    parts += [{"url": "feed", "valueCode": f} for f in inst.feeds]
    parts += [{"url": "function", "valueCode": f} for f in inst.functions]
    out: list[dict[str, Any]] = [{"url": CONNECTION_EXT, "extension": parts}]
    if inst.grade:
        coding = {"system": v.GRADE_SYSTEM, "code": v.GRADES[inst.grade], "display": inst.grade}
        out.insert(0, {"url": GRADE_EXT, "valueCoding": coding})
    return out


def from_fhir(res: dict[str, Any]) -> InstitutionCreate:
    """An institution from an Organization resource; a wrong shape is named by its path."""
    values: dict[str, Any] = {
        "credit_code": _credit_code(res),
        "name": _str(res.get("name"), "Organization.name", required=True),
        "type": _type_code(res),
        "active": _bool(res.get("active", True), "Organization.active"),
    }
    values |= _address(res)
    values |= _connection(res)
    for i, ext in enumerate(_list(res.get("extension"), "Organization.extension")):
        if isinstance(ext, dict) and ext.get("url") == GRADE_EXT:
            coding = ext.get("valueCoding") or {}
            path = f"Organization.extension[{i}].valueCoding.code"
            values["grade"] = _str(coding.get("code"), path, required=True)
    for i, tel in enumerate(_list(res.get("telecom"), "Organization.telecom")):
        if isinstance(tel, dict) and tel.get("system") == "phone":
            values["phone"] = _str(tel.get("value"), f"Organization.telecom[{i}].value")
    part_of = (res.get("partOf") or {}).get("reference")
    if part_of is not None:
        ref = _str(part_of, "Organization.partOf.reference")
        values["part_of"] = ref.removeprefix("Organization/")
    return InstitutionCreate(**values)


def _credit_code(res: dict[str, Any]) -> str:
    for i, ident in enumerate(_list(res.get("identifier"), "Organization.identifier")):
        if isinstance(ident, dict) and ident.get("system") == systems.USCC:
            return _str(ident.get("value"), f"Organization.identifier[{i}].value", required=True)
    raise InvalidInput(
        f"an identifier with system {systems.USCC} (统一社会信用代码) is required",
        expression="Organization.identifier",
        code="required",
    )


def _type_code(res: dict[str, Any]) -> str:
    for i, concept in enumerate(_list(res.get("type"), "Organization.type")):
        codings = _list((concept or {}).get("coding"), f"Organization.type[{i}].coding")
        for coding in codings:
            if isinstance(coding, dict) and coding.get("system") == v.TYPE_SYSTEM:
                return _str(coding.get("code"), f"Organization.type[{i}].coding.code", True)
    raise InvalidInput(
        f"a type coding from {v.TYPE_SYSTEM} is required",
        expression="Organization.type",
        code="required",
    )


def _address(res: dict[str, Any]) -> dict[str, Any]:
    addresses = _list(res.get("address"), "Organization.address")
    first = addresses[0] if addresses and isinstance(addresses[0], dict) else {}
    code = None
    for ext in _list(first.get("extension"), "Organization.address[0].extension"):
        if isinstance(ext, dict) and ext.get("url") == DISTRICT_EXT:
            code = ext.get("valueCode")
    if code is None and str(first.get("district") or "").isdigit():
        code = first["district"]  # a bare GB/T 2260 code in address.district is accepted too
    if code is None:
        raise InvalidInput(
            f"the district's GB/T 2260 code is required (address extension {DISTRICT_EXT})",
            expression="Organization.address[0]",
            code="required",
        )
    out = {"district_code": _str(code, "Organization.address[0].extension.valueCode")}
    if first.get("text") is not None:
        out["address"] = _str(first["text"], "Organization.address[0].text")
    return out


def _connection(res: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"feeds": [], "functions": []}
    for ext in _list(res.get("extension"), "Organization.extension"):
        if not (isinstance(ext, dict) and ext.get("url") == CONNECTION_EXT):
            continue
        for part in _list(ext.get("extension"), "Organization.extension.extension"):
            url, value = part.get("url"), part.get("valueCode", part.get("valueDate"))
            path = f"Organization.extension({CONNECTION_EXT}).{url}"
            if url == "status":
                out["connection_status"] = _str(value, path, required=True)
            elif url == "since":
                out["connected_on"] = _str(value, path)
            elif url in ("feed", "function"):
                out[url + "s"].append(_str(value, path, required=True))
    return out


def _list(value: Any, path: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise MalformedInput(f"{path} must be a JSON array", expression=path)
    return value


def _str(value: Any, path: str, required: bool = False) -> str:
    if value is None and not required:
        return None  # type: ignore[return-value]
    if not isinstance(value, str) or (required and not value.strip()):
        raise MalformedInput(f"{path} must be a non-empty string", expression=path)
    return value


def _bool(value: Any, path: str) -> bool:
    if not isinstance(value, bool):
        raise MalformedInput(f"{path} must be true or false", expression=path)
    return value


# ---- search parameters -> registry filter ----------------------------------------------------


def search_filter(params: list[SearchParam]) -> InstitutionFilter:
    """The registry filter for parsed FHIR search parameters (repeats of one name: all hold)."""
    sets: dict[str, set[str] | None] = {}
    prefixes: list[str] = []
    contains: list[str] = []
    exact: list[str] = []
    active: bool | None = None
    nothing = False
    for p in params:
        if p.modifier and not (p.name == "name" and p.modifier in ("contains", "exact")):
            allowed = ":contains or :exact" if p.name == "name" else "no modifier"
            raise NotSupported(
                f"search parameter {p.name}:{p.modifier} is not supported ({p.name} takes "
                f"{allowed})",
                expression=f"{p.name}:{p.modifier}",
            )
        if p.name == "name":
            {"contains": contains, "exact": exact}.get(p.modifier or "", prefixes).append(p.value)
        elif p.name == "active":
            active = _token_bool(p.value)
        else:
            values = _token_values(p)
            nothing |= not values
            sets[p.name] = values if sets.get(p.name) is None else sets[p.name] & values
    return InstitutionFilter(
        ids=tuple(sets.get("_id") or ()),
        types=tuple(sets.get("type") or ()),
        district_codes=tuple(sets.get("district") or ()),
        credit_codes=tuple(sets.get("identifier") or ()),
        connection_statuses=tuple(sets.get("connection-status") or ()),
        name_prefixes=tuple(prefixes),
        name_contains=tuple(contains),
        name_exact=tuple(exact),
        active=active,
        nothing=nothing or any(s is not None and not s for s in sets.values()),
    )


_TOKEN_SYSTEMS = {"identifier": systems.USCC, "type": v.TYPE_SYSTEM}


def _token_values(p: SearchParam) -> set[str]:
    """Codes of a comma-separated token list; those of a foreign system match nothing."""
    out = set()
    for item in p.value.split(","):
        system, code = split_token(item.strip())
        if system is not None and system != _TOKEN_SYSTEMS.get(p.name):
            continue
        if "|" in item and system is None:  # "|code": explicitly no system, none of ours
            continue
        out.add(code.upper() if p.name == "identifier" else code)
    return out


def _token_bool(value: str) -> bool:
    if value not in ("true", "false"):
        raise MalformedInput(f"active must be true or false, got {value!r}", expression="active")
    return value == "true"
