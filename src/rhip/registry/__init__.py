"""Institution registry (机构注册): institutions, districts, connection status, coverage figures."""

from rhip.registry.schemas import (
    Coverage,
    Institution,
    InstitutionCreate,
    InstitutionFilter,
    InstitutionUpdate,
)
from rhip.registry.service import UnknownInstitution, coverage, get, register, search, update

__all__ = [
    "Coverage",
    "Institution",
    "InstitutionCreate",
    "InstitutionFilter",
    "InstitutionUpdate",
    "UnknownInstitution",
    "coverage",
    "get",
    "register",
    "search",
    "update",
]
