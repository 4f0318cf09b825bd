"""In/out shapes of the MPI (pydantic): a registration coming in, a golden record going out."""

from __future__ import annotations

import datetime as dt

from pydantic import BaseModel, Field

from rhip.kernel import systems


class Identifier(BaseModel):
    system: str
    value: str
    type_code: str | None = None  # HL7 v2 PID-3 identifier type (NNCHN, MR …)


class RegistrationCreate(BaseModel):
    """One registration (建档) of a patient at an institution, as an interface delivers it."""

    identifiers: list[Identifier] = Field(default_factory=list)
    name: str | None = None
    gender: str | None = None  # FHIR administrative gender
    birth_date: dt.date | None = None
    phone: str | None = None
    address: str | None = None
    district_code: str | None = None
    institution_id: str | None = None
    registered_at: dt.datetime | None = None

    def resident_id(self) -> str | None:
        return next((i.value for i in self.identifiers if i.system == systems.RESIDENT_ID), None)

    def mrn(self) -> tuple[str, str] | None:
        """(credit code, MRN) of the institution's own patient number, if one is given."""
        for i in self.identifiers:
            if i.system.startswith(systems.MRN_PREFIX):
                return i.system[len(systems.MRN_PREFIX) :], i.value
        return None


class RegistrationResult(BaseModel):
    registration_id: str
    person_id: str
    outcome: str  # deterministic | auto | review | new | existing
    weight: float | None = None
    review_id: str | None = None
    created_person: bool = False


class PersonPublic(BaseModel):
    """A golden record (主索引) with the identifiers of every registration linked to it."""

    id: str
    status: str
    merged_into: str | None = None
    name: str | None = None
    gender: str | None = None
    birth_date: dt.date | None = None
    phone: str | None = None
    address: str | None = None
    district_code: str | None = None
    identifiers: list[Identifier] = Field(default_factory=list)
    updated_at: dt.datetime | None = None


class MatchCandidate(BaseModel):
    person: PersonPublic
    weight: float
    probability: float
    grade: str  # certain | probable | possible | certainly-not (FHIR match-grade)


class RegisterStats(BaseModel):
    received: int = 0
    registered: int = 0
    skipped_existing: int = 0  # MRN already registered: idempotent re-delivery
    invalid_resident_ids: int = 0  # dropped from matching, registration kept
    persons_created: int = 0
    outcomes: dict[str, int] = Field(default_factory=dict)
    seconds: float = 0.0
