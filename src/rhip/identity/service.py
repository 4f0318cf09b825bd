"""MPI use cases (患者主索引服务): register one or many, read, search, cross-reference, match.

Two paths share one matcher and one set of rules:

* ``register_many`` (bulk loads, ``rhip synth``): the whole live index is primed in memory, each
  registration is decided in arrival order by the online matcher, then rows are written set-based
  in chunks (``writer``). Decisions are one by one; persistence is batched.
* ``register`` (FHIR create, HL7 ADT): the candidates sharing a blocking key are read from the
  database by index, primed into a fresh matcher, and the same decision is taken.

Merge, unmerge and the review queue live in ``linkage``.
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
from sqlalchemy import Connection, Engine, bindparam, select

from rhip.identity import intake, repo, writer
from rhip.identity.matcher import REVIEW, OnlineMatcher
from rhip.identity.models import registrations
from rhip.identity.schemas import (
    MatchCandidate,
    PersonPublic,
    RegisterStats,
    RegistrationCreate,
    RegistrationResult,
)
from rhip.identity.scoring import MatchParameters
from rhip.kernel import clock, systems
from rhip.kernel.crypto import IdentifierVault
from rhip.kernel.errors import NotFound
from rhip.kernel.ids import validate_resident_id


def register_many(
    engine: Engine,
    vault: IdentifierVault,
    registrations_df: pd.DataFrame,
    *,
    chunk: int = 5000,
    progress: writer.Progress | None = None,
    params: MatchParameters | None = None,
) -> RegisterStats:
    """Link and store a batch of registrations (``rhip.synth.people`` columns), in arrival order.

    Registrations whose (institution, MRN) is already stored are skipped, so a re-run resumes.
    """
    started = time.perf_counter()
    with engine.connect() as conn:
        params = params or repo.load_parameters(conn)
        matcher, person_ids, reg_ids = repo.prime_matcher(conn, params)
    batch = intake.prepare_batch(registrations_df, vault)
    keep = _not_yet_stored(batch, matcher)
    stats = RegisterStats(received=len(batch.frame), invalid_resident_ids=batch.invalid_ids)
    stats.skipped_existing = int((~keep).sum())
    frame = batch.frame[keep].reset_index(drop=True)
    decided = decide_all(
        matcher,
        frame,
        [r for r, k in zip(batch.records, keep, strict=True) if k],
        [r for r, k in zip(batch.rid_hashes, keep, strict=True) if k],
        [d for d, k in zip(batch.docs, keep, strict=True) if k],
        person_ids,
        len(reg_ids),
    )
    if len(frame):
        writer.write(engine, decided, vault, chunk, progress)
    stats.registered = len(frame)
    stats.persons_created = len(decided.person_ids) - decided.n_existing_persons
    stats.outcomes = frame["outcome"].value_counts().to_dict() if len(frame) else {}
    stats.seconds = round(time.perf_counter() - started, 3)
    return stats


def _not_yet_stored(batch: intake.Batch, matcher: OnlineMatcher) -> np.ndarray:
    f = batch.frame
    if "mrn" not in f or "credit_code" not in f:
        return np.ones(len(f), dtype=bool)
    key = systems.MRN_PREFIX + f["credit_code"].astype(str) + "|" + f["mrn"].astype(str)
    key = key.where(f["mrn"].notna())
    known = key.isin([k for k in matcher.doc_index if k.startswith(systems.MRN_PREFIX)])
    duplicate = key.notna() & key.duplicated()
    return (~known & ~duplicate).to_numpy()


def decide_all(
    matcher: OnlineMatcher,
    frame: pd.DataFrame,
    records: list[tuple],
    rid_hashes: list[str],
    docs: list[tuple[str, ...]],
    person_ids: list[str],
    n_existing_regs: int,
) -> writer.Decided:
    """Run the online matcher over ``frame`` in order; the decisions become frame columns."""
    n_existing = matcher.n_persons
    out_person, outcome, weight, candidate = [], [], [], []
    match = matcher.match
    for rec, rid, doc in zip(records, rid_hashes, docs, strict=True):
        d = match(rec, rid, doc)
        out_person.append(d.person)
        outcome.append(d.outcome)
        weight.append(d.weight)
        candidate.append(d.candidate if d.candidate is not None else -1)
    frame["person"] = np.asarray(out_person, dtype="int64")
    frame["outcome"] = outcome
    frame["weight"] = pd.Series(weight, dtype="float64", index=frame.index)
    frame["candidate"] = np.asarray(candidate, dtype="int64")
    frame["registration_id"] = writer.new_ids(len(frame))
    person_ids = [*person_ids, *writer.new_ids(matcher.n_persons - n_existing)]
    return writer.Decided(frame, person_ids, n_existing, list(matcher.golden), n_existing_regs)


def registration_frame(reg: RegistrationCreate) -> pd.DataFrame:
    """A one-row registrations DataFrame (the bulk shape) for a single registration."""
    row: dict[str, object] = {
        "name": reg.name, "gender": reg.gender,
        "birth_date": reg.birth_date.isoformat() if reg.birth_date else None,
        "phone": reg.phone, "address": reg.address, "district_code": reg.district_code,
        "institution_id": reg.institution_id, "resident_id": reg.resident_id(),
        "registered_at": reg.registered_at or clock.now(),
    }  # fmt: skip
    mrn = reg.mrn()
    row["credit_code"], row["mrn"] = mrn if mrn else (None, None)
    by_system = {system: col for col, system in intake.DOCUMENT_COLUMNS.items()}
    for ident in reg.identifiers:
        if ident.system in by_system:
            row[by_system[ident.system]] = ident.value
    return pd.DataFrame([row])


def _primed(conn, vault: IdentifierVault, reg: RegistrationCreate):
    rid = reg.resident_id()
    if rid is not None:
        validate_resident_id(rid, expression="identifier")
    batch = intake.prepare_batch(registration_frame(reg), vault)
    rec, rid_hash, docs = batch.records[0], batch.rid_hashes[0], batch.docs[0]
    params = repo.load_parameters(conn)
    where = repo.candidate_clause(rec, rid_hash, docs)
    matcher, person_ids, reg_ids = (
        repo.prime_matcher(conn, params, where)
        if where is not None
        else (OnlineMatcher(params), [], [])
    )
    return batch, matcher, person_ids, reg_ids


def person_of_mrn(conn: Connection, system: str, mrn: str) -> str | None:
    """The golden person of the registration stored under an institution's MRN (``system`` is
    ``systems.mrn_system(credit code)``), on the caller's connection; None if none is stored.
    ``register``'s answer for a known MRN, without a connection of its own."""
    found = conn.execute(_BY_MRN, {"system": system, "mrn": mrn}).first()
    return found[1] if found else None


