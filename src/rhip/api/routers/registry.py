"""Platform REST for the registry (机构注册): coverage figures and institution management.

FHIR ``Organization`` (``rhip.api.fhir.organization``) serves integrators; these endpoints serve
the operator's pages and scripts with plain JSON. Reads: anyone signed in (the directory);
coverage: operators (statistics); changes: operators (administration).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query

from rhip.api.deps import Administrator, DirectoryReader, EngineDep, StatsReader
from rhip.registry import (
    Institution,
    InstitutionCreate,
    InstitutionFilter,
    InstitutionUpdate,
    coverage,
    get,
    register,
    search,
    update,
)
from rhip.security.schemas import Principal, Role

router = APIRouter(prefix="/api/registry", tags=["registry"])


@router.get("/coverage")
def get_coverage(engine: EngineDep, _user: StatsReader) -> dict[str, Any]:
    """接入覆盖率: active institutions connected vs total, by type and by district, feeds live."""
    return coverage(engine).as_dict()


@router.get("/institutions")
def list_institutions(
    engine: EngineDep,
    _user: DirectoryReader,
    type: list[str] = Query(default_factory=list, description="any of these types"),
    district: list[str] = Query(default_factory=list, description="GB/T 2260 codes"),
    name: str | None = Query(None, description="name contains"),
    limit: int = Query(50, ge=0, le=500),
    offset: int = Query(0, ge=0),
) -> dict[str, Any]:
    flt = InstitutionFilter(
        types=tuple(type), district_codes=tuple(district), name_contains=(name,) if name else ()
    )
    total, found = search(engine, flt, limit, offset)
    items = [_shown(i, _user) for i in found]
    return {"total": total, "limit": limit, "offset": offset, "items": items}


@router.post("/institutions", status_code=201)
def create_institution(
    data: InstitutionCreate, engine: EngineDep, _user: Administrator
) -> Institution:
    return register(engine, data)


@router.get("/institutions/{institution_id}")
def read_institution(institution_id: str, engine: EngineDep, _user: DirectoryReader) -> Institution:
    return _shown(get(engine, institution_id), _user)


@router.patch("/institutions/{institution_id}")
def change_institution(
    institution_id: str, change: InstitutionUpdate, engine: EngineDep, _user: Administrator
) -> Institution:
    return update(engine, institution_id, change)


def _shown(inst: Institution, user: Principal) -> dict[str, Any]:
    """An institution as the directory shows it: the MLLP allow-list (network addresses) only
    to operators, who administer it."""
    hidden = None if user.role is Role.OPERATOR else {"allow_cidrs"}
    return inst.model_dump(mode="json", exclude=hidden)
