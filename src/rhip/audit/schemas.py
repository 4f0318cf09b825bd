"""Shapes of the audit context: an event to record, a stored record, filters and results."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

# FHIR AuditEvent.outcome (http://hl7.org/fhir/audit-event-outcome)
SUCCESS, MINOR_FAILURE, SERIOUS_FAILURE = "0", "4", "8"


@dataclass(frozen=True, slots=True)
class AuditEventIn:
    """One access to record: who (agent), what (resource, patient), why (purpose), outcome."""

    username: str
    role: str
    resource: str
    subtype: str = "read"  # read | search
    user_id: str | None = None
    agent_name: str | None = None
    institution_id: str | None = None
    patient_id: str | None = None
    purpose: str | None = None
    query: str | None = None  # masked by the caller
    outcome: str = SUCCESS
    status: int = 200
    reason: str | None = None
    flagged: bool = False
    client_address: str | None = None

    @property
    def action(self) -> str:
        return "E" if self.subtype == "search" else "R"  # BALP: query is Execute, read is Read


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """A stored event with its place in the chain."""

    seq: int
    recorded_at: dt.datetime
    day: dt.date
    action: str
    subtype: str
    user_id: str | None
    username: str
    agent_name: str | None
    role: str
    institution_id: str | None
    patient_id: str | None
    purpose: str | None
    resource: str
    query: str | None
    outcome: str
    status: int
    reason: str | None
    flagged: bool
    client_address: str | None
    prev_hash: str
    hash: str


@dataclass(frozen=True, slots=True)
class AuditFilter:
    """Search criteria; every field narrows (AND), empty tuples mean any."""

    patient_ids: tuple[str, ...] | None = None  # None: any; () matches nothing
    agents: tuple[str, ...] = ()  # username or user id
    roles: tuple[str, ...] = ()
    outcomes: tuple[str, ...] = ()
    subtypes: tuple[str, ...] = ()
    since: dt.datetime | None = None  # inclusive
    until: dt.datetime | None = None  # exclusive
    seqs: tuple[int, ...] = ()
    exclude_user_ids: tuple[str, ...] = field(default=())


@dataclass(frozen=True, slots=True)
class VerifyResult:
    """``ok`` or the first sequence number where the chain breaks and what is wrong there."""

    ok: bool
    count: int  # events read
    head_count: int | None
    first_broken: int | None = None
    problem: str | None = None


@dataclass(frozen=True, slots=True)
class ViewStat:
    """Reads per institution (the viewer's) and CST day."""

    institution_id: str | None
    day: dt.date
    views: int
    refused: int
    flagged: int
