"""Updating a registration (修改建档信息, HL7 ADT^A08): new demographics for a known MRN.

The registration found by (institution credit code, MRN) is re-normalised from the effective
values and its identifiers are rewritten. HL7 v2 update semantics: a value the update does not
carry (empty field) keeps the stored one; identifiers of systems it does not carry are kept.

The link to the golden record is re-evaluated only when an *identifying* field changed (resident
ID, name, birth date, sex); a new phone or address alone never moves a registration. Then:

* the registration now carries a resident ID that differs from another registration of its
  golden record: it is **split** off into a new golden record (history row ``split``);
* the registration is (now) alone in its golden record and the matcher links it
  deterministically or automatically to another live record: that record **absorbs** it through
  ``linkage.merge`` (history row ``merge``, so ``unmerge`` undoes it);
* otherwise the link is kept (a review-level candidate is not acted on here).
"""

from __future__ import annotations

import json
import uuid

import pandas as pd
from sqlalchemy import Connection, Engine, and_, delete, func, insert, select, update

from rhip.identity import intake, linkage, repo, writer
from rhip.identity.matcher import AUTO, DETERMINISTIC
from rhip.identity.models import history, identifiers, persons, registrations
from rhip.identity.schemas import Identifier, RegistrationCreate, RegistrationResult
from rhip.identity.service import registration_frame
from rhip.kernel import clock, systems
from rhip.kernel.crypto import IdentifierVault
from rhip.kernel.errors import InvalidInput, NotFound
from rhip.kernel.ids import validate_resident_id
from rhip.store import bulk_insert

R, ID = registrations.c, identifiers.c
IDENTIFYING = ("rid_hash", "name_folded", "birth_iso", "sex")
# columns of mpi_registrations an update rewrites (not: id, person, outcome, weight, time)
UPDATED = (
    "name", "gender", "birth_date", "phone", "address", "district_code", "name_folded",
    "name_pinyin", "birth_iso", "sex", "phone_key", "address_key", "rid_hash",
)  # fmt: skip


def update_registration(
    engine: Engine, vault: IdentifierVault, reg: RegistrationCreate
) -> RegistrationResult:
    """Apply new demographics to the registration with ``reg``'s MRN; NotFound if none.

    ``outcome``: ``updated`` (link kept), ``relinked`` (absorbed by another golden record) or
    ``split`` (moved to a new golden record because of a conflicting resident ID).
    """
    mrn = reg.mrn()
    if mrn is None:
        raise InvalidInput(
            "an update needs the institution's medical record number", expression="identifier"
        )
    if reg.resident_id():
        validate_resident_id(reg.resident_id(), expression="identifier")
    with engine.begin() as conn:
        old = conn.execute(
            select(registrations).where(
                R.mrn_system == systems.mrn_system(mrn[0]), R.mrn == mrn[1]
            )
        ).mappings().first()  # fmt: skip
        if old is None:
            raise NotFound(
                f"no registration with MRN {mrn[1]} at {mrn[0]}", expression="identifier"
            )
        effective = _effective(conn, vault, reg, old)
        frame = _prepared(vault, effective, old)
        new = _row(frame)
        changed = any(old[k] != new[k] for k in IDENTIFYING)
        conn.execute(update(registrations).where(R.id == old["id"]).values(**new))
        conn.execute(delete(identifiers).where(ID.registration_id == old["id"]))
        idents = writer.identifier_rows(frame, vault)
        if len(idents):
            bulk_insert(conn, identifiers, idents)
        person, outcome = old["person_id"], "updated"
        if changed and _conflicts(conn, old["id"], person, new["rid_hash"]):
            person, outcome = _split(conn, old["id"], person), "split"
        linkage.refresh_golden(conn, person)
        target = _linked_elsewhere(conn, vault, effective, old["id"], person) if changed else None
    if target is not None and _alone(engine, person):
        linkage.merge(engine, target, person, reason=f"update of MRN {mrn[1]}: re-linked")
        person, outcome = target, "relinked"
    return RegistrationResult(registration_id=old["id"], person_id=person, outcome=outcome)


