"""Platform REST for the registry (机构注册): coverage figures and institution management.

FHIR ``Organization`` (``rhip.api.fhir.organization``) serves integrators; these endpoints serve
the operator's pages and scripts with plain JSON.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query

from rhip.api.deps import EngineDep
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

router = APIRouter(prefix="/api/registry", tags=["registry"])


@router.get("/coverage")
def get_coverage(engine: EngineDep) -> dict[str, Any]:
    """接入覆盖率: active institutions connected vs total, by type and by district, feeds live."""
    return coverage(engine).as_dict()


@router.get("/institutions")
def list_institutions(
    engine: EngineDep,
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
    return {"total": total, "limit": limit, "offset": offset, "items": found}


@router.post("/institutions", status_code=201)
def create_institution(data: InstitutionCreate, engine: EngineDep) -> Institution:
    return register(engine, data)


@router.get("/institutions/{institution_id}")
def read_institution(institution_id: str, engine: EngineDep) -> Institution:
    return get(engine, institution_id)


@router.patch("/institutions/{institution_id}")
def change_institution(
    institution_id: str, change: InstitutionUpdate, engine: EngineDep
) -> Institution:
    return update(engine, institution_id, change)
