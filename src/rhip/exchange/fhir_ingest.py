"""Applying FHIR resources (FHIR 资源入库): shared by transaction/batch Bundles and NDJSON chunks.

Two phases, like the HL7 v2 handlers: ``prepare`` validates and maps every entry, resolves
references and registers patients through the MPI (which commits on its own connection) with no
write lock held; ``write`` then stores every report in the caller's transaction with one
``reports.store`` call. Entries of one *unit* succeed or fail together: a transaction is one
unit, a batch entry or an NDJSON line is its own. A DiagnosticReport and the Observations it
refers to also share their fate.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, Engine, select

from rhip.exchange import fhir_map, reports
from rhip.exchange.fhir_refs import PatientLookup, resolve_subject
from rhip.exchange.fhir_validate import FhirInvalid, UnknownReference, check_resource
from rhip.exchange.models import observations
from rhip.exchange.models import reports as reports_table
from rhip.exchange.oru import ReportIn
from rhip.exchange.patients import PatientRegistration, PatientResolver
from rhip.exchange.senders import Sender
from rhip.kernel.clock import now
from rhip.kernel.errors import ManyErrors, RhipError
from rhip.quality import QualityRejected
from rhip.quality.repo import REJECTED_PREFIX

CREATED, OK = "201 Created", "200 OK"


@dataclass(slots=True)
class Entry:
    """One resource of a request, and what became of it."""

    path: str  # "Bundle.entry[3].resource", "lab.ndjson:17"
    resource: dict[str, Any] | None
    unit: int
    full_url: str | None = None
    error: RhipError | None = None
    status: str = ""
    location: str | None = None
    note: str | None = None  # an informational outcome (a duplicate, a resource kept aside)


@dataclass(slots=True)
class ReportPlan:
    entry: int  # the DiagnosticReport (or standalone Observation) entry
    report: ReportIn
    members: list[int | None]  # per observation: its entry, None when contained or narrative
    obs_paths: list[str]
    patient_id: str | None = None


@dataclass
class Channel:
    """Who sends and how patients are found; ``known`` carries local Patient references across
    the chunks of one NDJSON import."""

    engine: Engine
    sender: Sender
    resolver: PatientResolver
    lookup: PatientLookup
    known: dict[str, str] = field(default_factory=dict)


@dataclass
class Plan:
    entries: list[Entry]
    items: list[ReportPlan]
    gender: dict[str, str | None]
    atomic: bool

    def fail(self, index: int, error: RhipError) -> None:
        """Fail an entry, its unit and the report plans that include it."""
        entry = self.entries[index]
        entry.error = entry.error or error
        for other in self.entries:
            if other.unit == entry.unit and other.error is None:
                other.error = _related(error, entry.path)
        for plan in self.items:
            involved = [plan.entry, *(m for m in plan.members if m is not None)]
            if index in involved:
                for k in involved:
                    if self.entries[k].error is None:
                        self.fail(k, _related(error, entry.path))

    def errors(self) -> list[RhipError]:
        seen, out = set(), []
        for e in self.entries:
            if e.error is not None and id(e.error) not in seen and not _is_related(e.error):
                seen.add(id(e.error))
                out.append(e.error)
        return out


class _Related(RhipError):
    """This entry is fine but fails with another one (same transaction, line or report)."""


def _related(error: RhipError, path: str) -> RhipError:
    if isinstance(error, _Related):
        return error
    out = _Related(f"not applied: {path} failed ({error.message})", expression=path)
    out.status, out.issue_type = error.status, error.issue_type
    return out


def _is_related(error: RhipError) -> bool:
    return isinstance(error, _Related)


def raise_if_failed(plan: Plan) -> None:
    """In a transaction, any error fails the whole request with every issue named."""
    errors = plan.errors()
    if errors:
        raise errors[0] if len(errors) == 1 else ManyErrors(errors)


# -- phase 1: validate, map, resolve -------------------------------------------------------------
def prepare(
    channel: Channel,
    entries: list[Entry],
    *,
    atomic: bool,
    validate: Callable[[Any, str], Any] = check_resource,
) -> Plan:
    """Validate and map ``entries``, resolve subjects and register Patient entries (MPI).

    ``validate`` checks one resource: the R4B models by default, ``check_structure`` on bulk.
    """
    plan = Plan(entries, [], {}, atomic)
    for i, e in enumerate(entries):
        if e.error is None:
            try:
                validate(e.resource, e.path)
            except RhipError as exc:
                plan.fail(i, exc)
    index = _index(entries)
    consumed = _consumed(entries, index)
    for i, e in enumerate(entries):
        if e.error is None and e.resource is not None:
            _plan_entry(plan, i, index, consumed)
    if atomic:
        raise_if_failed(plan)
    _resolve_subjects(channel, plan, index)
    if atomic:
        raise_if_failed(plan)
    return plan


def _index(entries: list[Entry]) -> dict[str, int]:
    """Local references: ``fullUrl`` and ``Type/id`` of every entry."""
    index: dict[str, int] = {}
    for i, e in enumerate(entries):
        r = e.resource if isinstance(e.resource, dict) else {}
        if e.full_url:
            index.setdefault(e.full_url, i)
        if r.get("id") and r.get("resourceType"):
            index.setdefault(f"{r['resourceType']}/{r['id']}", i)
    return index


def local(index: dict[str, int], ref: str) -> int | None:
    if ref in index:
        return index[ref]
    tail = "/".join(ref.split("/")[-2:])  # an absolute URL ending in Type/id
    return index.get(tail) if "/" in ref else None


def _consumed(entries: list[Entry], index: dict[str, int]) -> set[int]:
    """Entries a DiagnosticReport refers to as results: stored with it, not on their own."""
    out = set()
    for e in entries:
        if isinstance(e.resource, dict) and e.resource.get("resourceType") == "DiagnosticReport":
            for ref in e.resource.get("result") or []:
                k = local(index, (ref or {}).get("reference", ""))
                if k is not None:
                    out.add(k)
    return out


def _plan_entry(plan: Plan, i: int, index: dict[str, int], consumed: set[int]) -> None:
    e = plan.entries[i]
    kind = e.resource["resourceType"]
    members: list[int | None] = []
    paths: list[str] = []

    def refs(ref: str, where: str):
        if ref.startswith("#"):
            for n, c in enumerate(e.resource.get("contained") or []):
                if c.get("id") == ref[1:]:
                    members.append(None) if where.split(".")[-1].startswith("result") else None
                    return c, f"{e.path}.contained[{n}]"
            return None
        k = local(index, ref)
        if k is None:
            return None
        if plan.entries[k].error is not None:
            raise UnknownReference(f"{where}: {ref!r} is an entry that failed", expression=where)
        if where.split(".")[-1].startswith("result"):
            members.append(k)
        return plan.entries[k].resource, plan.entries[k].path

    try:
        if kind == "DiagnosticReport":
            report = fhir_map.report_in(e.resource, e.path, refs)
        elif kind == "Observation" and i not in consumed:
            report = fhir_map.standalone_report(e.resource, e.path, refs)
            members = [None]
        else:
            return  # Patient, Specimen, ImagingStudy, or an Observation of a report
        while len(members) < len(report.observations):
            members.append(None)  # narrative results (findings, conclusion)
        for m in members:
            paths.append(plan.entries[m].path if m is not None else e.path)
        plan.items.append(ReportPlan(i, report, members, paths))
    except RhipError as exc:
        plan.fail(i, exc)


def _resolve_subjects(channel: Channel, plan: Plan, index: dict[str, int]) -> None:
    """Golden patients of every report: conditional references first (reads only), then the
    Patient entries are registered through the MPI (writes), only if everything else held."""
    registered: dict[int, str] = {}
    pending: list[tuple[ReportPlan, int]] = []
    for item in plan.items:
        entry = plan.entries[item.entry]
        if entry.error is not None:
            continue
        try:
            found = resolve_subject(channel, entry, index, plan.entries)
        except RhipError as exc:
            plan.fail(item.entry, exc)
            continue
        if isinstance(found, str):
            item.patient_id = found
        else:
            pending.append((item, found))
    if plan.atomic and plan.errors():
        return
    for i, e in enumerate(plan.entries):
        if e.error is None and (e.resource or {}).get("resourceType") == "Patient":
            _register(channel, plan, i, registered)
    for item, k in pending:
        if k in registered:
            item.patient_id = registered[k]
        elif plan.entries[item.entry].error is None:
            plan.fail(item.entry, _related(plan.entries[k].error or _gone(k), plan.entries[k].path))


def _gone(k: int) -> RhipError:
    return UnknownReference(f"entry {k} is not a Patient that could be registered")


def _register(channel: Channel, plan: Plan, i: int, registered: dict[int, str]) -> None:
    e = plan.entries[i]
    try:
        reg: PatientRegistration = fhir_map.registration(e.resource, e.path, channel.sender)
        with channel.engine.connect() as conn:
            golden = channel.resolver(conn, reg)
    except RhipError as exc:
        if exc.expression is None:
            exc.expression = f"{e.path}.identifier"
        plan.fail(i, exc)
        return
    registered[i] = golden
    plan.gender[golden] = reg.gender
    e.status, e.location = OK, f"Patient/{golden}"
    if e.resource.get("id"):
        channel.known[f"Patient/{e.resource['id']}"] = golden
    if e.full_url:
        channel.known[e.full_url] = golden


# -- phase 2: write ------------------------------------------------------------------------------
def write(conn: Connection, plan: Plan, institution_id: str, inbox_id: int | None) -> int:
    """Store every report still valid with one ``reports.store_many``: one batch per unit (the
    whole request in a transaction, else each line or entry), so a unit the quality rules refuse
    is dropped alone (in a transaction: the request fails). Returns how many were written.
    """
    items = [p for p in plan.items if plan.entries[p.entry].error is None]
    items = _skip_duplicates(conn, plan, items, institution_id)
    if not items:
        return 0
    units: dict[int, list[ReportPlan]] = {}
    for p in items:
        units.setdefault(0 if plan.atomic else plan.entries[p.entry].unit, []).append(p)
    recorded = now()
    batches = [
        reports.Batch(
            institution_id,
            [(p.patient_id, p.report) for p in group],
            recorded,
            inbox_id,
            gender={p.patient_id: plan.gender.get(p.patient_id) for p in group},
        )
        for group in units.values()
    ]
    stored = reports.store_many(conn, batches, recorded_at=recorded)
    written: list[ReportPlan] = []
    ids: list[str] = []
    for group, out in zip(units.values(), stored, strict=True):
        if out.rejection is not None:
            _rejected(plan, group, out.rejection)
            if plan.atomic:
                raise_if_failed(plan)
            continue
        written += group
        ids += out.ids
    if written:
        _locate(conn, plan, written, ids)
    return len(ids)


def _rejected(plan: Plan, items: list[ReportPlan], exc: QualityRejected) -> set[int]:
    bad: dict[int, list[FhirInvalid]] = {}
    for f in exc.findings:
        item = items[f.item]
        pos = f.obs if f.obs is not None and f.obs < len(item.obs_paths) else None
        base = item.obs_paths[pos] if pos is not None else plan.entries[item.entry].path
        where = base + f.path[f.path.index(".") :] if "." in f.path else base
        bad.setdefault(f.item, []).append(
            FhirInvalid(f"{REJECTED_PREFIX} [{f.rule_id}] {f.message}", expression=where)
        )
    for n, errors in bad.items():
        plan.fail(items[n].entry, errors[0] if len(errors) == 1 else ManyErrors(errors))
    return set(bad)


def _skip_duplicates(
    conn: Connection, plan: Plan, items: list[ReportPlan], institution_id: str
) -> list[ReportPlan]:
    """A report version already stored — same report key, status and issued time — is a resend:
    answered with the stored version, not applied twice."""
    keys = sorted({p.report.key[:200] for p in items})
    if not keys:
        return items
    t = reports_table.c
    stored = {
        (k, s, _utc(i)): rid
        for rid, k, s, i in conn.execute(
            select(t.id, t.report_key, t.status, t.issued_at).where(
                t.institution_id == institution_id, t.report_key.in_(keys)
            )
        )
    }
    fresh = []
    for p in items:
        issued = _utc(p.report.issued_at) if p.report.issued_at else None
        rid = stored.get((p.report.key[:200], p.report.status, issued))
        if rid is None:
            fresh.append(p)
            continue
        for k in [p.entry, *(m for m in p.members if m is not None)]:
            entry = plan.entries[k]
            entry.status, entry.note = OK, "duplicate: this version is already stored"
            entry.location = f"DiagnosticReport/{rid}" if k == p.entry else None
    return fresh


def _utc(value: dt.datetime) -> dt.datetime:
    return value.astimezone(dt.UTC) if value.tzinfo else value.replace(tzinfo=dt.UTC)


def _locate(conn: Connection, plan: Plan, items: list[ReportPlan], ids: list[str]) -> None:
    """Locations of what was created: the report version, and each Observation by its row id."""
    rows = conn.execute(
        select(observations.c.id, observations.c.report_id, observations.c.seq).where(
            observations.c.report_id.in_(ids)
        )
    ).all()
    by_seq = {(r, s): i for i, r, s in rows}
    for p, rid in zip(items, ids, strict=True):
        entry = plan.entries[p.entry]
        standalone = entry.resource["resourceType"] == "Observation"
        entry.status = CREATED
        entry.location = (
            f"Observation/{by_seq.get((rid, 1))}" if standalone else f"DiagnosticReport/{rid}"
        )
        for obs, member in zip(p.report.observations, p.members, strict=True):
            if member is not None and member != p.entry:
                m = plan.entries[member]
                m.status, m.location = CREATED, f"Observation/{by_seq.get((rid, obs.seq))}"


def settle(plan: Plan) -> None:
    """Entries that are valid but stored nowhere on their own (Specimen, ImagingStudy)."""
    for e in plan.entries:
        if e.error is None and not e.status:
            e.status = OK
            e.note = "validated; kept in the inbox, not stored as a resource of its own"


Progress = Callable[[int], None]