def _effective(conn: Connection, vault: IdentifierVault, reg: RegistrationCreate, old):
    """The update with stored values where it carries none (HL7 v2: empty = no change)."""
    given = {i.system for i in reg.identifiers}
    kept = []
    rows = conn.execute(
        select(ID.system, ID.type_code, ID.value, ID.value_enc).where(
            ID.registration_id == old["id"]
        )
    )
    for system, type_code, value, enc in rows:
        if system not in given:
            clear = value if value is not None else vault.decrypt(enc)
            kept.append(Identifier(system=system, value=clear, type_code=type_code))
    fields = ("name", "gender", "birth_date", "phone", "address", "district_code")
    values = {f: getattr(reg, f) if getattr(reg, f) not in (None, "") else old[f] for f in fields}
    return reg.model_copy(
        update={
            **values,
            "identifiers": [*reg.identifiers, *kept],
            "institution_id": reg.institution_id or old["institution_id"],
        }
    )


def _prepared(vault: IdentifierVault, reg: RegistrationCreate, old) -> pd.DataFrame:
    """The bulk path's intake frame for one registration, as ``writer`` expects it."""
    frame = intake.prepare_batch(registration_frame(reg), vault).frame
    frame["registration_id"] = old["id"]
    frame["person"], frame["outcome"], frame["weight"] = 0, old["outcome"], old["match_weight"]
    return frame


def _row(frame: pd.DataFrame) -> dict:
    decided = writer.Decided(frame, ["-"], 1, [0], 0)
    row = writer.registration_rows(decided).iloc[0]
    out = {k: (None if pd.isna(row[k]) else row[k]) for k in UPDATED}
    out["birth_date"] = writer.as_date(out["birth_date"])
    return out


def _conflicts(conn: Connection, reg_id: str, person: str, rid_hash: str | None) -> bool:
    """Another registration of ``person`` carries a different resident ID than ``rid_hash``."""
    if not rid_hash:
        return False
    other = select(func.count()).where(
        R.person_id == person, R.id != reg_id, R.rid_hash.is_not(None), R.rid_hash != rid_hash
    )
    return conn.execute(other).scalar_one() > 0


def _split(conn: Connection, reg_id: str, person: str) -> str:
    """Move the registration to a new golden record of its own, with a history row."""
    now = clock.now()
    new_id = uuid.uuid4().hex
    conn.execute(insert(persons).values(id=new_id, status="active", created_at=now, updated_at=now))
    conn.execute(update(registrations).where(R.id == reg_id).values(person_id=new_id))
    conn.execute(
        history.insert().values(
            action="split", survivor_id=person, subsumed_id=new_id,
            registration_ids=json.dumps([reg_id]), reason="resident ID changed by an update",
            at=now,
        )
    )  # fmt: skip
    linkage.refresh_golden(conn, person)
    return new_id


def _linked_elsewhere(
    conn: Connection, vault: IdentifierVault, reg: RegistrationCreate, reg_id: str, person: str
) -> str | None:
    """Another live golden record the matcher links the updated registration to, if any."""
    batch = intake.prepare_batch(registration_frame(reg), vault)
    rec, rid_hash, docs = batch.records[0], batch.rid_hashes[0], batch.docs[0]
    where = repo.candidate_clause(rec, rid_hash, docs)
    if where is None:
        return None
    params = repo.load_parameters(conn)
    matcher, person_ids, _ = repo.prime_matcher(conn, params, and_(where, R.id != reg_id))
    outcome, found, _ = matcher.decide(rec, rid_hash, docs)
    if outcome not in (DETERMINISTIC, AUTO) or person_ids[found] == person:
        return None
    return person_ids[found]


def _alone(engine: Engine, person: str) -> bool:
    with engine.connect() as conn:
        n = conn.execute(select(func.count()).where(R.person_id == person)).scalar_one()
    return n == 1
