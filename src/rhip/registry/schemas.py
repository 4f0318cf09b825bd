"""In/out shapes of the registry: what a caller sends to register an institution, what it gets."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from pydantic import BaseModel, ConfigDict, Field


class InstitutionCreate(BaseModel):
    """Register an institution (机构注册). Values are checked by the service, all at once."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    credit_code: str = Field(description="统一社会信用代码, GB 32100-2015, 18 characters")
    name: str
    type: str = Field(description="one of rhip.registry.vocabulary.TYPES")
    district_code: str = Field(description="GB/T 2260 county-level code, e.g. 440304")
    grade: str | None = Field(None, description="三级甲等 … or its code 3A …")
    address: str | None = None
    phone: str | None = None
    active: bool = True
    connection_status: str = "not_connected"
    connected_on: dt.date | None = None
    feeds: list[str] = Field(default_factory=list)
    functions: list[str] = Field(default_factory=list)
    allow_cidrs: list[str] = Field(default_factory=list, description="MLLP peers, e.g. 10.1.0.0/16")
    part_of: str | None = Field(None, description="id of the parent institution")
    id: str | None = Field(None, description="FHIR logical id; default: the credit code")


class InstitutionUpdate(BaseModel):
    """Change some fields of a registered institution; fields left out keep their value."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    credit_code: str | None = None
    name: str | None = None
    type: str | None = None
    district_code: str | None = None
    grade: str | None = None
    address: str | None = None
    phone: str | None = None
    active: bool | None = None
    connection_status: str | None = None
    connected_on: dt.date | None = None
    feeds: list[str] | None = None
    functions: list[str] | None = None
    allow_cidrs: list[str] | None = None
    part_of: str | None = None


class Institution(BaseModel):
    """A registered institution as callers see it."""

    id: str
    credit_code: str
    name: str
    type: str
    grade: str | None
    district_code: str
    district_name: str | None
    address: str | None
    phone: str | None
    active: bool
    connection_status: str
    connected_on: dt.date | None
    feeds: list[str]
    functions: list[str]
    allow_cidrs: list[str]
    part_of: str | None
    created_at: dt.datetime
    updated_at: dt.datetime


@dataclass(frozen=True, slots=True)
class InstitutionFilter:
    """Search criteria. Within a field the values are alternatives (OR); fields combine with AND.

    ``name_prefixes`` and ``name_contains`` are each ANDed: every value must match.
    A prefecture code in ``district_codes`` (``440300``) matches all its districts.
    """

    ids: tuple[str, ...] = ()
    types: tuple[str, ...] = ()
    district_codes: tuple[str, ...] = ()
    credit_codes: tuple[str, ...] = ()
    name_prefixes: tuple[str, ...] = ()
    name_contains: tuple[str, ...] = ()
    name_exact: tuple[str, ...] = ()
    active: bool | None = None
    connection_statuses: tuple[str, ...] = ()
    nothing: bool = False  # a criterion no institution can meet (e.g. a foreign identifier system)


@dataclass(frozen=True, slots=True)
class CoverageRow:
    key: str
    label: str
    total: int
    connected: int
    testing: int

    @property
    def rate(self) -> float | None:
        return round(self.connected / self.total, 4) if self.total else None


@dataclass(frozen=True, slots=True)
class Coverage:
    """接入覆盖率 connection coverage of active institutions, by type and by district."""

    total: int
    connected: int
    testing: int
    by_type: list[CoverageRow] = field(default_factory=list)
    by_district: list[CoverageRow] = field(default_factory=list)
    by_feed: dict[str, int] = field(default_factory=dict)  # connected institutions sending it

    @property
    def rate(self) -> float | None:
        return round(self.connected / self.total, 4) if self.total else None

    def as_dict(self) -> dict:
        def rows(items: list[CoverageRow]) -> list[dict]:
            return [
                {
                    "code": r.key,
                    "label": r.label,
                    "total": r.total,
                    "connected": r.connected,
                    "testing": r.testing,
                    "rate": r.rate,
                }
                for r in items
            ]

        return {
            "total": self.total,
            "connected": self.connected,
            "testing": self.testing,
            "rate": self.rate,
            "by_type": rows(self.by_type),
            "by_district": rows(self.by_district),
            "by_feed": dict(self.by_feed),
        }