# (registration id, person id) by MRN, built once: ingest asks it for every message (a statement
# built per call costs ~0.2 ms)
_BY_MRN = select(registrations.c.id, registrations.c.person_id).where(
    registrations.c.mrn_system == bindparam("system"), registrations.c.mrn == bindparam("mrn")
)


def register(engine: Engine, vault: IdentifierVault, reg: RegistrationCreate) -> RegistrationResult:
    """Link one registration (FHIR create, HL7 ADT); an already stored MRN returns its record."""
    mrn = reg.mrn()
    with engine.connect() as conn:
        if mrn:
            found = conn.execute(
                _BY_MRN, {"system": systems.mrn_system(mrn[0]), "mrn": mrn[1]}
            ).first()
            if found:
                return RegistrationResult(
                    registration_id=found[0], person_id=found[1], outcome="existing"
                )
        batch, matcher, person_ids, reg_ids = _primed(conn, vault, reg)
    decided = decide_all(
        matcher, batch.frame, batch.records, batch.rid_hashes, batch.docs, person_ids, len(reg_ids)
    )
    writer.write(engine, decided, vault, chunk=1, progress=None)
    f = decided.frame.iloc[0]
    review_id = None
    if f["outcome"] == REVIEW:
        from rhip.identity.linkage import review_for_registration

        review_id = review_for_registration(engine, f["registration_id"])
    return RegistrationResult(
        registration_id=f["registration_id"],
        person_id=decided.person_ids[int(f["person"])],
        outcome=f["outcome"],
        weight=None if pd.isna(f["weight"]) else float(f["weight"]),
        review_id=review_id,
        created_person=int(f["person"]) >= decided.n_existing_persons,
    )


def get_person(engine: Engine, vault: IdentifierVault, person_id: str) -> PersonPublic:
    with engine.connect() as conn:
        found = repo.person_rows(conn, [person_id])
        if not found:
            raise NotFound(f"Patient/{person_id} does not exist", expression="id")
        repo.attach_identifiers(conn, vault, found)
    return found[0]


def search_persons(
    engine: Engine,
    vault: IdentifierVault,
    *,
    identifier: list[tuple[str | None, str]] = (),
    name: str | None = None,
    birthdate=None,
    gender: str | None = None,
    offset: int = 0,
    count: int = 20,
) -> tuple[int, list[PersonPublic]]:
    """Live golden records with a registration matching every given criterion (AND)."""
    clauses = [c for c in [repo.search_clause(name, birthdate, gender)] if c is not None]
    for system, value in identifier:
        sub = select(repo.ID.registration_id).where(repo.identifier_clause(vault, system, value))
        clauses.append(registrations.c.person_id.in_(
            select(registrations.c.person_id).where(registrations.c.id.in_(sub))
        ))  # fmt: skip
    from sqlalchemy import and_

    with engine.connect() as conn:
        total, ids = repo.count_and_page(conn, and_(*clauses) if clauses else None, offset, count)
        people = repo.person_rows(conn, ids)
        repo.attach_identifiers(conn, vault, people)
    return total, people


def cross_reference(
    engine: Engine, vault: IdentifierVault, system: str | None, value: str
) -> list[PersonPublic]:
    """The live golden records holding this identifier, with all their identifiers (PIX)."""
    with engine.connect() as conn:
        ids = repo.persons_with_identifier(conn, repo.identifier_clause(vault, system, value))
        people = [p for p in repo.person_rows(conn, ids) if p.status in repo.LIVE]
        repo.attach_identifiers(conn, vault, people)
    return people


def match(
    engine: Engine, vault: IdentifierVault, reg: RegistrationCreate, count: int = 10
) -> list[MatchCandidate]:
    """Scored candidate golden records for a registration, best first (PDQm ``$match``)."""
    with engine.connect() as conn:
        batch, matcher, person_ids, _ = _primed(conn, vault, reg)
        found = matcher.scores(batch.records[0], batch.rid_hashes[0], batch.docs[0])
        ranked = sorted(found.items(), key=lambda kv: -kv[1])[:count]
        people = repo.person_rows(conn, [person_ids[p] for p, _ in ranked])
        repo.attach_identifiers(conn, vault, people)
    params = matcher.params
    out = []
    for person, (_, w) in zip(people, ranked, strict=True):
        grade = (
            "certain"
            if w >= params.auto_link
            else "probable"
            if w >= params.review
            else ("possible" if w >= 0 else "certainly-not")
        )
        prob = 1.0 if w == float("inf") else params.probability(w)
        out.append(
            MatchCandidate(person=person, weight=min(w, 999.0), probability=prob, grade=grade)
        )
    return out
